"""Leaving a program that dlvsnap did not start: stopped, free of dlvsnap's breakpoints, and
(attach) detached without kill, running, on every exit path.

Why a halt needs care (Delve's pkg/proc/native, read at v1.27): ``halt`` sends SIGTRAP to the
*process* (``kill(pid, SIGTRAP)``), whether it runs or not. When the program is already
stopped, or stops at a breakpoint before the signal lands, the SIGTRAP stays pending in the
process; once Delve detaches, the kernel delivers it and the Go runtime dies with
``SIGTRAP: trace trap``. Delve's own disconnect handling (halt, then detach) has that race,
so dlvsnap never leaves the detach to a closing socket: it halts only a running program,
removes its breakpoints, and before a detach lets Delve consume any SIGTRAP still pending
(the program is resumed with no breakpoint of dlvsnap's left, Delve takes the stray trap
as a spurious stop and goes on, and a second halt stops it) until /proc shows none.

A breakpoint is dlvsnap's when its name starts with the session's prefix (``dlvsnap<pid>x<n>n``):
names are carried by every stop and by ListBreakpoints, so ownership never depends on
what one process remembers (a guardian process cleans up after a killed dlvsnap the same
way, see guardian.py).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from dlvsnap.delve.client import DelveClient
from dlvsnap.delve.types import DebuggerState
from dlvsnap.errors import DelveError

SIGTRAP_BIT = 1 << (5 - 1)  # signal 5, in /proc's pending masks


def sigtrap_pending(pid: int) -> bool:
    """Whether a SIGTRAP waits for the process (shared queue) or one of its threads.
    False when /proc cannot say (no such process, another machine)."""
    paths = [Path(f"/proc/{pid}/status")]
    with contextlib.suppress(OSError):
        paths += sorted(Path(f"/proc/{pid}/task").glob("*/status"))
    for p in paths:
        try:
            text = p.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith(("ShdPnd:", "SigPnd:")) and int(line.split()[1], 16) & SIGTRAP_BIT:
                return True
    return False


def owned(name: str, prefix: str) -> bool:
    """Whether a breakpoint of that name is dlvsnap's: named with the prefix, or a
    watchpoint not renamed yet, named by its expression (``watch_expr``)."""
    return bool(prefix) and (name.startswith(prefix) or f'len("{prefix}")' in name)


def watch_expr(addr: int, ctype: str, prefix: str) -> str:
    """The memory a watchpoint of dlvsnap's watches, as an expression that names the
    session (``+ 0*len("PREFIX")`` adds nothing to the address)."""
    return f'*(*{ctype})({addr:#x} + 0*len("{prefix}"))'


def stop(client: DelveClient, timeout: float = 10.0) -> DebuggerState:
    """The program stopped: as it is when it already is (no halt, no stray SIGTRAP), else
    halted. A continue another connection has in flight ends with the halt."""
    st = client.state(non_blocking=True)
    if st.running:
        st = client.command("halt", timeout=timeout)
        deadline = time.monotonic() + timeout
        while st.running and time.monotonic() < deadline:
            time.sleep(0.01)
            st = client.state(non_blocking=True)
    return st


def clear_breakpoints(client: DelveClient, prefix: str) -> None:
    """Remove every breakpoint named with ``prefix`` (the program must be stopped)."""
    for bp in client.list_breakpoints():
        if owned(bp.name, prefix):
            with contextlib.suppress(DelveError):  # gone meanwhile
                client.clear_breakpoint(bp.id)


def settle_signals(client: DelveClient, pid: int, timeout: float = 10.0) -> None:
    """Let Delve consume any SIGTRAP pending in the stopped program: resume it (with no
    breakpoint of dlvsnap's left, the stray trap stops it at once, and Delve, seeing no
    breakpoint and no halt asked for, resumes it: the signal is gone), then halt it, once
    it runs, which stops it again. Repeated while /proc still shows one pending."""
    deadline = time.monotonic() + timeout
    while sigtrap_pending(pid):
        if time.monotonic() > deadline:
            raise DelveError(f"a SIGTRAP stays pending in process {pid}: not detaching")
        conn = client.conn
        cont = conn.send("Command", {"name": "continue"})
        # Halt only once Delve runs the continue: a halt that lands before it would be
        # cleared by the continue's start, and the program would run on.
        running_by = min(deadline, time.monotonic() + 1.0)
        while not client.state(non_blocking=True).running and time.monotonic() < running_by:
            time.sleep(0.005)
        time.sleep(0.05)
        halts: list[int] = []
        while True:
            halts.append(conn.send("Command", {"name": "halt"}))
            try:
                st = client.command_reply(cont, timeout=1.0)
                break
            except DelveError:
                if time.monotonic() > deadline:
                    raise
        for h in halts:
            with contextlib.suppress(DelveError):
                client.command_reply(h, timeout=5.0)
        if st.exited:
            return


def release(
    client: DelveClient,
    prefix: str,
    *,
    pid: int,
    detach: bool,
    settle: bool = False,
    halt: bool = True,
) -> None:
    """Stop the program and remove dlvsnap's breakpoints. ``settle`` (implied by
    ``detach``): no SIGTRAP left pending, for a program that will be detached. ``detach``:
    hand the program back to itself (Detach without kill; a server dlvsnap started then
    exits). ``halt`` False (dlvsnap neither resumed the program nor set anything): a
    program found running is left to the client that resumed it, untouched."""
    st = stop(client) if halt else client.state(non_blocking=True)
    if st.running and not halt:
        return
    clear_breakpoints(client, prefix)  # after an exit too: a restart would set them again
    if st.exited:
        return
    if (settle or detach) and pid > 0 and os.path.exists(f"/proc/{pid}"):
        settle_signals(client, pid)
    if detach:
        client.detach(kill=False)
