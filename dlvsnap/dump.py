"""A core file of a stopped program, written by Delve (`dlvsnap dump`): DumpStart, then
DumpWait polled until the dump ends, DumpCancel on Ctrl-C (docs/census-research.md,
section 1).

Delve holds the target until the dump ends (every other target call waits), and DumpWait
does not wait for it, so the dump is watched through DumpWait alone. A dump has succeeded
only if it ended with AllDone and no error: a cancelled one also ends, without AllDone.
The file is written by the Delve server, on its machine; dlvsnap removes a partial file
only where it is dlvsnap's own Delve (attach, launch), which runs here.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from dlvsnap.delve.client import DelveClient
from dlvsnap.delve.types import DumpState
from dlvsnap.errors import DelveError, DlvsnapError, RPCError
from dlvsnap.session import Session

POLL_MS = 500  # DumpWait's wait: progress twice a second, an end seen at once
CANCEL_WAIT = 30.0  # seconds for a cancelled dump to end (Delve checks between 1 MiB chunks)


@dataclass(frozen=True)
class Dumped:
    path: str  # as Delve was given it (the server's machine)
    state: DumpState
    seconds: float


def dump(
    s: Session,
    destination: str,
    on_progress: Callable[[DumpState], None] | None = None,
    poll_ms: int = POLL_MS,
) -> Dumped:
    """Write a core of the session's program, stopped, to ``destination`` (a path on the
    Delve server's machine); DelveError when Delve cannot (it cannot write the file, the
    backend cannot dump, the dump failed or was cancelled by another client). On Ctrl-C or
    any other exception while it runs, the dump is cancelled and waited for (and a partial
    file of dlvsnap's own Delve removed) before the exception goes on."""
    s.check_can_run("dump a core")  # a core file is no process to dump
    local = s.mode in ("attach", "launch")  # dlv runs on this machine, in our directory
    t0 = time.monotonic()
    try:
        st = s.client.dump_start(destination)
    except RPCError as e:
        raise DelveError(f"Delve cannot write a core to {destination}: {e.message}") from None
    except BaseException:  # Ctrl-C mid-call: the dump may have started
        _cancel(s)
        raise
    try:
        while st.dumping:
            if on_progress is not None:
                on_progress(st)
            st = s.client.dump_wait(poll_ms)
    except BaseException:  # stop it before the program is released or left
        _cancel(s)
        if local:
            _remove(destination)
        raise
    seconds = time.monotonic() - t0
    if st.err or not st.all_done:
        if local:
            _remove(destination)
        if st.err:
            raise DelveError(f"the core dump to {destination} failed: {st.err}")
        raise DelveError(f"the core dump to {destination} was cancelled (by another client?)")
    if on_progress is not None:
        on_progress(st)
    return Dumped(destination, st, seconds)


def _cancel(s: Session) -> None:
    """DumpCancel, then wait for the dump to end: through a second connection where the
    server takes one (the first may be mid-call), else through the first."""
    c: DelveClient | None = None
    with contextlib.suppress(DlvsnapError, OSError):
        if s.mode == "attach" or (s.mode == "connect" and not s.single_client):
            c = s._second_client()
        client = c or s.client
        try:
            client.dump_cancel()
            deadline = time.monotonic() + CANCEL_WAIT
            while client.dump_wait(POLL_MS).dumping and time.monotonic() < deadline:
                pass
        finally:
            if c is not None:
                c.conn.close()


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
