"""JSON-RPC 1.0 over a raw TCP stream: Delve's headless API v2 transport.

Delve serves Go's ``net/rpc/jsonrpc`` codec, not HTTP: one JSON object per request, one
newline-terminated JSON object per response, matched by ``id`` (``Command`` and ``State``
run in the background on the server and can answer out of order).
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
from typing import Any

import orjson

from dlvsnap.errors import ConnectionClosedError, RPCError, RPCTimeoutError

JSON = dict[str, Any]


class JsonRpcConnection:
    """One socket, request ids, per-call timeouts; replies for other ids are kept."""

    def __init__(self, host: str, port: int, connect_timeout: float = 10.0) -> None:
        self.host, self.port = host, port
        try:
            self._sock = socket.create_connection((host, port), timeout=connect_timeout)
        except OSError as e:
            raise ConnectionClosedError(f"cannot connect to Delve at {host}:{port}: {e}") from e
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = bytearray()
        self._ids = itertools.count(1)
        self._pending: dict[int, JSON] = {}
        self._lock = threading.Lock()
        self.closed = False

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
        """Read replies until the one for ``req_id`` arrives; return its ``result``."""
        with self._lock:
            while req_id not in self._pending:
                reply = self._read_reply(method, timeout)
                self._pending[int(reply.get("id") or 0)] = reply
            reply = self._pending.pop(req_id)
        err = reply.get("error")
        if err:
            raise RPCError(method, str(err).strip().splitlines()[0])
        result = reply.get("result")
        return result if isinstance(result, dict) else {}

    def call(self, method: str, params: JSON, timeout: float | None = 30.0) -> JSON:
        return self.wait(self.send(method, params), method, timeout)

    def _read_reply(self, method: str, timeout: float | None) -> JSON:
        self._sock.settimeout(timeout)
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                if line.strip():
                    obj = orjson.loads(line)
                    if not isinstance(obj, dict):
                        raise ConnectionClosedError(f"unexpected reply from Delve: {line[:80]!r}")
                    return obj
                continue
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

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(OSError):
                self._sock.close()
