"""A watch that ends where the user says (``--until LOCATION``): the breakpoint there, and
where each watched map is to be read once the program reached it. Asks Delve; stops.py
tells a stop there from map calls and the user's stops, engine.py decodes.

Which header the final snapshot reads, in order:

* ``named``: the map's expression, evaluated where the program reached LOCATION (frame 0
  of that goroutine, or the frame of ``--in FUNC`` when it is on its stack), names a map:
  that one (a package variable's map now, a local in scope there).
* ``last_seen``: the expression names nothing there (a local out of scope, ``--site``
  alone): the header the watch last saw. A header on a goroutine's stack is read only if
  the frame that held it at the map's first watched call (its function, and its canonical
  frame address's distance from the stack's top, which stack copies keep) is still on
  that goroutine's stack; the header's address is then recomputed from the stack's top
  (the stack may have moved).
* ``none``: nothing to read, and why: the frame that held a stack map returned, its
  goroutine ended, the map is nil, or the watch never found it.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlvsnap.delve.client import BreakpointSpec, DelveClient
from dlvsnap.delve.types import Frame, LoadConfig
from dlvsnap.errors import DelveError, RPCError, UsageError
from dlvsnap.kinds import Kind
from dlvsnap.session import Session
from dlvsnap.snap import type_descriptor
from dlvsnap.watch.hits import Reached
from dlvsnap.watch.traps import SP_REGISTER
from dlvsnap.watch.watched import WatchedMap
from dlvsnap.watch.where import names_function, plain_name

# Frames asked for to find the frame that holds a stack header, or --in's frame.
STACK_DEPTH = 64


def place(session: Session, spec: str) -> frozenset[int]:
    """A breakpoint of dlvsnap's at LOCATION (``file:line`` or a function, as Delve finds
    it; a bad one is a UsageError, exit 2, in Delve's words). A breakpoint of the user's
    already at one of its addresses (``--connect``: Delve refuses a second one there)
    stands for it at that address. The ids of the breakpoints that mean LOCATION."""
    try:
        pcs = session.client.find_location(plain_name(spec))
    except RPCError as e:
        raise UsageError(f"--until {spec}: {e.message}") from None
    if not pcs:
        raise UsageError(f"--until {spec}: Delve finds no such location")
    theirs = [
        b
        for b in session.client.list_breakpoints()
        if b.id > 0 and not session.owns(b) and set(b.addrs) & set(pcs)
    ]
    taken = {a for b in theirs for a in b.addrs}
    ids = {b.id for b in theirs}
    rest = tuple(pc for pc in pcs if pc not in taken)
    if rest:
        ids.add(session.create_breakpoint(BreakpointSpec(addrs=rest)).id)
    return frozenset(ids)


@dataclass(frozen=True)
class Holder:
    """The frame that holds a map's header on its goroutine's stack."""

    function: str
    frame_offset: int  # its canonical frame address minus the stack's top (Frame.frame_offset)


def holder(client: DelveClient, watched: WatchedMap) -> Holder | None:
    """The frame holding a stack map's header now (at one of its calls), or None when
    the goroutine's stack has no frame around it within STACK_DEPTH frames."""
    return _holding(client.stacktrace(watched.goroutine, STACK_DEPTH), -watched.stack_offset)


def _holding(frames: list[Frame], offset: int) -> Holder | None:
    """The frame whose area holds the address ``offset`` bytes from the stack's top: the
    innermost frame whose canonical frame address is above it (a frame's locals lie
    between its callee's CFA and its own)."""
    f = next((f for f in frames if f.frame_offset > offset), None)
    return Holder(f.function, f.frame_offset) if f is not None else None


@dataclass(frozen=True)
class Found:
    """Where a watched map is read at LOCATION: ``addr`` 0 when nothing is to be read."""

    addr: int
    type_addr: int  # its type descriptor (0: the one the watch's calls were given)
    how: str  # "named" | "last_seen" | "none"
    note: str = ""  # how it was found when not named there, or why there is nothing


