"""The command line as a user runs it (`python -m dlvsnap` in a process), where no Go or
Delve is needed: a bad command line is one line and exit 2, a --connect peer that is not
Delve is one line and exit 6, an --attach PID dlvsnap may not read says so, and output
into a pipe whose reader is gone ends quietly with exit 0."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import dlvsnap
from dlvsnap.errors import AddressError, ExitCode
from tests.support import run_dlvsnap
from tests.test_report import _small_run
from tests.unit.test_snapfile import _saved


def _dlvsnap(*args: str, user: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_dlvsnap(*args, timeout=60, user=user)


def _one_line_error(p: subprocess.CompletedProcess[str]) -> str:
    """stderr is exactly one line, `dlvsnap: ...`; returns what follows the prefix."""
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("dlvsnap: "), p.stderr
    return lines[0].removeprefix("dlvsnap: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("watch",), "missing option '--map' (or '--site') (dlvsnap watch --help)"),
        (
            ("watch", "x", "--map", "m", "--frame", "1", "--in", "main.main"),
            "--frame and --in both choose the frame: give one (dlvsnap watch --help)",
        ),
        (
            ("watch", "x", "--map", "m", "--map", "n", "--site", "main.go:3"),
            "--site chooses one map: give one --map with it (dlvsnap watch --help)",
        ),
        (
            ("watch", "x", "--map", "m", "--map", "m"),
            "the same --map twice (dlvsnap watch --help)",
        ),
        (
            ("watch", "x", "--map", "m", "--frame", "-1"),
            "invalid value for '--frame': -1 is not in the range x>=0 (dlvsnap watch --help)",
        ),
        (
            ("watch", "x", "--map", "m", "--bogus"),
            "no such option '--bogus' (Did you mean one of: '--ops', '--verbose'?)"
            " (dlvsnap watch --help)",
        ),
        (
            ("snap", "x", "--map", "m", "--limit", "-1"),
            "invalid value for '--limit': -1 is not in the range x>=0 (dlvsnap snap --help)",
        ),
        (
            ("watch", "x", "--map", "m", "--ops", "insert"),
            "invalid value for --ops: insert: choose from delete, clear, assign"
            " (dlvsnap watch --help)",
        ),
        (
            ("watch", "x", "--map", "m", "--kill"),
            "--kill goes with --max-events or --until (a watch that ends before the program)"
            " (dlvsnap watch --help)",
        ),
        (
            ("watch", "--attach", "5", "--map", "m", "--until", "main.main", "--kill"),
            "--kill goes with a TARGET to launch (--attach releases the program, --connect "
            "leaves it stopped) (dlvsnap watch --help)",
        ),
        (
            ("watch", "--connect", "127.0.0.1:1", "--map", "m", "--max-events", "1", "--kill"),
            "--kill goes with a TARGET to launch (--attach releases the program, --connect "
            "leaves it stopped) (dlvsnap watch --help)",
        ),
        (
            ("watch", "x", "--map", "m", "--until", " "),
            "--until needs a LOCATION (FILE:LINE or a function) (dlvsnap watch --help)",
        ),
        (
            ("watch", "x", "--map", "m", "--until"),
            "option '--until' requires an argument",
        ),
        (("frobnicate",), "no such command 'frobnicate' (dlvsnap --help)"),
        (("diff", "a", "b", "c"), "got unexpected extra argument (c) (dlvsnap diff --help)"),
        (
            ("snap", "--map", "m"),
            "give exactly one of TARGET, --connect HOST:PORT, --attach PID, --core CORE BINARY"
            " (dlvsnap snap --help)",
        ),
        (("watch", "/no/such/prog", "--map", "m"), "invalid value for TARGET: /no/such/prog: no"),
        (
            ("watch", "--attach", "-5", "--map", "m"),
            "invalid value for '--attach': -5 is not in the range x>=1 (dlvsnap watch --help)",
        ),
        (
            ("snap", "--attach", "0", "--map", "m"),
            "invalid value for '--attach': 0 is not in the range x>=1 (dlvsnap snap --help)",
        ),
        (
            ("watch", "--connect", "nonsense", "--map", "m"),
            "invalid value for '--connect': a Delve server's address is HOST:PORT, not"
            " 'nonsense' (dlvsnap watch --help)",
        ),
        (
            ("snap", "--connect", "127.0.0.1:99999", "--map", "m"),
            "invalid value for '--connect': '127.0.0.1:99999': port 99999 is not in 1-65535"
            " (dlvsnap snap --help)",
        ),
        (
            ("watch", "--attach", "99999999", "--map", "m", "--target-output", "/no/dir/out"),
            "could not open file '/no/dir/out': No such file or directory",
        ),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else "",
)
def test_a_bad_command_line_is_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    p = _dlvsnap(*args)
    assert p.returncode == ExitCode.USAGE, p.stderr
    assert _one_line_error(p).startswith(message)


def test_the_api_refuses_a_bad_address() -> None:
    """dlvsnap.connect goes through Session.connect: the same check as --connect (it
    connected to port 99999 % 65536 = 34463)."""
    with pytest.raises(AddressError, match=r"port 99999 is not in 1-65535"):
        dlvsnap.connect("127.0.0.1:99999")
    with pytest.raises(ValueError, match=r"HOST:PORT, not 'nonsense'"):
        dlvsnap.connect("nonsense")


@pytest.mark.parametrize(
    ("option", "words"),
    [
        (("--goroutine", "0"), "invalid value for '--goroutine': 0 is not in the range x>=1"),
        (("--frame", "-1"), "invalid value for '--frame': -1 is not in the range x>=0"),
    ],
)
def test_snap_bad_goroutine_or_frame_is_a_bad_command_line(
    tmp_path: Path, option: tuple[str, str], words: str
) -> None:
    """Refused before anything runs (they reached Delve: exit 6 "unknown goroutine 0", exit
    3 "Internal debugger error: runtime error: slice bounds out of range [-1:]")."""
    prog = tmp_path / "prog"
    prog.write_bytes(b"")
    p = _dlvsnap("snap", str(prog), "--at", "main.main", "--map", "m", *option)
    assert p.returncode == ExitCode.USAGE, p.stderr
    assert _one_line_error(p) == f"{words} (dlvsnap snap --help)"


@contextmanager
def _not_delve(family: socket.AddressFamily, host: str) -> Iterator[int]:
    """A peer that answers like an HTTP server, whatever it is sent."""
    srv = socket.create_server((host, 0), family=family)

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            conn.recv(4096)  # until the client closes

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        srv.close()
        t.join(10)


@pytest.mark.parametrize(
    ("family", "host", "address"),
    [(socket.AF_INET, "127.0.0.1", "127.0.0.1:{}"), (socket.AF_INET6, "::1", "[::1]:{}")],
    ids=["ipv4", "ipv6"],
)
def test_connect_to_a_peer_that_is_not_delve(
    family: socket.AddressFamily, host: str, address: str
) -> None:
    """One line, exit 6 (it was orjson's JSONDecodeError and a traceback, exit 1); the
    [IPv6]:PORT form reaches the peer."""
    with _not_delve(family, host) as port:
        addr = address.format(port)
        p = _dlvsnap("snap", "--connect", addr, "--map", "m")
    assert p.returncode == ExitCode.DELVE, p.stderr
    assert _one_line_error(p) == (
        "SetApiVersion: the reply is not JSON-RPC: b'HTTP/1.1 400 Bad Request\\r' "
        f"(is {addr} a Delve server, dlv --headless --api-version=2?)"
    )


def _unreadable_process() -> tuple[int, list[str]]:
    """A process whose /proc/PID/exe dlvsnap may not read, and how to run dlvsnap for it:
    as root, dlvsnap runs as nobody next to a root process; else pid 1 (root's)."""
    if os.getuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv to run dlvsnap as another user")
        nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
        if _dlvsnap("--version", user=nobody).returncode != 0:
            pytest.skip("running as root, and user nobody cannot run this Python and dlvsnap")
        return os.getpid(), nobody
    try:
        os.readlink("/proc/1/exe")
    except PermissionError:
        return 1, []
    pytest.skip("pid 1 is readable by this user: no process of another user to try")


def test_attach_to_a_process_dlvsnap_may_not_read() -> None:
    """The process exists: not "no process PID" (as before) but what is wrong."""
    pid, user = _unreadable_process()
    p = _dlvsnap("snap", "--attach", str(pid), "--map", "m", user=user)
    assert p.returncode == ExitCode.TARGET, p.stderr
    line = _one_line_error(p)
    assert line.startswith(
        f"cannot attach to process {pid}: permission denied reading /proc/{pid}/exe (it runs "
        "as another user, or is not dumpable); "
    ), line
    assert "CAP_SYS_PTRACE" in line or "ptrace_scope" in line, line


def test_attach_to_no_process() -> None:
    p = _dlvsnap("watch", "--attach", "99999999", "--map", "m")
    assert p.returncode == ExitCode.TARGET, p.stderr
    assert _one_line_error(p) == "no process 99999999 to attach to (No such file or directory)"


def _into_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """Run dlvsnap with its stdout a pipe whose reader is already gone (`| head -0`)."""
    r, w = os.pipe()
    os.close(r)
    try:
        p = subprocess.run(
            [sys.executable, "-m", "dlvsnap", *args],
            stdout=w,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(w)
    return subprocess.CompletedProcess(p.args, p.returncode, "", p.stderr)


def test_diff_into_a_closed_pipe(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, _ = _saved(tmp_path / "a")
    b, _ = _saved(tmp_path / "b")
    assert _dlvsnap("diff", str(a), str(b)).returncode == 0
    p = _into_closed_pipe("diff", str(a), str(b))
    assert (p.returncode, p.stderr) == (0, "")


def test_report_into_a_closed_pipe(tmp_path: Path) -> None:
    src = tmp_path / "events.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in _small_run()))
    p = _into_closed_pipe("report", str(src), "-o", str(tmp_path / "r.html"))
    assert (p.returncode, p.stderr) == (0, "")
    assert (tmp_path / "r.html").stat().st_size > 0


def test_help_into_a_closed_pipe() -> None:
    p = _into_closed_pipe("watch", "--help")
    assert (p.returncode, p.stderr) == (0, "")
