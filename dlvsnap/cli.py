"""The command line: parse, build a Session, call the library, render. Nothing else."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any, BinaryIO, NoReturn

import click
from tabulate import tabulate

from dlvsnap import __version__, install, snapfile
from dlvsnap import dump as dumpmod
from dlvsnap import phases as phasesmod
from dlvsnap import snap as snapmod
from dlvsnap.advice import MapFacts, advice
from dlvsnap.build import build_package
from dlvsnap.census.take import take as take_census
from dlvsnap.decode.types import RecordingTypes
from dlvsnap.delve.client import CURRENT_GOROUTINE
from dlvsnap.delve.rpc import parse_address
from dlvsnap.delve.types import DumpState
from dlvsnap.diff import diff
from dlvsnap.errors import (
    AddressError,
    DlvsnapError,
    ExitCode,
    LayoutDriftError,
    TargetError,
)
from dlvsnap.goversion import release_of
from dlvsnap.memory import RecordingMem
from dlvsnap.model import DeleteEvent, Location, MapSnapshot, Summary
from dlvsnap.progress import Progress
from dlvsnap.regress import Regress
from dlvsnap.render import html, jsonl
from dlvsnap.render.text import TextRenderer
from dlvsnap.session import Session
from dlvsnap.target import identify
from dlvsnap.toolchain import matrix
from dlvsnap.untrusted import visible
from dlvsnap.verify import check_binary, choose_layout, inexact_note
from dlvsnap.watch import DEFAULT_OPS, MODES, OPS, MapWatch, Note, WatchOptions, exit_words


class Terminated(BaseException):
    """SIGTERM, turned into an exception so that the same clean-up as Ctrl-C runs."""


def _on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    raise Terminated()


def _log(verbose: bool, msg: str) -> None:
    if verbose:
        click.echo(f"dlvsnap: {visible(msg)}", err=True)


@contextlib.contextmanager
def _binary_for(
    target: str, go: str | None, verbose: bool, progress: Progress | None = None
) -> Iterator[Path]:
    """A built binary for TARGET: the file itself, or the package built into a temp folder."""
    p = Path(target)
    if p.is_dir():
        with tempfile.TemporaryDirectory(prefix="dlvsnap-") as tmp:
            _log(verbose, f"building {p} with -gcflags='all=-N -l'")
            if progress:
                progress.status(f"building {p.resolve().name} (go build -gcflags='all=-N -l') …")
            yield build_package(p.resolve(), Path(tmp) / p.resolve().name, go)
        return
    if not p.exists():
        raise click.BadParameter(f"{target}: no such file or directory", param_hint="TARGET")
    yield p.resolve()


@contextlib.contextmanager
def _output_sink(path: str | None) -> Iterator[BinaryIO]:
    if path is None:
        yield sys.stderr.buffer
        return
    try:
        f = open(path, "wb")  # noqa: SIM115 (closed below; the open alone may fail)
    except OSError as e:
        raise click.FileError(path, hint=e.strerror) from None
    with f:
        yield f


@contextlib.contextmanager
def _session(
    target: str | None,
    program_args: tuple[str, ...],
    *,
    connect: str | None,
    attach: int | None,
    core: tuple[str, str] | None,
    binary: str | None,
    dlv_path: str | None,
    go_path: str | None,
    target_output: str | None,
    reader: str,
    verbose: bool,
    progress: Progress,
) -> Iterator[Session]:
    """The four ways in: launch TARGET, attach to a PID, connect to a Delve server, or open
    a core file; the program's output goes to ``target_output`` (default: dlvsnap's stderr)."""
    ways = sum(x is not None for x in (target, connect, attach, core))
    if ways != 1:
        raise click.UsageError(
            "give exactly one of TARGET, --connect HOST:PORT, --attach PID, --core CORE BINARY"
        )
    if (connect or attach or core) and program_args:
        raise click.UsageError("program arguments only go with a TARGET to launch")
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(_output_sink(target_output))
        if connect is not None:
            progress.status(f"connecting to Delve at {connect} …")
            s = stack.enter_context(Session.connect(connect, binary, reader))
            _log(verbose, f"connected to Delve {s.version.short} at {connect}, pid {s.pid}")
            if s.single_client:
                progress.clear()
                click.echo(
                    f"dlvsnap: note: the Delve server at {connect} serves a single client (no "
                    "--accept-multiclient): its session ends when dlvsnap disconnects, which "
                    "kills a program it launched or releases one it attached to",
                    err=True,
                )
        elif attach is not None:
            progress.status(f"attaching to {attach} …")
            s = stack.enter_context(Session.attach(dlv_path, attach, sink, reader))
            _log(verbose, f"dlv attach {attach} with {s.dlv_path}")
        elif core is not None:
            progress.status(f"opening the core file {core[0]} …")
            s = stack.enter_context(Session.core(dlv_path, core[0], core[1], reader, sink))
            _log(verbose, f"dlv core {core[1]} {core[0]} with {s.dlv_path}, pid {s.pid}")
        else:
            assert target is not None
            path = stack.enter_context(_binary_for(target, go_path, verbose, progress))
            progress.status(f"starting Delve on {path.name} …")
            s = stack.enter_context(
                Session.launch(dlv_path, path, list(program_args), sink, reader)
            )
            _log(verbose, f"dlv exec {path} with {s.dlv_path}")
        yield s


def _colour(out: IO[str], color: bool | None) -> bool:
    """--color/--no-color, else on a terminal unless NO_COLOR is set."""
    return out.isatty() and not os.environ.get("NO_COLOR") if color is None else color


def _check_choice(opts: WatchOptions) -> None:
    """The map is named by --map or --site, its frame by --frame or --in (exit 2)."""
    ctx = click.get_current_context()
    if not opts.expr and not opts.site:
        raise click.UsageError("missing option '--map' (or '--site')", ctx=ctx)
    if opts.frame is not None and opts.in_func:
        raise click.UsageError("--frame and --in both choose the frame: give one", ctx=ctx)
    if opts.also and opts.site:
        raise click.UsageError("--site chooses one map: give one --map with it", ctx=ctx)
    if len(set(opts.exprs)) < len(opts.exprs):
        raise click.UsageError("the same --map twice", ctx=ctx)


def _run_watch(
    s: Session, w: MapWatch, kill: bool, progress: Progress, report: Callable[[], None]
) -> Summary:
    """The watch; when it ended before the program (--max-events, --until, a stop of
    yours), a launched program runs on to its end unwatched unless ``kill``. What became
    of the program goes into each summary (``after``). Ctrl-C or SIGTERM while it runs on:
    the watch's summaries are ``report``ed before the program is killed (exit 130)."""
    try:
        summary = w.run()
        if w.ended_early and s.mode == "launch" and not kill:
            progress.status("the watch has ended: the program runs on to its end, unwatched …")
            try:
                w.run_on()
            except (KeyboardInterrupt, Terminated):
                progress.clear()
                for each in w.summaries:
                    each.after = "interrupted"
                with contextlib.suppress(OSError):  # a reader gone: nothing to report to
                    report()
                raise
    finally:
        progress.clear()
    if w.ended_early and summary.after != "ran_on":
        after = {"launch": "killed", "attach": "released", "connect": "stopped"}[s.mode]
        for each in w.summaries:
            each.after = after
    return summary


