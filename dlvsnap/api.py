"""The Python API: the same engine as the command line, for scripts and notebooks.

    import dlvsnap

    with dlvsnap.launch("./prog") as prog:          # or dlvsnap.connect("127.0.0.1:4040"),
        prog.run_to("main.go:42")                    #    dlvsnap.attach(pid)
        m = prog.map("m")
        before = m.snapshot()                        # a MapSnapshot; print() shows its layout
        for event in prog.watch(m, max_events=10):   # DeleteEvents, as `dlvsnap watch` shows
            print(event)

Objects are the dataclasses of dlvsnap.model; their ``str()`` is the text view.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from dlvsnap import snap as snapmod
from dlvsnap import snapfile
from dlvsnap.build import build_package
from dlvsnap.delve.client import CURRENT_GOROUTINE
from dlvsnap.diff import diff
from dlvsnap.model import DeleteEvent, Location, MapDiff, MapSnapshot
from dlvsnap.render import text  # noqa: F401 (installs the text view as the objects' str())
from dlvsnap.session import Session
from dlvsnap.snapfile import SavedSnapshot
from dlvsnap.target import TargetInfo
from dlvsnap.watch import MapWatch, Note, WatchOptions

__all__ = ["Debugger", "MapHandle", "attach", "compare", "connect", "launch", "load"]


@dataclass
class MapHandle:
    """A map found at a stop: its header address and type. ``snapshot()`` reads it again
    wherever the program is stopped now (a heap map's header never moves)."""

    debugger: Debugger
    ref: snapmod.MapRef

    @property
    def expr(self) -> str:
        return self.ref.expr

    @property
    def addr(self) -> int:
        return self.ref.addr

    def snapshot(self) -> MapSnapshot:
        snap, _, _ = snapmod.snapshot(self.debugger.session, self.ref)
        return snap

    def save(self, path: str | Path) -> MapSnapshot:
        """Snapshot and save it with its bytes (what `dlvsnap snap --save` writes)."""
        s = self.debugger.session
        snap, mem, types = snapmod.snapshot(s, self.ref)
        where = self.debugger.location()
        snapmod.save(path, s, self.ref, snap, mem=mem, types=types, location=where)
        return snap


class Debugger:
    """A program under Delve: launched, attached to, or in someone's Delve server."""

    def __init__(self, session: Session, cleanup: contextlib.ExitStack | None = None) -> None:
        self.session = session
        self._cleanup = cleanup or contextlib.ExitStack()
        self.notes: list[Note] = []  # what watches had to say (moved header, replaced map...)

    @property
    def target(self) -> TargetInfo:
        return self.session.target

    @property
    def pid(self) -> int:
        return self.session.pid

    def run_to(self, location: str) -> Location:
        """Continue to ``location`` (``file:line`` or a function)."""
        return snapmod.run_to(self.session, location)

    def location(self, goroutine: int = CURRENT_GOROUTINE, frame: int = 0) -> Location:
        return snapmod.current_location(self.session, goroutine, frame)

    def map(self, expr: str, *, goroutine: int = CURRENT_GOROUTINE, frame: int = 0) -> MapHandle:
        """The map ``expr`` names in this goroutine's frame (the current one by default)."""
        return MapHandle(self, snapmod.resolve(self.session, expr, goroutine, frame))

    def watch(
        self,
        m: MapHandle | str,
        *,
        max_events: int | None = None,
        full: bool = False,
        live_keys: bool = False,
    ) -> Iterator[DeleteEvent]:
        """Each delete/clear of the map, as it happens. A MapHandle's expression is watched
        (a package variable is followed, a local resolved at its first delete)."""
        expr = m.expr if isinstance(m, MapHandle) else m
        opts = WatchOptions(expr=expr, max_events=max_events, full=full, live_keys=live_keys)
        w = MapWatch(self.session, opts, lambda ev: None, self.notes.append)
        return w.events()

    def close(self) -> None:
        try:
            self.session.close()
        finally:
            self._cleanup.close()

    def __enter__(self) -> Debugger:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.session.__exit__(et, e, tb)
        self._cleanup.close()


def launch(
    target: str | Path,
    args: Sequence[str] = (),
    *,
    dlv: str | None = None,
    go: str | None = None,
    reader: str = "auto",
    output: BinaryIO | None = None,
) -> Debugger:
    """Start ``target`` (a binary, or a package directory built with -N -l) under Delve,
    stopped at its entry. The program's output goes to ``output`` (default: stderr)."""
    stack = contextlib.ExitStack()
    try:
        path = Path(target)
        if path.is_dir():
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="dlvsnap-"))
            path = build_package(path.resolve(), Path(tmp) / path.resolve().name, go)
        return Debugger(Session.launch(dlv, path, list(args), output, reader), stack)
    except BaseException:
        stack.close()
        raise


def attach(pid: int, *, dlv: str | None = None, reader: str = "auto") -> Debugger:
    """Attach to a running program; closing releases it (it goes on running)."""
    return Debugger(Session.attach(dlv, pid, None, reader))


def connect(address: str, *, binary: str | None = None, reader: str = "auto") -> Debugger:
    """A headless Delve started with --accept-multiclient; closing leaves the program and
    the server as they are (dlvsnap's own breakpoints are removed)."""
    return Debugger(Session.connect(address, binary, reader))


def load(path: str | Path) -> SavedSnapshot:
    """A saved snapshot, decoded again from its bytes (``.snapshot`` is a MapSnapshot)."""
    return snapfile.load(path)


def compare(before: MapSnapshot, after: MapSnapshot) -> MapDiff:
    """Two snapshots of a map, slot by slot (what watch and `dlvsnap diff` show)."""
    return diff(before, after)