def find(
    session: Session,
    reached: Reached,
    *,
    expr: str,
    shown: str,
    watched: WatchedMap,
    in_func: str | None,
    held_by: Holder | None,
) -> Found:
    """Where the watched map ``shown`` (``expr`` in Delve's syntax, "" with ``--site``
    alone) is once the program reached LOCATION (see the module's docstring)."""
    named = (
        _named(session, reached, expr=expr, shown=shown, watched=watched, in_func=in_func)
        if expr
        else None
    )
    if isinstance(named, Found):
        return named
    why = named or "--site names no variable"
    if not watched.known:
        return Found(0, 0, "none", f"{why}, and no watched call found the map before")
    last = "read at the header the watch last saw"
    if watched.mode == "var":
        header = session.read_word(watched.var_addr)
        if header == 0:
            return Found(0, 0, "none", f"{why}; its variable holds a nil map")
        return Found(header, 0, "last_seen", f"{why}; {last}, the variable's map {header:#x}")
    if watched.mode == "heap":
        return Found(watched.header, 0, "last_seen", f"{why}; {last}, {watched.header:#x}")
    return _on_stack(session.client, watched, held_by, why, session.target.goarch)


def _named(
    session: Session,
    reached: Reached,
    *,
    expr: str,
    shown: str,
    watched: WatchedMap,
    in_func: str | None,
) -> Found | str:
    """The map ``expr`` names where the program reached LOCATION, or why it names none."""
    client = session.client
    where = f"{reached.location} (goroutine {reached.goroutine})"
    try:
        frame = _frame(client, reached.goroutine, in_func)
        v = client.eval(expr, reached.goroutine, frame, LoadConfig())
    except RPCError as e:
        return f"{shown} is not in scope there ({e.message})"
    if v.kind != Kind.MAP:
        return f"{shown} is {v.type or 'not a map'} there"
    if v.base == 0:
        return Found(0, 0, "none", f"{shown} is a nil map at {where}: nothing to read")
    seen = _header_now(session, watched)
    same = watched.known and seen == v.base
    note = (
        f"{shown} names another map at {where} ({v.base:#x}) than the one the watch last "
        f"saw ({seen:#x}): the final snapshot is of the one it names"
        if watched.known and seen and not same
        else ""
    )
    return Found(v.base, 0 if same else type_descriptor(session, v.type), "named", note)


def _on_stack(
    client: DelveClient, w: WatchedMap, held_by: Holder | None, why: str, goarch: str
) -> Found:
    """A stack map out of scope at LOCATION: read where it is now if the frame that held
    it is still there; gone if that frame returned or its goroutine ended."""
    g = w.goroutine
    try:
        frames = client.stacktrace(g, STACK_DEPTH)
        hi = client.eval("runtime.curg.stack.hi", g).as_int()
        sp = client.eval(SP_REGISTER.get(goarch, "SP"), g).as_int()
    except (DelveError, ValueError):
        return Found(0, 0, "none", f"{why}; goroutine {g}, whose stack held it, has ended")
    header = hi - w.stack_offset
    gone = f"{why}; the map is gone: it lived on goroutine {g}'s stack"
    if header < sp:
        return Found(0, 0, "none", f"{gone}, in a frame that has returned")
    if held_by is not None:
        if not any(
            f.function == held_by.function and f.frame_offset == held_by.frame_offset
            for f in frames
        ):
            return Found(0, 0, "none", f"{gone}, in {held_by.function}'s frame, which returned")
        return Found(
            header,
            0,
            "last_seen",
            f"{why}; read at the header the watch last saw, {header:#x}, in "
            f"{held_by.function}'s frame (goroutine {g})",
        )
    return Found(
        header,
        0,
        "last_seen",
        f"{why}; read at the header the watch last saw, {header:#x}, on goroutine {g}'s "
        "live stack (which frame holds it was not found)",
    )


def _header_now(session: Session, w: WatchedMap) -> int:
    """The header the watch follows, where it is now (0: not known)."""
    if w.mode == "var":
        return session.read_word(w.var_addr)
    if w.mode == "stack":
        try:
            hi = session.client.eval("runtime.curg.stack.hi", w.goroutine).as_int()
        except (DelveError, ValueError):
            return 0
        return hi - w.stack_offset
    return w.header


def _frame(client: DelveClient, goroutine: int, in_func: str | None) -> int:
    """The frame that evaluates EXPR at LOCATION: ``--in``'s function's when it is on the
    goroutine's stack, else the innermost."""
    if not in_func:
        return 0
    frames = client.stacktrace(goroutine, STACK_DEPTH)
    return next((i for i, f in enumerate(frames) if names_function(in_func, f.function)), 0)
