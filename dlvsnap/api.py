"""The Python API: the same engine as the command line, for scripts and notebooks.

    import dlvsnap

    with dlvsnap.launch("./prog") as prog:          # or dlvsnap.connect("127.0.0.1:4040"),
        prog.run_to("main.go:42")                    #    dlvsnap.attach(pid)
        m = prog.map("m")
        before = m.snapshot()                        # a MapSnapshot; print() shows its layout
        watch = prog.watch(m)                        # DeleteEvents, as `dlvsnap watch` shows
        for event in watch:
            print(event)
        print(watch.summary, watch.exit_status)      # its summary; 0: the program's end

Objects are the dataclasses of dlvsnap.model; their ``str()`` is the text view.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, TypeVar

from dlvsnap import snap as snapmod
from dlvsnap import snapfile
from dlvsnap.build import build_package
from dlvsnap.census.result import Census
from dlvsnap.census.take import take
from dlvsnap.delve.client import CURRENT_GOROUTINE
from dlvsnap.diff import diff
from dlvsnap.errors import DlvsnapError, ProgramExitedError
from dlvsnap.model import DeleteEvent, Location, MapDiff, MapSnapshot, Summary
from dlvsnap.render import text  # noqa: F401 (installs the text view as the objects' str())
from dlvsnap.session import Session
from dlvsnap.snapfile import SavedSnapshot
from dlvsnap.target import TargetInfo
from dlvsnap.watch import MapWatch, Note, WatchOptions, exit_words

T = TypeVar("T")

__all__ = ["Debugger", "MapHandle", "Watch", "attach", "compare", "connect", "launch", "load"]


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
        """The map as it is now. After the program exited: a ProgramExitedError."""
        s = self.debugger.session
        snap, _, _ = self.debugger._alive(
            f"snapshot {self.expr}", lambda: snapmod.snapshot(s, self.ref)
        )
        return snap

    def save(self, path: str | Path) -> MapSnapshot:
        """Snapshot and save it with its bytes (what `dlvsnap snap --save` writes)."""
        s = self.debugger.session
        snap, mem, types = self.debugger._alive(
            f"snapshot {self.expr}", lambda: snapmod.snapshot(s, self.ref)
        )
        where = self.debugger.location()
        snapmod.save(path, s, self.ref, snap, mem=mem, types=types, location=where)
        return snap


class Watch(Iterator[DeleteEvent]):
    """What ``Debugger.watch`` returns: iterate it for the DeleteEvents as they happen.
    ``summary`` is what `dlvsnap watch` sums up at its end (deletes seen, keys removed, the
    bytes the map holds; ``str()`` prints it as the CLI does), counted as events come;
    ``exit_status`` is the program's exit status once the watch saw it end (negative: the
    signal that killed it), None while it runs or when the watch stopped before
    (``max_events``, a breakpoint of yours)."""

    def __init__(self, debugger: Debugger, engine: MapWatch) -> None:
        self._debugger = debugger
        self._engine = engine
        self._events: Iterator[DeleteEvent] | None = None

    @property
    def summary(self) -> Summary:
        return self._engine.summary

    @property
    def summaries(self) -> list[Summary]:
        """Each watched map's summary, in the order given (one map: ``[summary]``)."""
        return self._engine.summaries

    @property
    def exit_status(self) -> int | None:
        return self._engine.summary.exit_status

    def __next__(self) -> DeleteEvent:
        if self._events is None:
            status = self._debugger.exited()
            if status is not None:
                raise _exited(f"watch {self._engine.opts.expr}", status)
            self._events = self._engine.events()
        try:
            return next(self._events)
        finally:
            if self.exit_status is not None:
                self._debugger.exit_status = self.exit_status

    def close(self) -> None:
        """Stop watching (dlvsnap's breakpoints are removed); the program stays stopped."""
        if self._events is not None:
            close = getattr(self._events, "close", None)
            if close is not None:
                close()