def _check_end(opts: WatchOptions, kill: bool, *, launch: bool, core: bool = False) -> None:
    """--until names a place; --kill goes with a launched program whose watch may end
    before it does; no watch of a core file, which cannot run (exit 2)."""
    ctx = click.get_current_context()
    if core:
        raise click.UsageError(
            "--core: a core file cannot run, and watch runs the program (snap --core reads "
            "a map in it)",
            ctx=ctx,
        )
    if opts.until is not None and not opts.until.strip():
        raise click.UsageError("--until needs a LOCATION (FILE:LINE or a function)", ctx=ctx)
    if kill and not launch:
        raise click.UsageError(
            "--kill goes with a TARGET to launch (--attach releases the program, --connect "
            "leaves it stopped)",
            ctx=ctx,
        )
    if kill and opts.max_events is None and opts.until is None:
        raise click.UsageError(
            "--kill goes with --max-events or --until (a watch that ends before the program)",
            ctx=ctx,
        )


def _check_stops(target: str | None, at: tuple[str, ...], *, core: bool) -> None:
    """snap, maps: a TARGET is run to --at; a core file cannot run to anything (exit 2)."""
    ctx = click.get_current_context()
    if target and not at:
        raise click.UsageError("with a TARGET, say where to stop: --at LOCATION", ctx=ctx)
    if core and at:
        raise click.UsageError(
            "--core: a core file cannot run, and --at runs the program (--core reads it where "
            "it stopped)",
            ctx=ctx,
        )


def _parse_ops(ops: str) -> tuple[str, ...]:
    op_list = tuple(dict.fromkeys(o.strip() for o in ops.split(",") if o.strip()))
    unknown = [o for o in op_list if o not in OPS]
    if unknown or not op_list:
        raise click.BadParameter(
            f"{', '.join(unknown) or 'nothing'}: choose from {', '.join(OPS)}", param_hint="--ops"
        )
    return op_list


