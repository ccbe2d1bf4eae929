"""A guardian process: releases a program dlvsnap attached or connected to when dlvsnap
itself cannot (SIGKILL, a crash, an interpreter torn down).

dlvsnap starts it, in a session of its own (a terminal's Ctrl-C does not reach it), with a
pipe on its stdin, and tells it over that pipe, one line each:

* ``dlv PGID``: a dlv was started in process group PGID (``dlv attach``), before its
  address is known;
* ``server HOST PORT PID DETACH PREFIX``: the Delve server (multiclient) to clean up
  through, the program's pid, whether to detach (1: attach) or leave it stopped (0:
  someone else's server), and the name prefix of dlvsnap's breakpoints;
* ``done``: dlvsnap released the program itself; the guardian exits.

If the pipe ends without ``done`` (dlvsnap is gone, however it ended), the guardian does
what dlvsnap would have: through a new connection it stops the program, removes dlvsnap's
breakpoints and, for an attach, detaches without kill (release.py). A dlv whose server it
cannot reach is sent SIGTERM (Delve's own halt and detach) as a last resort.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import IO


@dataclass
class Guardian:
    """dlvsnap's end of the pipe."""

    proc: subprocess.Popen[bytes]
    pipe: IO[bytes]

    @classmethod
    def start(cls) -> Guardian:
        r, w = os.pipe()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "dlvsnap.delve.guardian"],
                stdin=r,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            os.close(r)
        return cls(proc, os.fdopen(w, "wb", buffering=0))

    def tell(self, *words: object) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.pipe.write((" ".join(map(str, words)) + "\n").encode())

    def dismiss(self) -> None:
        """dlvsnap released the program: the guardian has nothing left to do."""
        self.tell("done")
        with contextlib.suppress(OSError):
            self.pipe.close()
        try:
            self.proc.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _dlv_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _release(host: str, port: int, pid: int, detach: bool, prefix: str) -> None:
    from dlvsnap.delve.client import DelveClient  # noqa: PLC0415 (only after dlvsnap is gone)
    from dlvsnap.delve.release import release  # noqa: PLC0415
    from dlvsnap.delve.rpc import JsonRpcConnection  # noqa: PLC0415

    c = DelveClient(JsonRpcConnection(host, port), default_timeout=10.0)
    try:
        c.set_api_version(2)
        release(c, prefix, pid=pid, detach=detach)
    finally:
        c.conn.close()


def main() -> int:
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    pgid = 0
    server: tuple[str, int, int, bool, str] | None = None
    for raw in sys.stdin.buffer:
        words = raw.decode(errors="replace").split()
        if words == ["done"]:
            return 0
        if len(words) == 2 and words[0] == "dlv":
            pgid = int(words[1])
        elif len(words) == 6 and words[0] == "server":
            _, host, port, pid, detach, prefix = words
            server = (host, int(port), int(pid), detach == "1", prefix)
    # dlvsnap is gone and did not say it released the program
    released = False
    if server is not None:
        host, port, pid, detach, prefix = server
        try:
            _release(host, port, pid, detach, prefix)
            released = True
            what = "detached from" if detach else "left stopped, without its breakpoints,"
            print(f"dlvsnap: ended early; its guardian {what} process {pid}", file=sys.stderr)
        except Exception as e:  # any failure: fall back below
            print(f"dlvsnap: ended early; its guardian could not release: {e}", file=sys.stderr)
    if pgid > 0 and not _dlv_gone(pgid, 10.0 if released else 0.0):
        # Delve's own shutdown (halt, detach without kill for an attach), then for sure
        for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
            if _dlv_gone(pgid, grace):
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
