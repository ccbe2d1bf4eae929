"""Start ``dlv`` headless on loopback, learn its port, drain its output, and stop it for sure.

dlv runs in its own session (process group) so a terminal's Ctrl-C reaches only dlvsnap,
which then shuts Delve down in order. The target inherits dlv's stdout/stderr: both pipes
are drained for the whole run (a full pipe would block the target) and copied to the sink
the caller chose; the tail of stderr is kept to explain a failed start.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import select
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from dlvsnap.errors import DelveError, DelveNotFoundError, DelveRefusedError

LISTEN_RE = re.compile(rb"API server listening at:\s*(\S+):(\d+)")


@dataclass
class DlvProcess:
    proc: subprocess.Popen[bytes]
    host: str
    port: int
    _sink: BinaryIO | None
    _stderr_tail: collections.deque[bytes] = field(
        default_factory=lambda: collections.deque(maxlen=50)
    )
    _threads: list[threading.Thread] = field(default_factory=list)
    # Until pass_output(), output is held back: before the target runs, all of it is dlv's
    # own (a refusal is reported once, as dlvsnap's error line, not twice).
    _held: list[bytes] | None = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def pass_output(self) -> None:
        """From now on, copy dlv's (and so the target's) output to the sink."""
        with self._lock:
            held, self._held = self._held or [], None
            for chunk in held:
                self._copy(chunk)

    def error_summary(self) -> str:
        """dlv's own words for why it stopped, from the tail of its stderr."""
        return _first_error_line(b"".join(self._stderr_tail))

    def start_drain(self, stdout_rest: bytes) -> None:
        if stdout_rest:
            self._write(stdout_rest)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        for stream, keep in ((self.proc.stdout, False), (self.proc.stderr, True)):
            t = threading.Thread(target=self._drain, args=(stream, keep), daemon=True)
            t.start()
            self._threads.append(t)

    def start_file_drain(self, fd: int, rest: bytes) -> None:
        """dlv's output appended to a file (``outlive_us``): read as it grows."""
        if rest:
            self._stderr_tail.append(rest)
            self._write(rest)
        t = threading.Thread(target=self._drain_file, args=(fd,), daemon=True)
        t.start()
        self._threads.append(t)

    def _drain_file(self, fd: int) -> None:
        try:
            while True:
                chunk = os.read(fd, 65536)
                if chunk:
                    self._stderr_tail.append(chunk)
                    self._write(chunk)
                elif self.proc.poll() is not None:
                    return
                else:
                    time.sleep(0.05)
        except OSError:
            return
        finally:
            os.close(fd)

    def _drain(self, stream: BinaryIO, keep_tail: bool) -> None:
        fd = stream.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            if keep_tail:
                self._stderr_tail.append(chunk)
            self._write(chunk)

    def _write(self, data: bytes) -> None:
        with self._lock:
            if self._held is not None:
                self._held.append(data)
            else:
                self._copy(data)

    def _copy(self, data: bytes) -> None:
        if self._sink is None:
            return
        try:
            self._sink.write(data)
            self._sink.flush()
        except (OSError, ValueError):
            pass

    def wait_exit(self, timeout: float) -> bool:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def terminate(self) -> None:
        """Stop dlv (and everything in its process group), politely then firmly."""
        if self.proc.poll() is None:
            for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, sig)
                if self.wait_exit(grace):
                    break
        for t in self._threads:
            t.join(timeout=1.0)