def _check_address(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--connect: HOST:PORT or [IPv6]:PORT, checked as Session.connect checks it."""
    if value is not None:
        try:
            parse_address(value)
        except AddressError as e:
            raise click.BadParameter(str(e), ctx=ctx, param=param) from None
    return value


def _ways_in(f: Callable[..., None]) -> Callable[..., None]:
    """The options of the four ways in, shared by watch, snap and maps."""
    for opt in reversed(
        [
            click.option(
                "--connect",
                metavar="HOST:PORT",
                callback=_check_address,
                help="A headless Delve started with --accept-multiclient (your own client may "
                "stay connected): dlvsnap leaves the program where it is and removes only "
                "the breakpoints it created.",
            ),
            click.option(
                "--attach",
                type=click.IntRange(min=1),
                metavar="PID",
                help="Attach to a running program; it is released (left running) at the end.",
            ),
            click.option(
                "--core",
                nargs=2,
                type=click.Path(exists=True, dir_okay=False),
                metavar="CORE BINARY",
                help="A core file of the program and the executable it ran (`dlvsnap dump`, "
                "Delve's dump, a kernel core): read where it stopped; nothing runs.",
            ),
            click.option(
                "--binary",
                metavar="PATH",
                help="With --connect: the program's executable, when /proc/PID/exe is not "
                "readable (a remote server).",
            ),
            click.option(
                "--dlv",
                "dlv_path",
                metavar="PATH",
                help="Delve binary (default: $DLVSNAP_DLV, else an installed Delve that "
                "accepts the target's Go release).",
            ),
            click.option(
                "--go", "go_path", metavar="PATH", help="go command used to build a package TARGET."
            ),
            click.option(
                "--target-output",
                metavar="FILE",
                help="Write the program's own stdout/stderr to FILE (default: dlvsnap's stderr).",
            ),
            click.option(
                "--reader",
                type=click.Choice(["auto", "proc", "delve"]),
                default="auto",
                show_default=True,
                help="How memory is read: /proc/PID/mem (local, fast; with --core: the core "
                "file), Delve's ExamineMemory, or the first that works.",
            ),
            click.option(
                "--color/--no-color",
                default=None,
                help="Colour the text view (default: on a terminal, unless NO_COLOR).",
            ),
            click.option(
                "-v", "--verbose", is_flag=True, help="Say what dlvsnap does: build, Delve, memory."
            ),
        ]
    ):
        f = opt(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dlvsnap")
def cli() -> None:
    """See what a Go map does in memory: snapshots around every delete, diffed slot by slot."""


def _shown_in_text(n: Note, verbose: bool) -> bool:
    """Whether the text view shows a note: how calls stop (``mode``) only with -v, unless
    watchpoint mode fell back to breakpoints (every map's calls stop the program then)."""
    return n.kind != "mode" or verbose or bool(n.data.get("fallback"))


_mode_option = click.option(
    "--mode",
    type=click.Choice(MODES),
    default=lambda: os.environ.get("DLVSNAP_MODE") or "watchpoint",  # the tests' matrix
    show_default="watchpoint",
    help="How the watched map's calls stop the program once it is known: a hardware "
    "watchpoint on the map's writing flag (only its own writes stop, inserts included; "
    "breakpoints where none can be set), or conditional breakpoints on the runtime's "
    "entry points (every map's calls stop). See docs/watchpoints.md.",
)


@cli.command(context_settings={"ignore_unknown_options": False})
@click.argument("target", required=False)
@click.argument("program_args", nargs=-1, type=click.UNPROCESSED)
@click.option(
    "--map",
    "map_exprs",
    multiple=True,
    metavar="EXPR",
    help="The map: a package variable (main.cache, example.com/pkg.Var) or an "
    "expression in the frame of the function that calls delete (m, c.items, shards[3]). "
    "Repeat it to watch several maps at once: events say which.",
)
@click.option(
    "--site",
    metavar="LOCATION",
    help="Watch the map that the delete at LOCATION deletes from: FILE:LINE of a delete "
    "(or of a call that leads to one) or a function on the delete's stack. Works on "
    "optimised binaries, where locals are gone. With --map, both must name the same map.",
)
@click.option(
    "--frame",
    type=click.IntRange(min=0),
    metavar="N",
    help="Evaluate EXPR N frames out from the function that calls delete (0: that one).",
)
@click.option(
    "--in",
    "in_func",
    metavar="FUNC",
    help="Evaluate EXPR in the frame of FUNC, wherever it is on the delete's stack "
    "(main.main, (*cache).delete).",
)
@click.option("--json", "as_json", is_flag=True, help="JSON Lines on stdout (docs/json-schema.md).")
@click.option(
    "--live-keys", is_flag=True, help="Also show the keys of every full slot after each delete."
)
@click.option(
    "--max-events",
    type=click.IntRange(min=1),
    metavar="N",
    help="Stop after N watched deletes/clears (a launched program then runs on to its "
    "end unwatched; see --kill).",
)
@click.option(
    "--until",
    metavar="LOCATION",
    help="End the watch when the program reaches LOCATION (FILE:LINE or a function, as "
    "snap --at takes), with a final snapshot of each watched map there; a launched "
    "program then runs on to its end unwatched (see --kill).",
)
@click.option(
    "--kill",
    is_flag=True,
    help="With --max-events or --until: kill a launched program when the watch ends "
    "instead of letting it run on.",
)
@click.option(
    "--full",
    is_flag=True,
    help="Snapshot the whole map around every delete (default: only what the delete can "
    "touch: the key's probe groups or bucket chain, and the headers).",
)
@_mode_option
@click.option(
    "--ops",
    default=",".join(DEFAULT_OPS),
    show_default=True,
    metavar="OPS",
    help="Which map operations to watch, comma-separated: delete, clear, assign (inserts "
    "and updates: where memory is kept, how a classic map's grow evacuates).",
)
@_ways_in
def watch(
    target: str | None,
    program_args: tuple[str, ...],
    map_exprs: tuple[str, ...],
    site: str | None,
    frame: int | None,
    in_func: str | None,
    as_json: bool,
    live_keys: bool,
    max_events: int | None,
    until: str | None,
    kill: bool,
    full: bool,
    mode: str,
    ops: str,
    color: bool | None,
    verbose: bool,
    **ways: Any,  # the options of _ways_in that _session takes
) -> None:
    """Watch every delete from one map (or several) of TARGET (a Go package directory or
    a binary), of a running program (--attach) or of a program in a Delve server
    (--connect), to the program's end, --max-events or --until.

    Program arguments go after `--`:  dlvsnap watch ./prog --map m -- arg1 arg2
    """
    out: IO[str] = sys.stdout
    text = None if as_json else TextRenderer(out, colour=_colour(out, color))
    progress = Progress.for_terminal(as_json)
    opts = WatchOptions(
        pipeline=True,  # on_event only renders
        ops=_parse_ops(ops),
        expr=map_exprs[0] if map_exprs else "",
        also=map_exprs[1:],
        in_func=in_func,
        frame=frame,
        site=site,
        mode=mode,
        live_keys=live_keys,
        max_events=max_events,
        full=full,
        # tests: also take whole snapshots and warn where the probe's diff differs
        crosscheck=os.environ.get("DLVSNAP_CROSSCHECK") == "1",
        until=until,
    )
    _check_choice(opts)
    _check_end(opts, kill, launch=target is not None, core=ways.get("core") is not None)

    had_event: set[str] = set()  # the maps (their names in events) that had one
    shown = ", ".join(opts.exprs) if opts.also else opts.shown

    def on_event(ev: DeleteEvent) -> None:
        if text is None:
            if ev.map not in had_event:  # the map before its first event, for `report`
                jsonl.snapshot(out, ev.before, ev.map)
            jsonl.event(out, ev, live_keys)
        else:
            progress.clear()
            text.event(ev, live_keys)
            progress.status(
                f"watching {shown}: {ev.seq} events, the map holds {ev.after.memory.held:,} B …",
                force=False,
            )
        had_event.add(ev.map)

    def on_note(n: Note) -> None:
        if text is None:
            jsonl.note(out, n.kind, n.message, n.data)
        elif _shown_in_text(n, verbose):
            progress.clear()
            text.note(n.message)

    with _session(target, program_args, progress=progress, verbose=verbose, **ways) as s:
        t = s.target
        _log(verbose, f"Delve {s.version.short}; target {t.describe()}, pid {s.pid}")
        w = MapWatch(s, opts, on_event, on_note)
        progress.clear()
        if text is None:
            jsonl.start(
                out,
                t,
                opts.shown,
                s.version.short,
                site=site,
                mode=opts.mode,
                maps=opts.exprs,
                until=until,
            )
        else:
            name = Path(t.path).name
            text.start(f"watching {shown} in {name}: {t.describe()}, Delve {s.version.short}")
            progress.status(f"watching {shown}: running to the first {' or '.join(opts.ops)} …")

        def report() -> None:
            used = s.memory_reader_name
            _log(verbose, f"memory read through {used}")
            for name, each in zip(opts.exprs, w.summaries, strict=True):
                label = name if opts.also else ""
                if text is None:
                    jsonl.summary(out, each, used, label)
                else:
                    text.summary(each, label)

        summary = _run_watch(s, w, kill, progress, report)
        report()
        if summary.exit_status is not None and summary.exit_status < 0:
            # what was seen is reported above; the run itself did not end as the program would
            ran_on = summary.after == "ran_on"
            when = "while it ran on after the watch" if ran_on else "during the watch"
            raise TargetError(f"the program {exit_words(summary.exit_status)} {when}")


@cli.command(context_settings={"ignore_unknown_options": False})
@click.argument("target", required=False)
@click.argument("program_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--map", "map_expr", required=True, metavar="EXPR", help="The map expression.")
@click.option(
    "--at",
    "at",
    multiple=True,
    metavar="LOCATION",
    help="Run the program to LOCATION (file:line or a function) and take the snapshot "
    "there. Repeatable: one snapshot per --at, in order, in one process, summed up as a "
    "phase table (a location given twice is its next hit). Required with a TARGET.",
)
@click.option(
    "--goroutine",
    type=click.IntRange(min=1),
    metavar="ID",
    help="Evaluate EXPR in this goroutine (default: the current one).",
)
@click.option(
    "--frame",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="Evaluate EXPR in this frame of the goroutine (0: the innermost).",
)
@click.option(
    "--save",
    metavar="FILE",
    help="Save the snapshot (docs/snapshot-format.md); with several --at, one file per "
    "phase: FILE with the phase's number before its extension (m.json: m.1.json, m.2.json).",
)
@click.option("--json", "as_json", is_flag=True, help="The decoded state as JSON on stdout.")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=64,
    show_default=True,
    metavar="N",
    help="Show at most N tables and N groups/buckets in the layout view (0: all).",
)
@_ways_in
def snap(
    target: str | None,
    program_args: tuple[str, ...],
    map_expr: str,
    at: tuple[str, ...],
    goroutine: int | None,
    frame: int,
    save: str | None,
    as_json: bool,
    limit: int,
    color: bool | None,
    verbose: bool,
    **ways: Any,  # the options of _ways_in that _session takes
) -> None:
    """One snapshot of a map, as a layout view: the verdict (bytes held vs needed), header,
    tables, every group/bucket with each slot's state and key. The program is TARGET run to
    --at LOCATION, a running program (--attach PID), wherever a Delve server's program
    is stopped (--connect), or a core file (--core CORE BINARY, see `dlvsnap dump`).
    Several --at: a phase table of one process, one row per stop."""
    _check_stops(target, at, core=ways.get("core") is not None)
    out: IO[str] = sys.stdout
    text = TextRenderer(out, colour=_colour(out, color))
    progress = Progress.for_terminal(as_json)
    g = goroutine or CURRENT_GOROUTINE
    several = len(at) > 1
    phases: list[phasesmod.Phase] = []
    last: MapSnapshot | None = None
    with _session(target, program_args, progress=progress, verbose=verbose, **ways) as s:
        if not (layout := choose_layout(s.target)).exact:
            _log(verbose, inexact_note(layout))
        snapmod.check_locations(s, at)  # all of them before the program runs
        try:
            for n, location in enumerate(at or ("",), 1):
                t = _snap_at(s, location, map_expr, g, frame, progress, verbose)
                if save:
                    path = _numbered(save, n) if several else save
                    snapmod.save(path, s, t.ref, t.snap, mem=t.mem, types=t.types, location=t.where)
                    _log(verbose, f"saved {path}")
                last = t.snap
                if several:
                    prev = phases[-1].figures if phases else None
                    phases.append(phasesmod.Phase(n, location, t.where, t.figures))
                    if as_json:
                        click.echo(jsonl.phase_line(phases[-1], prev, snapfile.state_of(t.snap)))
                elif as_json:
                    click.echo(json.dumps(snapfile.state_of(t.snap), separators=(",", ":")))
                else:
                    text.snapshot_view(t.title(map_expr, s), t.snap, limit)
        finally:
            if phases and last is not None:  # what was taken, also when a later stop failed
                said = advice(
                    MapFacts.of(last, layout, release_of(s.target.go_version)),
                    held_before=phases[0].figures.held,
                )
                if as_json:
                    line = jsonl.phases_line(
                        phases, len(at), expr=map_expr, target=s.target, pid=s.pid, advice=said
                    )
                    click.echo(line)
                else:
                    title = f"{map_expr} in pid {s.pid}: {s.target.describe()}"
                    text.phase_table(title, phases, len(at), said)


@dataclass(frozen=True)
class _Taken:
    """One snapshot taken by ``snap``, with what saving it takes."""

    where: Location
    ref: snapmod.MapRef
    snap: MapSnapshot
    mem: RecordingMem
    types: RecordingTypes

    @property
    def figures(self) -> phasesmod.Figures:
        return phasesmod.Figures.of(self.snap)

    def title(self, map_expr: str, s: Session) -> str:
        return (
            f"{map_expr} ({self.ref.type_name}) at {self.snap.addr:#x}, {self.where}: "
            f"{s.target.describe()}, layout {self.snap.layout}"
        )


def _snap_at(
    s: Session,
    location: str,
    map_expr: str,
    goroutine: int,
    frame: int,
    progress: Progress,
    verbose: bool,
) -> _Taken:
    """Run to ``location`` ("": stay where the program is) and read the map there."""
    if location:
        progress.status(f"running to {location} …")
        snapmod.run_to(s, location)
    where = snapmod.current_location(s, goroutine, frame)
    ref = snapmod.resolve(s, map_expr, goroutine, frame)
    progress.status(f"reading {map_expr} ({ref.type_name}) …")
    taken, mem, types = snapmod.snapshot(s, ref)
    progress.clear()
    _log(verbose, f"memory read through {mem.name}: {sum(map(len, mem.regions.values())):,} B")
    return _Taken(where, ref, taken, mem, types)


def _numbered(path: str, n: int) -> str:
    """``path`` with ``n`` before its extension: m.json -> m.2.json (m -> m.2)."""
    p = Path(path)
    return str(p.with_name(f"{p.stem}.{n}{p.suffix}" if p.suffix else f"{p.name}.{n}"))


@cli.command("maps", context_settings={"ignore_unknown_options": False})
@click.argument("target", required=False)
@click.argument("program_args", nargs=-1, type=click.UNPROCESSED)
@click.option(
    "--at",
    metavar="LOCATION",
    help="Run the program to LOCATION (file:line or a function) and take the census there. "
    "Required with a TARGET; with --attach or --connect, the program runs there first.",
)
@click.option(
    "--top",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    metavar="N",
    help="List the N maps that waste the most (0: all).",
)
@click.option(
    "--min-bytes",
    type=click.IntRange(min=0),
    default=0,
    metavar="B",
    help="List only maps holding at least B bytes.",
)
@click.option(
    "--goroutines/--no-goroutines",
    default=True,
    show_default=True,
    help="Start from every goroutine's frames too, not only from package variables.",
)
@click.option("--json", "as_json", is_flag=True, help="JSON Lines on stdout (docs/json-schema.md).")
@_ways_in
def maps_cmd(
    target: str | None,
    program_args: tuple[str, ...],
    at: str | None,
    top: int,
    min_bytes: int,
    goroutines: bool,
    as_json: bool,
    color: bool | None,
    verbose: bool,
    **ways: Any,  # the options of _ways_in that _session takes
) -> None:
    """A census of the program's maps: every map reachable from package variables and
    goroutine frames (through pointers, structs, arrays, slices, interfaces and other
    maps), each once under its shortest path, with live entries, slots, tombstones and
    the bytes it holds for them, most wasteful first; then the advice for the worst."""
    _check_stops(target, (at,) if at else (), core=ways.get("core") is not None)
    out: IO[str] = sys.stdout
    text = TextRenderer(out, colour=_colour(out, color))
    progress = Progress.for_terminal(as_json)
    with _session(target, program_args, progress=progress, verbose=verbose, **ways) as s:
        if at:
            snapmod.check_locations(s, (at,))
            progress.status(f"running to {at} …")
            snapmod.run_to(s, at)
        progress.status("walking the program's memory for maps …")
        try:
            c = take_census(s, goroutines=goroutines)
        finally:
            progress.clear()
        _log(
            verbose,
            f"read {c.stats.objects:,} objects ({c.stats.bytes_read:,} B) through "
            f"{s.memory_reader_name} in {sum(c.seconds.values()):.2f} s",
        )
        shown = c.shown(top, min_bytes)
        worst = {m.addr: advice(m.facts) for m in c.worst() if m.facts is not None}
        if as_json:
            for m in shown:
                click.echo(jsonl.census_map(m, worst.get(m.addr, "")))
            click.echo(
                jsonl.census_line(
                    c,
                    len(shown),
                    target=s.target,
                    pid=s.pid,
                    source=s.mode,
                    reader=s.memory_reader_name,
                )
            )
        else:
            title = f"maps in pid {s.pid}: {s.target.describe()}"
            said = [(m, worst[m.addr]) for m in c.worst()]
            text.census_table(title, c, shown, said)


@cli.command("dump")
@click.argument("pid", type=click.IntRange(min=1), required=False)
@click.option(
    "-o",
    "--output",
    required=True,
    metavar="CORE",
    help="The core file to write (with --connect: a path on the server's machine).",
)
@click.option(
    "--connect",
    metavar="HOST:PORT",
    callback=_check_address,
    help="The program a headless Delve server has stopped (it is left stopped).",
)
@click.option(
    "--binary",
    metavar="PATH",
    help="With --connect: the program's executable, when /proc/PID/exe is not readable.",
)
@click.option("--dlv", "dlv_path", metavar="PATH", help="Delve binary (as for watch and snap).")
@click.option("-v", "--verbose", is_flag=True, help="Say what dlvsnap does.")
def dump_cmd(
    pid: int | None,
    output: str,
    connect: str | None,
    binary: str | None,
    dlv_path: str | None,
    verbose: bool,
) -> None:
    """Write a core file of a running program (PID: attached, stopped while Delve writes
    the core, then released, running) or of the program a Delve server has stopped
    (--connect). Read it with `dlvsnap snap --core CORE BINARY --map EXPR`."""
    if (pid is None) == (connect is None):
        raise click.UsageError("give exactly one of PID, --connect HOST:PORT")
    dest = output
    if connect is None:  # dlvsnap's own Delve writes it, here
        dest = os.path.abspath(output)
        parent = os.path.dirname(dest)
        if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
            raise click.FileError(output, hint=f"cannot write in {parent}")
    progress = Progress.for_terminal(False)
    who = f"pid {pid}" if pid is not None else f"the program behind {connect}"

    started: list[bool] = []

    def on_progress(st: DumpState) -> None:
        if not started:
            started.append(True)
            _log(verbose, f"Delve is writing the core of {who} to {dest}")
        if st.mem_total:
            done = f"{st.mem_done / 1e6:,.1f} of {st.mem_total / 1e6:,.1f} MB"
            progress.status(f"dumping {who} to {output}: {done} …", force=False)

    with _session(
        None,
        (),
        connect=connect,
        attach=pid,
        core=None,
        binary=binary,
        dlv_path=dlv_path,
        go_path=None,
        target_output=None,
        reader="auto",
        verbose=verbose,
        progress=progress,
    ) as s:
        progress.status(f"dumping {who} to {output} …")
        try:
            done = dumpmod.dump(s, dest, on_progress)
        finally:
            progress.clear()
        left = "released, running" if s.mode == "attach" else "left stopped"
    where = " on the server's machine" if connect is not None else ""
    st = done.state
    click.echo(
        f"wrote {output}{where}: {st.mem_total:,} bytes of memory, {st.threads_total} threads, "
        f"in {done.seconds:.2f} s; pid {s.pid} {left}"
    )


@cli.command("diff")
@click.argument("before", metavar="A", type=click.Path(dir_okay=False))
@click.argument("after", metavar="B", type=click.Path(dir_okay=False))
@click.option("--color/--no-color", default=None, help="Colour the text view.")
@click.option(
    "--force",
    is_flag=True,
    help="Compare snapshots of two processes, or of two maps, slot by slot all the same.",
)
def diff_cmd(before: str, after: str, color: bool | None, force: bool) -> None:
    """Compare two saved snapshots (`dlvsnap snap --save`) of one map in one process slot by
    slot, decoded again from their bytes, with the same view as watch. Snapshots of two
    processes (or of two maps) are refused unless --force: their slots differ by hash seed
    and history, not by what the program did between them."""
    a, b = snapfile.load(before), snapfile.load(after)
    if (a.snapshot.impl, a.type_name) != (b.snapshot.impl, b.type_name):
        raise TargetError(
            f"{before} holds a {a.snapshot.impl} {a.type_name}, {after} a "
            f"{b.snapshot.impl} {b.type_name}: not two snapshots of one map"
        )
    apart = _apart(a, b)
    if apart and not force:
        raise TargetError(
            f"{visible(before)} and {visible(after)} are not snapshots of one map in one "
            f"process ({apart}): a slot-by-slot diff would show noise; --force compares them"
        )
    color = _colour(sys.stdout, color)
    if apart:
        click.echo(
            f"dlvsnap: note: --force: {apart}; the slot changes below are not changes of one map",
            err=True,
        )
    d = diff(a.snapshot, b.snapshot)
    title = f"{a.expr}: {before} ({a.location}) -> {after} ({b.location})"
    TextRenderer(sys.stdout, colour=color).diff_view(title, a.snapshot, b.snapshot, d)


def _apart(a: snapfile.SavedSnapshot, b: snapfile.SavedSnapshot) -> str:
    """Why two snapshot files are not of one map in one process ("": they are, as far as
    the files tell): another process (pid, or start time), another header address, or,
    where a file does not say which process it came from, another hash seed."""
    pa, pb = a.process, b.process
    same = pa.same(pb) if pa is not None and pb is not None else None
    if pa is not None and pb is not None and same is False:
        if pa.pid != pb.pid:
            return f"taken in process {pa.pid} and in process {pb.pid}"
        return f"taken in two processes that had pid {pa.pid}"
    sa, sb = a.snapshot, b.snapshot
    if sa.addr != sb.addr:
        return f"the map's header is at {sa.addr:#x} in one and {sb.addr:#x} in the other"
    if same is None and sa.seed != sb.seed:
        return "their hash seeds differ and the files do not say which process they are of"
    return ""


@cli.command()
@click.argument("events", metavar="EVENTS.jsonl")
@click.option(
    "-o",
    "--output",
    required=True,
    metavar="OUT.html",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="The HTML file to write.",
)
@click.option(
    "--map",
    "map_name",
    metavar="EXPR",
    help="A watch of several maps: the one to report (default: the first one with events).",
)
def report(events: str, output: Path, map_name: str | None) -> None:
    """Write one self-contained HTML page (no network, no external assets) from the output of
    `dlvsnap watch --json`: the run's timeline, the group/slot grid of each event with its
    changed slots highlighted, header and table deltas, and bytes held vs needed. From the
    output of `dlvsnap snap --at A --at B --json`: a chart and a table of the phases."""
    records = html.read_events(Path(events))
    if html.is_phases(records):  # `snap --at A --at B --json`: a phase chart
        try:
            size = html.write(output, records, source=events)
        except OSError as e:
            raise click.FileError(str(output), hint=e.strerror) from None
        n = sum(r.get("event") == "phase" for r in records)
        click.echo(f"wrote {output}: {size:,} bytes, {n} phases")
        return
    maps = html.maps_in(records)
    if map_name is not None and map_name not in maps:
        raise click.BadParameter(
            f"{events} has no events of {visible(map_name)}"
            + (f" (it has {', '.join(visible(m) for m in maps)})" if maps else ""),
            param_hint="--map",
        )
    if maps:
        chosen = map_name or maps[0]
        records = html.one_map(records, chosen)
        click.echo(f"{events} watched {len(maps)} maps: reporting {visible(chosen)}", err=True)
    try:
        size = html.write(output, records, source=events)
    except OSError as e:
        raise click.FileError(str(output), hint=e.strerror) from None
    n = sum(r.get("event") in html.OPS for r in records)
    click.echo(f"wrote {output}: {size:,} bytes, {n} events")


@cli.group()
def layouts() -> None:
    """Layout data: which file decodes which Go release, and checks against DWARF."""


@layouts.command("verify")
@click.argument("programs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--quiet", "-q", is_flag=True, help="Only print drift.")
def layouts_verify(programs: tuple[str, ...], quiet: bool) -> None:
    """Compare the layout dlvsnap would use for each PROGRAM with its own DWARF types, field
    by field. Exits 7 and names every difference when one drifts."""
    drifted = 0
    for prog in programs:
        info, layout, report = check_binary(prog)
        exact = "" if layout.exact else f" (nearest to Go {layout.release})"
        status = "ok" if report.ok else f"{len(report.drifts)} differences"
        if not quiet or not report.ok:
            click.echo(
                visible(
                    f"{prog}: {info.describe()}: layout {layout.name}{exact}, "
                    f"{len(report.checked)} DWARF types checked: {status}"
                )
            )
        for d in report.drifts:
            click.echo(f"  {visible(str(d))}")  # DWARF names come from the binary
        drifted += not report.ok
    if drifted:
        raise LayoutDriftError(f"{drifted} of {len(programs)} programs drift from their layout")


_REPO = Path(__file__).resolve().parent.parent


@cli.command()
@click.option("--update", is_flag=True, help="Re-record the goldens instead of comparing.")
@click.option(
    "--go",
    "gos",
    multiple=True,
    metavar="VERSION",
    help="Only this Go release (1.22.10, or 1.26 for the machine's Go); repeatable.",
)
@click.option("--ci", is_flag=True, help="CI's matrix only (dlvsnap/toolchain.py CI_GOS).")
@click.option(
    "--all",
    "require_all",
    is_flag=True,
    help="Every release of the matrix; a missing toolchain is an error.",
)
@click.option(
    "--fixtures",
    "fixtures_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=_REPO / "fixtures",
    show_default=True,
)
@click.option(
    "--goldens",
    "goldens_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=_REPO / "goldens",
    show_default=True,
)
@_mode_option
def regress(
    update: bool,
    gos: tuple[str, ...],
    ci: bool,
    require_all: bool,
    fixtures_dir: Path,
    goldens_dir: Path,
    mode: str,
) -> None:
    """Watch the fixture programs on each installed Go release (and map experiment) and
    compare what the runtime did with the goldens committed per release.

    Prints release x fixture -> ok / drift / error, with the first differing event of each
    drift; exits 7 on drift, 5 on error.
    """
    variants = [v for v in matrix(full=not ci) if not gos or v.go in gos]
    if not require_all and not ci and not gos:
        variants = [v for v in variants if (p := v.go_path()) is not None and p.exists()]
    if not variants:
        raise click.UsageError("no Go release selected (scripts/toolchains installs them)")
    tty = sys.stderr.isatty()
    r = Regress(
        fixtures_dir,
        goldens_dir,
        update=update,
        mode=mode,
        progress=lambda s: click.echo(f"\rregress: {s:40}", err=True, nl=False) if tty else None,
    )
    results = r.run(variants)
    if tty:
        click.echo("\r" + " " * 50 + "\r", err=True, nl=False)
    fixtures = list(dict.fromkeys(res.fixture.name for res in results))
    table = []
    for v in variants:
        row: list[str] = [v.id]
        for name in fixtures:
            res = next((x for x in results if x.variant == v and x.fixture.name == name), None)
            row.append(res.status if res else "-")
        table.append(row)
    click.echo(tabulate(table, headers=["release", *fixtures], tablefmt="simple"))
    bad = [x for x in results if x.status in ("drift", "error")]
    for x in bad:
        click.echo(f"\n{x.variant.id} {x.fixture.name}: {x.status}\n  {x.detail}")
    if any(x.status == "drift" for x in bad):
        raise LayoutDriftError(f"{sum(x.status == 'drift' for x in bad)} drift(s) from the goldens")
    if bad:
        raise TargetError(f"{len(bad)} fixture run(s) failed")


@cli.command()
@click.option(
    "--go",
    "go_release",
    metavar="VERSION",
    help="The Delve that accepts programs built with this Go release (1.22, go1.24.11).",
)
@click.option(
    "--for",
    "for_target",
    metavar="TARGET",
    help="The Delve that accepts TARGET: a Go binary (its build info says its Go release) "
    "or a package directory (the release of go on PATH, which builds it).",
)
@click.option(
    "--build-go",
    metavar="PATH",
    help="The go command that builds Delve (default: go on PATH).",
)
def setup(go_release: str | None, for_target: str | None, build_go: str | None) -> None:
    """Install the Delve release that accepts a Go release (--go, --for; without either,
    the pinned one) with `go install` into ${XDG_CACHE_HOME:-~/.cache}/dlvsnap/, where
    watch and snap find it, and print its path. Says so and exits 0 when it is installed
    already; exits 6 when it cannot be installed (no go, a go too old to build it, a
    failed build)."""
    if go_release is not None and for_target is not None:
        raise click.UsageError("give --go VERSION or --for TARGET, not both")
    if for_target is not None:
        go_release = _go_release_of(for_target)
    elif go_release is not None:
        try:
            release_of(go_release)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--go") from None
    d = install.choose(go_release)
    done = install.install(d, build_go, say=lambda msg: click.echo(f"dlvsnap: {msg}", err=True))
    state = "installed" if done.built else "already installed"
    click.echo(f"Delve {d.version} ({d.window}) {state}: {done.path}")


def _go_release_of(target: str) -> str:
    """The Go release ``setup --for TARGET`` installs a Delve for."""
    p = Path(target)
    if p.is_dir():
        return install.version_of(install.go_command(None))
    if not p.exists():
        raise click.BadParameter(f"{target}: no such file or directory", param_hint="--for")
    return identify(p).go_version


def _usage_line(e: click.ClickException) -> str:
    """Click's message on one line, its meaning kept: ``Missing option '--map'.`` becomes
    ``missing option '--map' (dlvsnap watch --help)``."""
    msg = " ".join(e.format_message().split()).replace(". (", " (").removesuffix(".")
    words = msg.split(" ", 1)
    if words[0][:1].isupper() and words[0][1:].islower():  # click's "Missing", "No", "Invalid"
        msg = msg[0].lower() + msg[1:]
    ctx = getattr(e, "ctx", None)
    if isinstance(e, click.UsageError) and ctx is not None:
        msg += f" ({ctx.command_path} --help)"
    return msg


def _error(msg: str) -> None:
    """One line on stderr; a stderr that is gone (``2>&1 | head``) is not an error of its own."""
    with contextlib.suppress(OSError):
        sys.stderr.write(f"dlvsnap: {msg}\n")
        sys.stderr.flush()


def _reader_gone(fd: int) -> bool:
    """True when ``fd`` is a pipe or socket whose reading end is closed."""
    try:
        p = select.poll()
        p.register(fd, select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in p.poll(0))
    except (OSError, ValueError):
        return False


def _quiet(stream: IO[str]) -> None:
    """Point ``stream``'s descriptor at /dev/null, so that the flush at interpreter exit of
    what is still buffered cannot fail again (Python's docs, "Note on SIGPIPE")."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


def run(args: Sequence[str]) -> int:
    """Run one command line; the exit code (README, "Exit codes"). Every error is one line
    on stderr, ``dlvsnap: <what happened>``."""
    try:
        with cli.make_context("dlvsnap", list(args)) as ctx:
            cli.invoke(ctx)
        sys.stdout.flush()  # here, not at exit: a closed pipe is seen while it can be handled
        return ExitCode.OK
    except click.exceptions.Exit as e:  # --help, --version
        return e.exit_code
    except click.ClickException as e:  # bad command line (click's or ours), unopenable file
        _error(_usage_line(e))
        return ExitCode.USAGE
    except DlvsnapError as e:
        _error(str(e))
        return e.exit_code
    except (KeyboardInterrupt, Terminated, click.exceptions.Abort):
        _error("interrupted")
        return ExitCode.INTERRUPTED
    except OSError as e:
        if e.errno != errno.EPIPE:
            raise
        gone = [s for s in (sys.stdout, sys.stderr) if _reader_gone(s.fileno())]
        if not gone:
            raise  # a pipe of dlvsnap's own, not its output: a bug
        for stream in gone:  # `dlvsnap watch --json | head -1`: the reader has what it wanted
            _quiet(stream)
        return ExitCode.OK


def main() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)
    code = run(sys.argv[1:])
    try:
        sys.stdout.flush()
    except OSError:
        _quiet(sys.stdout)
    sys.exit(code)


if __name__ == "__main__":
    main()
