"""A small Debug Adapter Protocol client for tests: what VS Code's Go extension sends to a
Delve server it attaches to with ``"mode": "remote"``, and no more.

DAP messages are JSON objects framed by a ``Content-Length: N`` header and an empty line.
A request carries a ``seq`` and a ``command``; its response names it in ``request_seq``
and says ``success`` (else ``message`` and ``body.error`` say why). Events (``stopped``,
``continued``, ``output``, ``exited``, ``terminated``...) come in between, in order: a
reader thread sorts the responses by ``request_seq`` and queues the events, which
``wait_event`` takes with a timeout, passing over (and keeping, in ``seen``) those of other
kinds. Every wait has a timeout: a test never hangs on the server.

Delve's side is service/dap/server.go: ``attach`` in remote mode halts the program and sends
``initialized`` before its response; ``configurationDone`` resumes the program (unless
``stopOnEntry``); ``continue`` answers at once and a ``stopped`` event follows when the
program stops; while it runs Delve answers most requests with an error ("debuggee is
running"), ``threads`` with a placeholder, ``pause`` by halting it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import queue
import socket
import threading
import time
from typing import Any

JSON = dict[str, Any]

TIMEOUT = 30.0


class DapError(Exception):
    """A request failed (``success: false``), timed out, or the connection closed."""


class DapClient:
    def __init__(self, host: str, port: int, timeout: float = TIMEOUT) -> None:
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(None)  # the reader thread blocks; waits time out on queues
        self._seq = itertools.count(1)
        self._send_lock = threading.Lock()
        self._responses: dict[int, queue.Queue[JSON]] = {}
        self._responses_lock = threading.Lock()
        self.events: queue.Queue[JSON] = queue.Queue()
        self.seen: list[JSON] = []  # every event taken from the queue, in order
        self.closed = threading.Event()
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()

    # -- framing ---------------------------------------------------------------------------
    def _read_loop(self) -> None:
        f = self.sock.makefile("rb")
        try:
            while True:
                length = -1
                while True:  # headers, up to the empty line
                    line = f.readline()
                    if not line:
                        return
                    line = line.strip()
                    if not line:
                        break
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                if length < 0:
                    return  # not DAP: give up (waits then report a closed connection)
                body = f.read(length)
                if len(body) < length:
                    return
                msg = json.loads(body)
                if msg.get("type") == "response":
                    self._queue_for(int(msg["request_seq"])).put(msg)
                elif msg.get("type") == "event":
                    self.events.put(msg)
        except (OSError, ValueError):
            return
        finally:
            self.closed.set()
            f.close()

    def _queue_for(self, seq: int) -> queue.Queue[JSON]:
        with self._responses_lock:
            return self._responses.setdefault(seq, queue.Queue())

    def send(self, command: str, arguments: JSON | None = None) -> int:
        """Send a request; its seq (for ``response``)."""
        seq = next(self._seq)
        msg: JSON = {"seq": seq, "type": "request", "command": command}
        if arguments is not None:
            msg["arguments"] = arguments
        body = json.dumps(msg).encode()
        with self._send_lock:
            self.sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return seq

    def response(self, seq: int, timeout: float | None = None) -> JSON:
        """The response to request ``seq``; DapError if it failed or none came in time."""
        q = self._queue_for(seq)
        wait = timeout or self.timeout
        deadline = time.monotonic() + wait
        while True:
            try:
                msg = q.get(timeout=min(0.2, max(0.0, deadline - time.monotonic())))
                break
            except queue.Empty:
                if self.closed.is_set() and q.empty():
                    raise DapError(f"request {seq}: the connection closed") from None
                if time.monotonic() >= deadline:
                    raise DapError(f"request {seq}: no response in {wait} s") from None
        if not msg.get("success"):
            error = (msg.get("body") or {}).get("error") or {}
            raise DapError(f"{msg.get('command')}: {msg.get('message')}: {error.get('format')}")
        return msg

    def request(self, command: str, arguments: JSON | None = None, **kw: Any) -> JSON:
        """Send a request and wait for its response's ``body`` (``{}`` when it has none)."""
        body: JSON = self.response(self.send(command, arguments), **kw).get("body") or {}
        return body

    def wait_event(self, kind: str, timeout: float | None = None) -> JSON:
        """The next event of that kind (``stopped``...); events of other kinds on the way
        are kept in ``seen``. DapError if none came in time."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DapError(f"no {kind!r} event in {timeout or self.timeout} s")
            try:
                ev = self.events.get(timeout=min(left, 0.2))
            except queue.Empty:
                if self.closed.is_set() and self.events.empty():
                    raise DapError(f"no {kind!r} event: the connection closed") from None
                continue
            self.seen.append(ev)
            if ev.get("event") == kind:
                return ev

    def drain_events(self, settle: float = 0.0) -> list[JSON]:
        """The events queued now (after waiting ``settle`` seconds), kept in ``seen`` too."""
        if settle:
            time.sleep(settle)
        out = []
        with contextlib.suppress(queue.Empty):
            while True:
                out.append(self.events.get_nowait())
        self.seen += out
        return out

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._reader.join(timeout=5)

    # -- the requests an editor sends ------------------------------------------------------
    def initialize(self) -> JSON:
        """The capabilities Delve announces; as VS Code asks (lines and columns from 1,
        variable paging and types)."""
        return self.request(
            "initialize",
            {
                "clientID": "dlvsnap-tests",
                "clientName": "dlvsnap tests",
                "adapterID": "go",
                "pathFormat": "path",
                "linesStartAt1": True,
                "columnsStartAt1": True,
                "supportsVariableType": True,
                "supportsVariablePaging": True,
                "supportsRunInTerminalRequest": False,
            },
        )

    def attach_remote(self, **extra: Any) -> None:
        """``attach`` with ``"mode": "remote"`` (a server that already runs the program):
        Delve halts the program and sends ``initialized``, then the response."""
        seq = self.send("attach", {"request": "attach", "mode": "remote", **extra})
        self.wait_event("initialized")
        self.response(seq)

    def set_function_breakpoints(self, *names: str) -> list[JSON]:
        """Replace the client's function breakpoints (``set_function_breakpoints()``
        removes them all); what Delve made of each."""
        body = self.request("setFunctionBreakpoints", {"breakpoints": [{"name": n} for n in names]})
        return list(body.get("breakpoints") or [])

    def set_breakpoints(self, path: str, *lines: int) -> list[JSON]:
        """Replace the client's breakpoints in one source file."""
        body = self.request(
            "setBreakpoints",
            {"source": {"path": path}, "breakpoints": [{"line": n} for n in lines]},
        )
        return list(body.get("breakpoints") or [])

    def configuration_done(self) -> None:
        self.request("configurationDone")

    def continue_(self, thread_id: int) -> None:
        self.request("continue", {"threadId": thread_id})

    def pause(self, thread_id: int) -> None:
        self.request("pause", {"threadId": thread_id})

    def threads(self) -> list[JSON]:
        return list(self.request("threads").get("threads") or [])

    def stack_trace(self, thread_id: int, levels: int = 20) -> list[JSON]:
        body = self.request(
            "stackTrace", {"threadId": thread_id, "startFrame": 0, "levels": levels}
        )
        return list(body.get("stackFrames") or [])

    def scopes(self, frame_id: int) -> list[JSON]:
        return list(self.request("scopes", {"frameId": frame_id}).get("scopes") or [])

    def variables(self, reference: int, filter: str | None = None) -> list[JSON]:
        args: JSON = {"variablesReference": reference}
        if filter:
            args["filter"] = filter
        return list(self.request("variables", args).get("variables") or [])

    def disconnect(self, terminate_debuggee: bool = False) -> None:
        """Leave the server; with ``terminate_debuggee`` False a multiclient server keeps
        listening and leaves the program as it is, stopped or running."""
        self.request("disconnect", {"terminateDebuggee": terminate_debuggee})
