"""What the stop source hands on: a hit on a map entry point, and control of the call it
stopped, in plain data (no Delve types): the recorder and the tests work from these alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from dlvsnap.model import Location


@dataclass(frozen=True)
class KeyArg:
    """The entry point's key argument as Delve read it: a string's data and length, or an
    integer value (the key itself for the fast variants, a pointer to it for the generic
    entry points); ``value`` None when Delve could not read it as an integer."""

    is_string: bool
    base: int = 0
    length: int = 0
    value: int | None = None
    indirect: bool = False  # ``value`` points to the key's bytes (whatever the entry point)


@dataclass(frozen=True)
class Hit:
    """A stop at a runtime map entry point (``runtime.mapdelete_fast64``...)."""

    entry: str
    goroutine: int
    map_type: int  # the runtime type descriptor the entry point was given
    map_addr: int  # the map header the entry point was given (0: a nil map)
    key: KeyArg | None  # None for mapclear, or when the argument was not returned
    location: Location  # where the program called it (the first frame outside the runtime)
    via: str  # the reflect entry point on the way, if any
    caller_frame: int  # that frame's number in the goroutine's stack
    # the whole stack as Delve numbers its frames (inlined calls are frames of their own),
    # when this hit carried or needed a stack trace (while the map is being resolved)
    frames: tuple[Location, ...] = ()
    stack_lo: int = 0  # the goroutine's stack bounds (0 when not asked for)
    stack_hi: int = 0
    g_addr: int = 0  # the goroutine's g (0 when not asked for)
    # the call's return address when its caller called the entry point directly (the call
    # can end at a breakpoint there), else 0
    return_addr: int = 0
    # stopped by a watchpoint on the header's writing flag: the call has set the flag, and
    # nothing else yet (the header as it was before the call has it clear)
    writing_set: bool = False
    # the watched map (its place in WatchOptions.exprs) whose watchpoint trapped; -1: a
    # breakpoint's hit, which any watched map's call may be
    map_index: int = -1


@dataclass(frozen=True)
class CallEnd:
    """How a watched call ended: ``users_stop`` names a breakpoint of the user's that stopped
    the program at the same time ("" if none); ``until``: another goroutine reached
    ``--until`` LOCATION while the call ran. Either way the watch ends after this event."""

    users_stop: str = ""
    until: bool = False

    @property
    def ends_watch(self) -> bool:
        return bool(self.users_stop) or self.until


@dataclass(frozen=True)
class Reached:
    """The program reached ``--until`` LOCATION: where, in which goroutine. ``in_flight``:
    while a watched call of another goroutine was running; the watch then ends at that
    call's end, and the goroutine has run on from LOCATION meanwhile."""

    location: Location
    goroutine: int
    in_flight: bool = False


class UsersStop(Exception):  # noqa: N818 (a stop, not an error: it ends the watch)
    """A breakpoint of the user's stopped the program while a watched call was running;
    the event is not reported."""


class CallControl(Protocol):
    """The end of one watched call, as the recorder drives it: ``end`` sends the program on
    to the call's end and returns at once (the recorder decodes while it runs), ``wait``
    blocks until then (raises UsersStop, or TargetError when the program exited or the call
    never returned), ``resume`` lets the program run on to its next stop while the event is
    decoded (pipeline)."""

    def end(self) -> None: ...

    def wait(self) -> CallEnd: ...

    def resume(self) -> None: ...
