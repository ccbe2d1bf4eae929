"""JSON-RPC 1.0 over a raw TCP stream: Delve's headless API v2 transport.

Delve serves Go's ``net/rpc/jsonrpc`` codec, not HTTP: one JSON object per request, one
newline-terminated JSON object per response, matched by ``id`` (``Command`` and ``State``
run in the background on the server and can answer out of order).

A reply is capped at MAX_REPLY bytes. Delve's largest replies measured on a Go program
importing net/http (9.8 MB binary, Delve 1.27.2): ListFunctions "" 0.33 MB, ListTypes 0.23
MB, ExamineMemory of 65,536 bytes 87 KB; on dlv's own 23 MB binary ListFunctions is 0.9 MB;
a Stacktrace of 60,000 frames is 12.7 MB (38.7 MB with every frame's locals, which dlvsnap
never asks for). 64 MiB leaves headroom over all of them and still bounds a peer that
streams without a newline.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import socket
import threading
import time
from typing import Any

import orjson

from dlvsnap.errors import (
    AddressError,
    ConnectionClosedError,
    ProtocolError,
    RPCError,
    RPCTimeoutError,
)

JSON = dict[str, Any]

MAX_REPLY = 64 << 20  # bytes in one reply line (see the module's docstring)

_ADDRESS = re.compile(r"(?:\[(?P<v6>[^\[\]\s]+)\]|(?P<host>[^\s:\[\]]+)):(?P<port>[0-9]+)")


def parse_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` (a port from 1 to 65535) as (host, port); anything
    else is an AddressError (exit 2 on the command line, a ValueError in the API)."""
    m = _ADDRESS.fullmatch(address)
    if m is None:
        hint = "; an IPv6 address goes in brackets: [::1]:4040" if address.count(":") > 1 else ""
        raise AddressError(f"a Delve server's address is HOST:PORT, not {address!r}{hint}")
    port = int(m["port"])
    if not 1 <= port <= 65535:
        raise AddressError(f"{address!r}: port {m['port']} is not in 1-65535")
    return m["v6"] or m["host"], port


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class JsonRpcConnection:
    """One socket, request ids, one deadline per call; replies for other ids are kept.

    A reply is at most ``max_reply`` bytes (MAX_REPLY); a peer that exceeds it, answers
    something that is not a JSON object, or trickles bytes past a call's deadline ends the
    call with a DelveError, never an unbounded wait or buffer.
    """

    def __init__(
        self, host: str, port: int, connect_timeout: float = 10.0, max_reply: int = MAX_REPLY
    ) -> None:
        self.host, self.port = host, port
        self.max_reply = max_reply
        try:
            self._sock = socket.create_connection((host, port), timeout=connect_timeout)
        except OSError as e:
            raise ConnectionClosedError(
                f"cannot connect to Delve at {format_address(host, port)}: {e}"
            ) from e
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = bytearray()
        self._scanned = 0  # no newline in _buf[:_scanned]
        self._ids = itertools.count(1)
        self._pending: dict[int, JSON] = {}
        self._lock = threading.Lock()
        self.closed = False

    @property
    def address(self) -> str:
        return format_address(self.host, self.port)

    def send(self, method: str, params: JSON) -> int:
        """Send one request and return its id without waiting for the answer."""
        req_id = next(self._ids)
        payload = {"method": "RPCServer." + method, "params": [params], "id": req_id}
        data = orjson.dumps(payload) + b"\n"
        try:
            self._sock.sendall(data)
        except OSError as e:
            self.closed = True
            raise ConnectionClosedError(
                f"connection to Delve lost while sending {method}: {e}"
            ) from e
        return req_id

    def wait(self, req_id: int, method: str, timeout: float | None) -> JSON:
        """Read replies until the one for ``req_id`` arrives; return its ``result``.

        ``timeout`` bounds the whole call (None: no bound), however the bytes arrive."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._lock.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
            raise RPCTimeoutError(f"{method}: no answer from Delve within {timeout:g}s")
        try:
            while req_id not in self._pending:
                reply = self._read_reply(method, timeout, deadline)
                rid = reply.get("id")
                if not isinstance(rid, int):
                    raise self._protocol_error(f"{method}: a reply without a request id")
                self._pending[rid] = reply
            reply = self._pending.pop(req_id)
        finally:
            self._lock.release()
        err = reply.get("error")
        if err:
            raise RPCError(method, (str(err).strip().splitlines() or ["?"])[0])
        result = reply.get("result")
        return result if isinstance(result, dict) else {}

    def call(self, method: str, params: JSON, timeout: float | None = 30.0) -> JSON:
        return self.wait(self.send(method, params), method, timeout)

    def _read_reply(self, method: str, timeout: float | None, deadline: float | None) -> JSON:
        while True:
            nl = self._buf.find(b"\n", self._scanned)
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                self._scanned = 0
                if line.strip():
                    return self._parse(method, line)
                continue
            self._scanned = len(self._buf)
            if len(self._buf) > self.max_reply:
                raise self._protocol_error(
                    f"{method}: the reply passed {self.max_reply >> 20} MiB without ending "
                    "(dlvsnap's cap on one reply): not Delve's JSON-RPC?"
                )
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RPCTimeoutError(f"{method}: no answer from Delve within {timeout:g}s")
                self._sock.settimeout(left)
            else:
                self._sock.settimeout(None)
            try:
                chunk = self._sock.recv(1 << 20)
            except TimeoutError as e:
                raise RPCTimeoutError(f"{method}: no answer from Delve within {timeout:g}s") from e
            except OSError as e:
                self.closed = True
                raise ConnectionClosedError(f"connection to Delve lost during {method}: {e}") from e
            if not chunk:
                self.closed = True
                raise ConnectionClosedError(f"Delve closed the connection during {method}")
            self._buf += chunk

    def _parse(self, method: str, line: bytes) -> JSON:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            raise self._protocol_error(f"{method}: the reply is not JSON-RPC: {line[:60]!r}")
        return obj

    def _protocol_error(self, what: str) -> ProtocolError:
        """The stream cannot be trusted any more: the connection is closed."""
        self.close()
        return ProtocolError(
            f"{what} (is {self.address} a Delve server, dlv --headless --api-version=2?)"
        )

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(OSError):
                self._sock.close()