def launch(
    dlv: str,
    mode_args: Sequence[str],
    *,
    program_args: Sequence[str],
    sink: BinaryIO | None,
    extra_flags: Sequence[str] = (),
    start_timeout: float = 60.0,
    cwd: str | None = None,
    outlive_us: bool = False,
) -> DlvProcess:
    """Run ``dlv <mode_args> --headless ... -- <program_args>`` and wait for its port.

    ``mode_args`` is for example ``["exec", "/path/prog"]``. Raises DelveRefusedError with
    Delve's own words when it exits before listening or right after (version check).
    ``outlive_us``: dlv writes its output to a file (unlinked at once, read by dlvsnap)
    instead of pipes: a Go program writing to a broken pipe on fd 1 or 2 dies of SIGPIPE,
    and dlv must survive dlvsnap's death until the program it attached to is released
    (guardian.py). Not for a launch: the program's own output goes through dlv's.
    """
    if not os.path.isfile(dlv) or not os.access(dlv, os.X_OK):
        raise DelveNotFoundError(
            f"dlv not found at {dlv}: `dlvsnap setup` installs the pinned Delve; or pass --dlv"
        )
    cmd = [
        dlv,
        *mode_args,
        "--headless",
        "--api-version=2",
        "--listen=127.0.0.1:0",
        *extra_flags,
    ]
    if program_args:
        cmd += ["--", *program_args]
    if outlive_us:
        return _launch_to_file(cmd, sink, start_timeout, cwd)
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            cwd=cwd,
            env=_dlv_env(),
        )
    except OSError as e:
        raise DelveNotFoundError(f"cannot run dlv at {dlv}: {e.strerror}") from e
    assert proc.stdout is not None and proc.stderr is not None
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    bufs = {out_fd: bytearray(), err_fd: bytearray()}
    open_fds = [out_fd, err_fd]
    deadline = time.monotonic() + start_timeout
    while True:
        m = LISTEN_RE.search(bufs[out_fd])
        if m:
            host, port = m.group(1).decode(), int(m.group(2))
            rest = bytes(bufs[out_fd][m.end() :]).lstrip(b"\r\n")
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            _kill(proc)
            raise DelveError(f"dlv did not start listening within {start_timeout:g}s")
        if not open_fds or (proc.poll() is not None and not _readable(open_fds)):
            _kill(proc)
            raise DelveRefusedError(_first_error_line(bytes(bufs[err_fd]) or bytes(bufs[out_fd])))
        ready, _, _ = select.select(open_fds, [], [], min(remaining, 0.5))
        for fd in ready:
            chunk = os.read(fd, 65536)
            if chunk:
                bufs[fd] += chunk
            else:
                open_fds.remove(fd)
    err = bytes(bufs[err_fd])
    dp = DlvProcess(proc=proc, host=host, port=port, _sink=sink)
    if err:
        dp._stderr_tail.append(err)
        dp._write(err)
    dp.start_drain(rest)
    return dp


def _launch_to_file(
    cmd: list[str], sink: BinaryIO | None, start_timeout: float, cwd: str | None
) -> DlvProcess:
    """``launch`` with dlv's stdout and stderr appended to one unlinked file."""
    fd, path = tempfile.mkstemp(prefix="dlvsnap-dlv-", suffix=".log")
    os.close(fd)
    try:
        wfd = os.open(path, os.O_WRONLY | os.O_APPEND)
        rfd = os.open(path, os.O_RDONLY)
    finally:
        os.unlink(path)
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=wfd,
            stderr=wfd,
            start_new_session=True,
            cwd=cwd,
            env=_dlv_env(),
        )
    except OSError as e:
        os.close(rfd)
        raise DelveNotFoundError(f"cannot run dlv at {cmd[0]}: {e.strerror}") from e
    finally:
        os.close(wfd)
    buf = bytearray()
    deadline = time.monotonic() + start_timeout
    while not (m := LISTEN_RE.search(buf)):
        chunk = os.read(rfd, 65536)
        if chunk:
            buf += chunk
            continue
        if proc.poll() is not None:
            buf += os.read(rfd, 1 << 20)
            if LISTEN_RE.search(buf):
                continue
            os.close(rfd)
            _kill(proc)
            raise DelveRefusedError(_first_error_line(bytes(buf)))
        if time.monotonic() > deadline:
            os.close(rfd)
            _kill(proc)
            raise DelveError(f"dlv did not start listening within {start_timeout:g}s")
        time.sleep(0.02)
    dp = DlvProcess(proc=proc, host=m.group(1).decode(), port=int(m.group(2)), _sink=sink)
    before = bytes(buf[: m.start()])
    if before.strip():
        dp._stderr_tail.append(before)
        dp._write(before)
    dp.start_file_drain(rfd, bytes(buf[m.end() :]).lstrip(b"\r\n"))
    return dp


def _dlv_env() -> dict[str, str]:
    # Delve >= 1.24 calls golang.org/x/telemetry's Start, which forks a "dlv ** telemetry **"
    # child in a session of its own: it would outlive a killed dlv. GO_TELEMETRY_CHILD=2
    # tells x/telemetry that this process descends from that child, so it forks nothing.
    return {**os.environ, "GO_TELEMETRY_CHILD": "2"}


def _readable(fds: list[int]) -> bool:
    ready, _, _ = select.select(fds, [], [], 0)
    return bool(ready)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _first_error_line(raw: bytes) -> str:
    text = raw.decode(errors="replace")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        low = ln.lower()
        if low.startswith(("could not launch process", "error", "version of delve")):
            return "dlv: " + ln
        if "too old for this version of delve" in low or "too new" in low:
            return "dlv: " + ln
    return "dlv exited at start-up: " + (lines[-1] if lines else "no output")
