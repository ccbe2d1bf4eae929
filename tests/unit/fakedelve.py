"""A scripted Delve peer for unit tests of the client and the session: a real socket on
127.0.0.1 speaking Delve's JSON-RPC framing (one JSON object a line, replies matched by
id), where each request is answered by a Python function and recorded. The code under test
(JsonRpcConnection, DelveClient, release, Session) is the real one; only the debugger
behind the socket is a script, with the answers the reference documents
(../shared/reference/delve-json-rpc.md)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]


class Refuse(Exception):  # noqa: N818 (what the script raises: Delve's error reply)
    """Raised by a script: the request gets Delve's error reply with this message."""


@dataclass
class FakeDelve:
    answer: Callable[[str, JSON], JSON]
    port: int = 0
    requests: list[tuple[str, JSON]] = field(default_factory=list)
    closed_by_client: threading.Event = field(default_factory=threading.Event)

    def methods(self) -> list[str]:
        return [m for m, _ in self.requests]

    def params(self, method: str) -> list[JSON]:
        return [p for m, p in self.requests if m == method]

    def serve(self, conn: socket.socket) -> None:
        f = conn.makefile("rb")
        for line in f:
            req = json.loads(line)
            method = req["method"].removeprefix("RPCServer.")
            params = req["params"][0]
            self.requests.append((method, params))
            try:
                reply = {"id": req["id"], "result": self.answer(method, params), "error": None}
            except Refuse as e:
                reply = {"id": req["id"], "result": None, "error": str(e)}
            conn.sendall(json.dumps(reply).encode() + b"\n")
        self.closed_by_client.set()


@contextlib.contextmanager
def fake_delve(answer: Callable[[str, JSON], JSON]) -> Iterator[FakeDelve]:
    """A one-connection peer on 127.0.0.1 (``.port``), answering with ``answer``."""
    srv = socket.create_server(("127.0.0.1", 0))
    fake = FakeDelve(answer, srv.getsockname()[1])

    def run() -> None:
        with contextlib.suppress(OSError):
            conn, _ = srv.accept()
            conn.settimeout(30)
            with conn:
                fake.serve(conn)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield fake
    finally:
        srv.close()
        t.join(10)


def stopped_state(pid: int = 4242, running: bool = False) -> JSON:
    """A State/Command reply's ``State``: the program stopped (or running), no thread."""
    return {"Pid": pid, "Running": running, "exited": False, "Threads": []}


def breakpoint_json(bp_id: int, name: str, **extra: Any) -> JSON:
    return {"id": bp_id, "name": name, "addrs": [0x401000 + bp_id], "Cond": "", **extra}