class Debugger:
    """A program under Delve: launched, attached to, or in someone's Delve server."""

    def __init__(self, session: Session, cleanup: contextlib.ExitStack | None = None) -> None:
        self.session = session
        self._cleanup = cleanup or contextlib.ExitStack()
        self.notes: list[Note] = []  # what watches had to say (moved header, replaced map...)
        # the program's exit status once dlvsnap saw it end (a watch, or Delve asked after a
        # failed call); None: running, or not known
        self.exit_status: int | None = None

    @property
    def target(self) -> TargetInfo:
        return self.session.target

    @property
    def pid(self) -> int:
        return self.session.pid

    def exited(self) -> int | None:
        """The program's exit status if it has exited, else None (asks Delve unless a
        watch saw the end)."""
        if self.exit_status is None:
            self.exit_status = self.session.exited()
        return self.exit_status

    def _alive(self, what: str, run: Callable[[], T]) -> T:
        """``run()``; if the program has exited (before, or so that ``run`` failed), a
        ProgramExitedError that says so (exit code 5), not what failed then."""
        status = self.exit_status
        if status is None:
            try:
                return run()
            except ProgramExitedError:
                raise
            except DlvsnapError as e:
                status = self.exited()
                if status is None:
                    raise
                raise _exited(what, status) from e
        raise _exited(what, status)

    def run_to(self, location: str) -> Location:
        """Continue to ``location`` (``file:line`` or a function)."""
        return self._alive(f"run to {location}", lambda: snapmod.run_to(self.session, location))

    def location(self, goroutine: int = CURRENT_GOROUTINE, frame: int = 0) -> Location:
        return self._alive(
            "say where the program is stopped",
            lambda: snapmod.current_location(self.session, goroutine, frame),
        )

    def map(self, expr: str, *, goroutine: int = CURRENT_GOROUTINE, frame: int = 0) -> MapHandle:
        """The map ``expr`` names in this goroutine's frame (the current one by default).
        After the program exited: a ProgramExitedError (as ``snapshot()``)."""
        ref = self._alive(
            f"evaluate {expr}", lambda: snapmod.resolve(self.session, expr, goroutine, frame)
        )
        return MapHandle(self, ref)

    def maps(self, *, goroutines: bool = True) -> Census:
        """A census of the program's maps where it is stopped (``dlvsnap maps``): every
        map reachable from package variables (and, with ``goroutines``, the goroutines'
        frames), each once under its shortest path, most waste first (``Census.maps``)."""
        return self._alive(
            "take a census of the maps", lambda: take(self.session, goroutines=goroutines)
        )

    def watch(
        self,
        m: MapHandle | str | Sequence[MapHandle | str] | None = None,
        *,
        site: str | None = None,
        frame: int | None = None,
        in_func: str | None = None,
        max_events: int | None = None,
        full: bool = False,
        live_keys: bool = False,
        mode: str = "watchpoint",
        until: str | None = None,
    ) -> Watch:
        """Each delete/clear of the map, as it happens: iterate the Watch returned; then its
        ``summary`` and ``exit_status``. A MapHandle's expression is watched (a package
        variable is followed, a local resolved at its first delete, in the caller's frame,
        ``frame`` frames out from it, or in ``in_func``'s frame); ``site`` (``FILE:LINE`` or
        a function) chooses the map the delete there deletes from, as ``watch --site``
        does. ``m`` or ``site`` is needed; several maps (a sequence, not with ``site``) are
        watched at once, each event's ``map`` saying which (``watch --map a --map b``).
        ``mode``: how the maps' calls stop the program (``watch --mode``: "watchpoint", or
        "breakpoints"). ``until`` (``FILE:LINE`` or a function, ``watch --until``): the
        watch ends when the program reaches it, leaving it stopped there, and each
        summary's ``final`` is its map there (``max_events`` leaves it stopped too)."""
        items = [m] if m is None or isinstance(m, (MapHandle, str)) else list(m)
        exprs = [x.expr if isinstance(x, MapHandle) else x for x in items if x]
        if not exprs and not site:
            raise ValueError("watch() needs a map (an expression or a MapHandle) or a site")
        if len(exprs) > 1 and site:
            raise ValueError("watch(site=...) chooses one map: give one with it")
        if len(set(exprs)) < len(exprs):
            raise ValueError("watch() was given the same map twice")
        opts = WatchOptions(
            expr=exprs[0] if exprs else "",
            also=tuple(exprs[1:]),
            site=site,
            frame=frame,
            in_func=in_func,
            max_events=max_events,
            full=full,
            live_keys=live_keys,
            mode=mode,
            until=until,
        )
        return Watch(self, MapWatch(self.session, opts, lambda ev: None, self.notes.append))

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


def _exited(what: str, status: int) -> ProgramExitedError:
    return ProgramExitedError(f"cannot {what}: the program {exit_words(status)}", status)


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


def core(core: str | Path, binary: str | Path, *, dlv: str | None = None) -> Debugger:
    """A core file of the program and the executable it ran (``dlvsnap dump``, Delve's
    ``dump``, a kernel core): ``map()`` and ``maps()`` read it where it stopped; nothing
    runs (``run_to`` and ``watch`` raise CoreCannotRunError)."""
    return Debugger(Session.core(dlv, core, binary))


def load(path: str | Path) -> SavedSnapshot:
    """A saved snapshot, decoded again from its bytes (``.snapshot`` is a MapSnapshot)."""
    return snapfile.load(path)


def compare(before: MapSnapshot, after: MapSnapshot) -> MapDiff:
    """Two snapshots of a map, slot by slot (what watch and `dlvsnap diff` show)."""
    return diff(before, after)
