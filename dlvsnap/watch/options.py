"""What a watch is asked to do, and what it tells besides events: pure data."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field

# The runtime entry points of each operation --ops can watch.
OPS = {
    "delete": r"mapdelete(_fast32|_fast64|_faststr)?",
    "clear": r"mapclear",
    "assign": r"mapassign(_fast32|_fast32ptr|_fast64|_fast64ptr|_faststr)?",
}
DEFAULT_OPS = ("delete", "clear")
MODES = ("breakpoints", "watchpoint")


def ops_regex(ops: tuple[str, ...]) -> str:
    return rf"^runtime\.({'|'.join(OPS[o] for o in ops)})$"


def op_of(entry: str) -> str:
    """The operation a runtime entry point performs: delete, clear or assign."""
    if entry.endswith("mapclear"):
        return "clear"
    return "assign" if "mapassign" in entry else "delete"


@dataclass
class WatchOptions:
    expr: str  # --map ("" when --site alone chooses the map)
    in_func: str | None = None  # evaluate EXPR in the frame of this function
    frame: int | None = None  # evaluate EXPR this many frames out from the caller's
    site: str | None = None  # the map the delete at this FILE:LINE or function deletes from
    live_keys: bool = False
    max_events: int | None = None
    full: bool = False  # snapshot the whole map around every delete
    ops: tuple[str, ...] = DEFAULT_OPS  # which map operations to watch (OPS)
    # Resume the program as soon as an event's snapshots are read, and diff and render it
    # while the program runs to the next stop. Only for an on_event that does not talk to
    # Delve or expect the program stopped (the CLI's renderers).
    pipeline: bool = False
    crosscheck: bool = False  # also take whole snapshots and report where the probe differs
    # how the watched map's calls stop the program once it is known: "breakpoints" on the
    # runtime's entry points (conditional: every map's calls stop), or a "watchpoint" on
    # the map's writing flag (only its own writes stop; breakpoints where none can be set)
    mode: str = "watchpoint"
    # further maps watched at the same time (--map repeated), each named as ``expr`` is and
    # resolved in the same frame (--in, --frame); events say which map they are of
    also: tuple[str, ...] = ()
    # --until: the watch ends when the program reaches this FILE:LINE or function, with a
    # final snapshot of each watched map there (until.py)
    until: str | None = None

    @property
    def shown(self) -> str:
        """The (first) watched map as the user named it."""
        return self.expr or f"the map deleted from at {self.site}"

    @property
    def exprs(self) -> tuple[str, ...]:
        """Every watched map's expression, in the order given."""
        return (self.expr, *self.also)


@dataclass
class Note:
    """Something the user should know that is not a delete (replaced map, moved header)."""

    kind: str
    message: str
    data: dict[str, object] = field(default_factory=dict)


def exit_words(status: int) -> str:
    """How a program ended, from Delve's exit status (minus the signal that killed it)."""
    if status >= 0:
        return f"exited (status {status})"
    try:
        name = signal.Signals(-status).name
    except ValueError:
        name = "a signal"
    return f"was killed by {name} (signal {-status})"
