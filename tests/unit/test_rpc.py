"""The transport against a fake peer on 127.0.0.1: one deadline per call however the bytes
trickle in, a cap on a reply's size, a clear DelveError (exit 6) for a peer that does not
speak Delve's JSON-RPC; and HOST:PORT parsing."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from dlvsnap.delve.rpc import MAX_REPLY, JsonRpcConnection, format_address, parse_address
from dlvsnap.errors import (
    AddressError,
    DelveError,
    ExitCode,
    ProtocolError,
    RPCError,
    RPCTimeoutError,
)

Peer = Callable[[socket.socket], None]


@contextlib.contextmanager
def fake_peer(serve: Peer) -> Iterator[int]:
    """A one-connection server on 127.0.0.1 running ``serve`` on the accepted socket."""
    srv = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def run() -> None:
        conn, _ = srv.accept()
        conn.settimeout(30)
        with conn, contextlib.suppress(OSError):
            serve(conn)
            stop.wait(30)  # keep the connection open until the test is done

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        srv.close()
        t.join(10)


def _request(conn: socket.socket) -> dict[str, object]:
    buf = b""
    while not buf.endswith(b"\n"):  # a byte at a time: the next request stays unread
        chunk = conn.recv(1)
        assert chunk, "the client closed before sending a request"
        buf += chunk
    req = json.loads(buf)
    assert isinstance(req, dict)
    return req


def test_a_trickling_peer_cannot_stretch_the_deadline() -> None:
    """One byte every 0.1 s, never a newline: the 1 s call ends after about 1 s (it was a
    new timeout per recv, so such a peer kept dlvsnap waiting without bound)."""

    def trickle(conn: socket.socket) -> None:
        _request(conn)
        for _ in range(100):  # 10 s of trickle, then the peer closes
            conn.sendall(b" ")
            time.sleep(0.1)

    with fake_peer(trickle) as port:
        c = JsonRpcConnection("127.0.0.1", port)
        t0 = time.monotonic()
        with pytest.raises(RPCTimeoutError, match=r"GetVersion: no answer from Delve within 1s"):
            c.call("GetVersion", {}, timeout=1.0)
        assert time.monotonic() - t0 < 2.0
        c.close()


def test_a_reply_without_end_is_capped() -> None:
    """A peer streaming more than MAX_REPLY bytes without a newline: a DelveError naming
    the cap, the connection closed; not a buffer growing as long as the peer sends."""
    sent = 0

    def stream(conn: socket.socket) -> None:
        nonlocal sent
        _request(conn)
        block = b"x" * (1 << 20)
        while sent < MAX_REPLY + (32 << 20):  # more than socket buffers can absorb
            conn.sendall(block)
            sent += len(block)

    with fake_peer(stream) as port:
        c = JsonRpcConnection("127.0.0.1", port)
        with pytest.raises(ProtocolError) as ei:
            c.call("ListFunctions", {"Filter": ""}, timeout=20.0)
        assert "the reply passed 64 MiB without ending" in str(ei.value)
        assert ei.value.exit_code == ExitCode.DELVE
        assert c.closed
        assert sent < MAX_REPLY + (32 << 20)  # the client stopped reading: the peer is stuck


def test_a_big_reply_under_the_cap_is_read() -> None:
    """Delve's legitimate big replies (several MB, in many segments) come through whole."""
    names = [f"example.com/pkg{i}.Function{i}" for i in range(200_000)]

    def big(conn: socket.socket) -> None:
        req = _request(conn)
        reply = {"id": req["id"], "result": {"Funcs": names}, "error": None}
        conn.sendall(json.dumps(reply).encode() + b"\n")

    with fake_peer(big) as port:
        c = JsonRpcConnection("127.0.0.1", port)
        assert c.call("ListFunctions", {"Filter": ""}, timeout=20.0)["Funcs"] == names
        c.close()


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", "the reply is not JSON-RPC"),
        (b"[1, 2, 3]\n", "the reply is not JSON-RPC"),
        (b'{"id": "one", "result": {}}\n', "a reply without a request id"),
    ],
    ids=["http", "json-array", "string-id"],
)
def test_a_peer_that_is_not_delve(answer: bytes, words: str) -> None:
    def garbage(conn: socket.socket) -> None:
        _request(conn)
        conn.sendall(answer)

    with fake_peer(garbage) as port:
        c = JsonRpcConnection("127.0.0.1", port)
        with pytest.raises(DelveError) as ei:
            c.call("SetApiVersion", {"APIVersion": 2}, timeout=5.0)
        msg = str(ei.value)
        assert isinstance(ei.value, ProtocolError)
        assert ei.value.exit_code == ExitCode.DELVE
        assert msg.startswith(f"SetApiVersion: {words}")
        assert f"is 127.0.0.1:{port} a Delve server" in msg
        assert "\n" not in msg
        assert c.closed


def test_replies_out_of_order_and_split_are_matched_by_id() -> None:
    def split(conn: socket.socket) -> None:
        a, b = _request(conn), _request(conn)
        data = (
            json.dumps({"id": b["id"], "result": {"n": 2}, "error": None})
            + "\n\n"
            + json.dumps({"id": a["id"], "result": None, "error": "bad thing\nmore"})
            + "\n"
        ).encode()
        for i in range(0, len(data), 7):
            conn.sendall(data[i : i + 7])
            time.sleep(0.01)

    with fake_peer(split) as port:
        c = JsonRpcConnection("127.0.0.1", port)
        ida, idb = c.send("Eval", {}), c.send("State", {})
        assert c.wait(idb, "State", timeout=5.0) == {"n": 2}
        with pytest.raises(RPCError, match=r"^Eval: bad thing$"):
            c.wait(ida, "Eval", timeout=5.0)
        c.close()


@pytest.mark.parametrize(
    ("address", "host", "port"),
    [
        ("127.0.0.1:4040", "127.0.0.1", 4040),
        ("localhost:1", "localhost", 1),
        ("[::1]:4040", "::1", 4040),
        ("[fe80::1%eth0]:65535", "fe80::1%eth0", 65535),
    ],
)
def test_parse_address(address: str, host: str, port: int) -> None:
    assert parse_address(address) == (host, port)
    assert format_address(host, port) == address


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("nonsense", "HOST:PORT, not 'nonsense'"),
        ("127.0.0.1:99999", "port 99999 is not in 1-65535"),
        ("127.0.0.1:0", "port 0 is not in 1-65535"),
        (":4040", "HOST:PORT, not ':4040'"),
        ("host:", "HOST:PORT, not 'host:'"),
        ("host:-1", "HOST:PORT, not 'host:-1'"),
        ("host:\u0664\u0660", "HOST:PORT"),  # Arabic-Indic digits: str.isdigit() says yes
        ("::1:4040", "an IPv6 address goes in brackets: [::1]:4040"),
        ("a b:4040", "HOST:PORT"),
    ],
)
def test_parse_address_refuses(address: str, words: str) -> None:
    with pytest.raises(AddressError) as ei:
        parse_address(address)
    assert words in str(ei.value)
    assert isinstance(ei.value, ValueError)  # the Python API: a ValueError
    assert ei.value.exit_code == ExitCode.USAGE
