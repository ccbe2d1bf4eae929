#!/usr/bin/env python3
"""Measure dlvsnap next to baselines taken in the same run, on the same target and machine.

    make bench                      # .venv/bin/python scripts/bench.py --json bench.json
    .venv/bin/python scripts/bench.py --quick

Baselines: the raw /proc/PID/mem read of the bytes a snapshot reads; Delve's ExamineMemory
over the same bytes; bare Delve stop pairs (a conditional breakpoint on the delete entry
point + stepOut, no memory read); Delve's own Eval load of the map. dlvsnap: a snapshot
(time and peak Python memory), watched deletes per second with snapshot + diff + JSON
output, per-delete time on a small and a large map. Watchpoint mode (issue 13): the churn
phase of fixtures/churn (deletes of maps nobody watches, timed by the program itself) bare,
under Delve alone, and watched in each mode; watched deletes per second in that mode next
to bare stop pairs and to bare watchpoint traps. Census (issue 15, --census): every map of
fixtures/censusbench (10,000 maps among 100,000 objects) by `dlvsnap.census.take`, live and
from a core file, next to what Delve alone can do: ListPackageVars, then a deep Eval of
each package variable of main (with the number of maps it actually returned), and a deep
ListLocalVars in main's frames. Prints a table with ratios; --json writes the figures.
Targets are in issues 4, 13 and 15 and README "Performance".
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import math
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from tabulate import tabulate  # noqa: E402

from dlvsnap.build import DEBUG_GCFLAGS, build_cached  # noqa: E402
from dlvsnap.census.take import take as take_census  # noqa: E402
from dlvsnap.decode import decode_map_type, make_decoder  # noqa: E402
from dlvsnap.delve.client import BreakpointSpec  # noqa: E402
from dlvsnap.delve.memory import DelveMem  # noqa: E402
from dlvsnap.delve.types import JSON, LoadConfig  # noqa: E402
from dlvsnap.dump import dump as dump_core  # noqa: E402
from dlvsnap.kinds import Kind  # noqa: E402
from dlvsnap.memory import ProcMem, RecordingMem  # noqa: E402
from dlvsnap.model import DeleteEvent  # noqa: E402
from dlvsnap.render import jsonl  # noqa: E402
from dlvsnap.session import Session  # noqa: E402
from dlvsnap.snap import run_to  # noqa: E402
from dlvsnap.toolchain import Variant, pick_dlv  # noqa: E402
from dlvsnap.verify import choose_layout  # noqa: E402
from dlvsnap.watch import DEFAULT_OPS, MapWatch, Note, WatchOptions, ops_regex  # noqa: E402


@dataclass
class Row:
    measure: str
    baseline: str
    baseline_value: float
    dlvsnap_value: float
    unit: str
    target: str
    ratio_note: str = ""
    # ratios of runs paired in time (each dlvsnap run next to its own baseline run): the
    # ratio is their median, since the machine's speed drifts between runs more than within
    paired: list[float] = field(default_factory=list)

    def ratio(self) -> float:
        if self.paired:
            return statistics.median(self.paired)
        return self.dlvsnap_value / self.baseline_value if self.baseline_value else float("nan")


@dataclass
class Bench:
    variant: Variant
    rows: list[Row] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def prog(self, package: str = "bench", gcflags: str = DEBUG_GCFLAGS) -> Path:
        """fixtures/<package>, built as `dlvsnap watch ./pkg` builds (-N -l), or with
        ``gcflags`` ("": optimised)."""
        go = self.variant.go_path()
        assert go is not None and go.exists(), f"Go {self.variant.go} not installed"
        return build_cached(
            ROOT / "fixtures", package, str(go), self.variant.env(), gcflags=gcflags
        )

    def dlv(self) -> str:
        dlv = pick_dlv(self.variant.go)
        assert dlv, f"no Delve accepts Go {self.variant.go}"
        return dlv


def _first_stop(s: Session) -> tuple[int, int]:
    """Run to the first delete of `table`; return (map type address, header address)."""
    funcs = s.client.list_functions(ops_regex(DEFAULT_OPS))
    v = s.client.eval("main.table", cfg=LoadConfig())
    arg = "m" if s.target.map_impl == "swiss" else "h"
    bps = [
        s.client.create_breakpoint(
            BreakpointSpec(
                function_name=f,
                cond=f"uintptr({arg}) == *(*uintptr)({v.addr:#x})",
                load_args=LoadConfig(),
            )
        )
        for f in funcs
    ]
    st = s.client.command("continue")
    th = next(t for t in st.threads_at_breakpoints())
    assert th.breakpoint_info is not None
    args = th.breakpoint_info.arguments
    for bp in bps:
        s.client.clear_breakpoint(bp.id)
    return args[0].as_int(), args[1].as_int()


def _time(fn: Callable[[], Any], repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def snapshot_bench(b: Bench, n: int, eval_load: bool) -> None:
    with Session.launch(b.dlv(), b.prog(), [str(n), "1"], sink=None) as s:
        typ, addr = _first_stop(s)
        t = s.target
        layout = choose_layout(t)
        proc = ProcMem(s.pid)
        mt = decode_map_type(layout, proc, typ)
        rec = RecordingMem(proc)
        make_decoder(layout, rec, mt).snapshot(addr)
        recorded = [(a, len(data)) for a, data in rec.regions.items()]
        regions = [r for r in recorded if r[1] >= 64] or recorded
        nbytes = sum(size for _, size in recorded)
        # the fastest raw read of the same regions: one pread each, or process_vm_readv
        raw = min(
            _time(lambda: [proc.read(a, z) for a, z in recorded], repeat=3),
            _time(lambda: proc.read_many(recorded), repeat=3),
        )
        delve = DelveMem(s.client)
        big = sum(z for _, z in regions)
        exam = _time(lambda: [delve.read(a, z) for a, z in regions])
        dec = make_decoder(layout, proc, mt)
        # timed like the raw read (best of 3), then once more under tracemalloc for the
        # peak (tracing every allocation slows it down)
        took = _time(lambda: dec.snapshot(addr), repeat=3)
        tracemalloc.start()
        snap = dec.snapshot(addr)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        map_bytes = snap.memory.held
        label = f"{n:,}-entry map[int]int, {t.map_impl}"
        b.rows.append(
            Row(
                f"snapshot, {label}",
                "raw /proc read, same bytes",
                raw,
                took,
                "s",
                "<= 1.0 s and <= 15x" if n >= 1_000_000 else "",
            )
        )
        b.rows.append(
            Row(
                f"snapshot peak memory, {label}",
                "the map's own bytes",
                map_bytes / 1e6,
                peak / 1e6,
                "MB",
                "<= 3x" if n >= 1_000_000 else "",
            )
        )
        b.rows.append(
            Row(
                f"read throughput, {label}",
                "/proc/PID/mem",
                big / raw / 1e6 if raw else 0,
                big / exam / 1e6 if exam else 0,
                "MB/s",
                "report",
                "dlvsnap column: ExamineMemory",
            )
        )
        b.extra[f"snapshot_{t.map_impl}_{n}"] = {
            "bytes_read": nbytes,
            "reads": len(recorded),
            "slots": len(snap.rows.ctrl),
        }
        if eval_load:
            t0 = time.perf_counter()
            v = s.client.eval("main.table", cfg=LoadConfig(max_array_values=n + 1), timeout=None)
            delve_eval = time.perf_counter() - t0
            assert v.len == n
            b.rows.append(
                Row(
                    f"load all entries, {label}",
                    "Delve Eval of the map",
                    delve_eval,
                    took,
                    "s",
                    ">= 50x faster (ratio <= 0.02)",
                )
            )
        proc.close()


def stop_pair_bench(b: Bench, n: int, deletes: int, rounds: int = 9) -> tuple[float, float]:
    """(bare Delve stop pair per delete, dlvsnap watched delete) in seconds, same program:
    the medians of ``rounds`` rounds, each one run of both, back to back, in alternating
    order (stop timings drift from run to run)."""
    bare, watched = [], []
    for i in range(rounds):
        if i % 2:
            watched.append(_watched(b, n, deletes))
            bare.append(_bare_pairs(b, n, deletes))
        else:
            bare.append(_bare_pairs(b, n, deletes))
            watched.append(_watched(b, n, deletes))
    b.extra[f"stop_pairs_{n}"] = {"bare_s": bare, "watched_s": watched}
    return statistics.median(bare), statistics.median(watched)


def _bare_pairs(b: Bench, n: int, deletes: int) -> float:
    with Session.launch(b.dlv(), b.prog(), [str(n), str(deletes)], sink=None) as s:
        funcs = s.client.list_functions(ops_regex(DEFAULT_OPS))
        v = s.client.eval("main.table", cfg=LoadConfig())
        arg = "m" if s.target.map_impl == "swiss" else "h"
        for f in funcs:
            s.client.create_breakpoint(
                BreakpointSpec(function_name=f, cond=f"uintptr({arg}) == *(*uintptr)({v.addr:#x})")
            )
        pairs: list[float] = []
        while True:
            st = s.client.command("continue")
            if st.exited:
                break
            s.client.command("stepOut")
            pairs.append(time.perf_counter())
        return (pairs[-1] - pairs[0]) / max(len(pairs) - 1, 1)  # measured like dlvsnap's


def _watched(b: Bench, n: int, deletes: int, mode: str = "breakpoints") -> float:
    out = io.StringIO()
    stamps: list[float] = []

    def on_event(ev: DeleteEvent) -> None:
        jsonl.event(out, ev, False)
        stamps.append(time.perf_counter())

    notes: list[Note] = []
    with Session.launch(b.dlv(), b.prog(), [str(n), str(deletes)], sink=None) as s:
        opts = WatchOptions(expr="main.table", pipeline=True, mode=mode)
        MapWatch(s, opts, on_event, notes.append).run()
    _check_watch(f"bench {n} {deletes}", mode, notes, len(stamps), deletes)
    # from the first watched delete to the last: the first one's whole snapshot (which
    # checks the hash) is a one-off
    return (stamps[-1] - stamps[0]) / max(len(stamps) - 1, 1)


def _check_watch(what: str, mode: str, notes: list[Note], events: int, expected: int) -> None:
    """A figure of a watch that saw fewer deletes than the program made, or that fell back
    to breakpoints when asked for a watchpoint, measures something else: refuse it."""
    used = [n.data.get("mode") for n in notes if n.kind == "mode"]
    in_use = str(used[-1]) if used else "breakpoints"
    if in_use != mode:
        said = "; ".join(n.message for n in notes if n.kind == "mode")
        raise RuntimeError(f"{what}: asked for mode {mode}, the watch used {in_use} ({said})")
    if events < expected:
        raise RuntimeError(f"{what}: {events} events, the program made {expected} deletes")


def _paired(runs: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Each run once per round, back to back, in reversed order every other round (the
    machine's speed drifts between runs more than within a round)."""
    out: dict[str, list[float]] = {k: [] for k in runs}
    for i in range(rounds):
        for k in list(runs)[:: -1 if i % 2 else 1]:
            out[k].append(runs[k]())
    return out


def _spread(xs: list[float], fmt: str = ".2f", unit: str = "x") -> str:
    return f"{min(xs):{fmt}}{unit} to {max(xs):{fmt}}{unit}"


def _counts(xs: list[float]) -> str:
    """Counts from several runs: one number when they agree, else their range."""
    lo, hi = int(min(xs)), int(max(xs))
    return f"{lo:,}" if lo == hi else f"{lo:,} to {hi:,}"


# fixtures/churn: N deletes of a 64-entry map in main (timed by the program: this line), N/4
# in each of two other goroutines meanwhile; W deletes of the package map `main.watched`
# (keys 0..2W-1), one before the churn, W-1 after, every one on a non-empty map (so each
# sets its writing flag, absent keys included): W events in either mode
CHURN_RE = re.compile(rb"^churn: (\d+) deletes of another map in ([\d.]+) s", re.M)
CHURN_WATCHED = 10
CHURN_OTHER = 1.5  # deletes of other maps in the churn phase, per churn delete of main


def _churn_phase(what: str, out: bytes, n: int) -> float:
    m = CHURN_RE.search(out)
    if m is None or int(m.group(1)) != n:
        tail = out[-500:].decode(errors="replace")
        raise RuntimeError(f"{what}: no churn line for {n} deletes in its output: {tail!r}")
    return float(m.group(2))


def _churn_bare(prog: Path, n: int) -> float:
    """The churn phase of the program run alone (no Delve), in seconds."""
    r = subprocess.run(
        [str(prog), str(n), str(CHURN_WATCHED)], capture_output=True, check=True, timeout=600
    )
    return _churn_phase("bare churn", r.stdout, n)


def _churn_delve(b: Bench, prog: Path, n: int) -> float:
    """The churn phase under Delve, with no breakpoint at all."""
    out = io.BytesIO()  # the program's output (Delve's drain threads copy it here)
    with Session.launch(b.dlv(), prog, [str(n), str(CHURN_WATCHED)], sink=out) as s:
        while not s.client.command("continue").exited:
            pass
    return _churn_phase("churn under Delve", out.getvalue(), n)


def _churn_watched(b: Bench, prog: Path, n: int, mode: str) -> float:
    """The churn phase while dlvsnap watches `main.watched` in ``mode``."""
    out, js = io.BytesIO(), io.StringIO()
    events: list[int] = []
    notes: list[Note] = []

    def on_event(ev: DeleteEvent) -> None:
        jsonl.event(js, ev, False)
        events.append(ev.seq)

    with Session.launch(b.dlv(), prog, [str(n), str(CHURN_WATCHED)], sink=out) as s:
        opts = WatchOptions(expr="main.watched", mode=mode, pipeline=True)
        MapWatch(s, opts, on_event, notes.append).run()
    _check_watch(f"churn {n} ({mode})", mode, notes, len(events), CHURN_WATCHED)
    return _churn_phase(f"churn watched ({mode})", out.getvalue(), n)


def churn_bench(b: Bench, n: int, rounds: int) -> float:
    """Rows: the churn phase of N other-map deletes, bare next to dlvsnap watching in
    watchpoint mode (the -N -l build, and an optimised one) and next to Delve alone. The
    median bare time of the -N -l build (for the breakpoints row's extrapolation)."""
    median = statistics.median
    bare_dbg = 0.0
    for label, gcflags in (("", DEBUG_GCFLAGS), (", optimised build", "")):
        prog = b.prog("churn", gcflags)
        runs: dict[str, Callable[[], float]] = {
            "bare": functools.partial(_churn_bare, prog, n),
            "watchpoint": functools.partial(_churn_watched, b, prog, n, "watchpoint"),
        }
        if gcflags:
            runs["delve"] = functools.partial(_churn_delve, b, prog, n)
        got = _paired(runs, rounds)
        b.extra[f"churn_{n}{'_optimised' if not gcflags else ''}"] = got
        bare = got["bare"]
        for kind, baseline, target in (
            ("watchpoint", "bare run (no Delve)", "<= 1.5x"),
            ("delve", "bare run (no Delve)", "report"),
        ):
            if kind not in got:
                continue
            ratios = [w / x for w, x in zip(got[kind], bare, strict=True)]
            added = [(w - x) * 1e3 for w, x in zip(got[kind], bare, strict=True)]
            who = "watched, watchpoint mode" if kind == "watchpoint" else "under Delve alone"
            b.rows.append(
                Row(
                    f"churn phase, {n:,} other-map deletes{label}, {who} ({rounds} paired runs)",
                    baseline,
                    median(bare),
                    median(got[kind]),
                    "s",
                    target,
                    f"pair by pair {_spread(ratios)}; added {median(added):+.1f} ms "
                    f"({_spread(added, '+.1f', ' ms')})"
                    + (f"; {CHURN_WATCHED} watched deletes seen" if kind == "watchpoint" else ""),
                    paired=ratios,
                )
            )
        if gcflags:
            bare_dbg = median(bare)
    return bare_dbg


def churn_breakpoints_bench(b: Bench, n: int, big: int, bare_big: float, rounds: int) -> None:
    """Row: the same churn phase watched in breakpoints mode (every delete of every map
    stops the program: a small N), its cost per other-map delete, extrapolated to ``big``
    deletes (bare: ``bare_big`` s)."""
    median = statistics.median
    prog = b.prog("churn")
    got = _paired(
        {
            "bare": lambda: _churn_bare(prog, n),
            "breakpoints": lambda: _churn_watched(b, prog, n, "breakpoints"),
        },
        rounds,
    )
    b.extra[f"churn_{n}_breakpoints"] = got
    ratios = [w / x for w, x in zip(got["breakpoints"], got["bare"], strict=True)]
    added = median(got["breakpoints"]) - median(got["bare"])
    per = added / (CHURN_OTHER * n)
    big_watched = bare_big + added * big / n
    b.extra[f"churn_{n}_breakpoints"]["per_other_delete_s"] = [per]
    b.rows.append(
        Row(
            f"churn phase, {n:,} other-map deletes, watched, breakpoints mode "
            f"({rounds} paired runs)",
            "bare run (no Delve)",
            median(got["bare"]),
            median(got["breakpoints"]),
            "s",
            "report (before)",
            f"{per * 1e3:.2f} ms per other-map delete ({CHURN_OTHER:g}N of them: N in main, "
            f"N/4 in each of 2 goroutines); extrapolated to {big:,}: {big_watched:,.0f} s, "
            f"{big_watched / bare_big:,.0f}x bare; pair by pair {_spread(ratios, ',.0f')}",
            paired=ratios,
        )
    )


def watchpoint_pair_bench(b: Bench, n: int, deletes: int, rounds: int = 9) -> None:
    """Rows: watched deletes per second in watchpoint mode, next to bare Delve stop pairs
    (as the breakpoints row) and to bare watchpoint traps on the same flag (no variables,
    no stack: Delve's own cost of this mode). In fixtures/bench every delete is followed by
    putting the key back, an insert of the watched map, which traps twice too: 4 traps per
    delete."""
    got = _paired(
        {
            "bare_pairs": lambda: _bare_pairs(b, n, deletes),
            "bare_traps": lambda: _bare_traps(b, n, deletes),
            "watched": lambda: _watched(b, n, deletes, "watchpoint"),
        },
        rounds,
    )
    b.extra[f"stop_pairs_{n}_watchpoint"] = got
    median = statistics.median
    watched = median(got["watched"])
    for kind, baseline, target in (
        ("bare_pairs", "bare Delve stop pairs", ">= 1.0x (stretch 1.5x)"),
        ("bare_traps", "bare Delve watchpoint traps (4 per delete)", "report"),
    ):
        ratios = [w and x / w for x, w in zip(got[kind], got["watched"], strict=True)]
        base = median(got[kind])
        b.rows.append(
            Row(
                f"watched deletes/s, watchpoint mode, {n:,}-entry map, each delete followed "
                f"by an insert ({rounds} paired runs)",
                baseline,
                1 / base,
                1 / watched,
                "/s",
                target,
                f"median of the pairs' ratios; pair by pair {_spread(ratios)}; ratio of the "
                f"medians {base / watched:.2f}x",
                paired=ratios,
            )
        )


def _bare_traps(b: Bench, n: int, deletes: int) -> float:
    """Delve alone in watchpoint mode: a write watchpoint on `table`'s writing flag, set at
    its first delete, and a continue per trap; seconds per delete (and its insert)."""
    with Session.launch(b.dlv(), b.prog(), [str(n), str(deletes)], sink=None) as s:
        _, addr = _first_stop(s)
        off, _ = choose_layout(s.target).writing_flag
        s.create_watchpoint(addr + off, "uint8")
        traps: list[float] = []
        while not s.client.command("continue").exited:
            traps.append(time.perf_counter())
    per_delete = len(traps) / max(deletes - 1, 1)
    if per_delete < 4:
        raise RuntimeError(f"bare watchpoint: {len(traps)} traps for {deletes} deletes")
    return (traps[-1] - traps[0]) / max(len(traps) - 1, 1) * 4


# fixtures/censusbench: this line, then a call of main.ready (where the census is taken)
CENSUS_RE = re.compile(rb"^DLVSNAP-CENSUS-BENCH maps=(\d+) objects=(\d+)", re.M)
# Delve's deep load, the census baseline: every pointer followed, every field, element and
# entry loaded. A pointer costs Delve no recursion level; a struct's fields, a slice's
# elements and a map's entries one each. Past the limit a struct comes back without its
# fields, a map with its header address and len but no entries. The deepest maps of
# fixtures/censusbench are fields of the nodes 11 levels down its trees: MaxVariableRecurse
# 10 returns 900 fewer of the forest's 3,000 maps, 11 every map the package variables reach
# (measured), 12 every entry of those maps too. A graph without cycles loads no more with
# a higher limit; each cycle makes a load grow with it.
CENSUS_RECURSE = 12
CENSUS_DEEP = LoadConfig(
    follow_pointers=True,
    max_variable_recurse=CENSUS_RECURSE,
    max_string_len=64,  # Delve's own default: strings are not what the census is after
    max_array_values=1 << 20,  # over every slice's cap and map's len (20,000 at most)
    max_struct_fields=-1,
)
# One deep Eval's reply: main.cache's is 64 MB, at dlvsnap's usual MAX_REPLY
CENSUS_MAX_REPLY = 1 << 30
CENSUS_CALL_TIMEOUT = 1800.0  # one deep load (the largest takes tens of seconds)


def _census_made(out: io.BytesIO, what: str) -> tuple[int, int]:
    """(maps, objects) fixtures/censusbench says it made. Its line comes through Delve's
    output drain, which may deliver it a little after the stop at main.ready."""
    deadline = time.monotonic() + 10.0
    while (m := CENSUS_RE.search(out.getvalue())) is None:
        if time.monotonic() > deadline:
            tail = out.getvalue()[-500:].decode(errors="replace")
            raise RuntimeError(f"{what}: no DLVSNAP-CENSUS-BENCH line in its output: {tail!r}")
        time.sleep(0.05)
    return int(m.group(1)), int(m.group(2))


def _census_stop(b: Bench, prog: Path, what: str) -> tuple[Session, tuple[int, int]]:
    """fixtures/censusbench launched and run to main.ready (the caller closes the session);
    the (maps, objects) it says it made."""
    out = io.BytesIO()
    s = Session.launch(b.dlv(), prog, [], sink=out)
    try:
        run_to(s, "main.ready")
        return s, _census_made(out, what)
    except BaseException:
        s.close()
        raise


def _map_headers(variables: list[JSON], seen: set[int]) -> int:
    """Add the header address of every non-nil map in Delve's Variable trees to ``seen``;
    the number of Variables in the trees."""
    stack = list(variables)
    n = 0
    while stack:
        v = stack.pop()
        n += 1
        if v.get("kind") == Kind.MAP and v.get("base"):
            seen.add(int(v["base"]))
        stack.extend(v.get("children") or ())
    return n


def _peak_rss_mb(pid: int) -> float:
    """The peak resident set of process ``pid`` (VmHWM), in MB; 0 when unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return 0.0


def census_baseline(b: Bench, prog: Path) -> dict[str, float]:
    """What a user can do today with Delve alone, on fixtures/censusbench stopped at
    main.ready: ListPackageVars of main, then a deep Eval (CENSUS_DEEP) of each package
    variable, timed (RPCs and their JSON decoding only), with the number of distinct maps
    the replies hold (an honest baseline says whether it found them); then the same deep
    load of the locals and arguments of every frame of package main in every goroutine
    (`goroutines`, then `locals -v` and `args -v` frame by frame). Runtime frames are left
    out: their locals reach the runtime's own structures (measured on one runtime.gopark
    frame: 160 s, 1.3 million Variables, dlv past 16 GB of RSS)."""
    s, (made_maps, made_objects) = _census_stop(b, prog, "census baseline")
    with s:
        conn = s.client.conn
        conn.max_reply = max(conn.max_reply, CENSUS_MAX_REPLY)
        cfg = CENSUS_DEEP.to_json()
        seen: set[int] = set()
        nvars = nbytes = 0
        took = 0.0
        t0 = time.perf_counter()
        names = s.client.list_package_vars(r"^main\.")
        took += time.perf_counter() - t0
        for name in names:
            scope = {"GoroutineID": -1, "Frame": 0, "DeferredCall": 0}
            t0 = time.perf_counter()
            reply = conn.call(
                "Eval", {"Scope": scope, "Expr": name, "Cfg": cfg}, CENSUS_CALL_TIMEOUT
            )
            took += time.perf_counter() - t0
            nvars += _map_headers([reply["Variable"]], seen)
            nbytes += len(orjson.dumps(reply))
        eval_maps = len(seen)
        rss_eval = _peak_rss_mb(s.dlv.proc.pid) if s.dlv else 0.0
        locals_took = 0.0
        t0 = time.perf_counter()
        goroutines = conn.call("ListGoroutines", {"Start": 0, "Count": 0}, 60.0)["Goroutines"]
        frames = [(g["id"], s.client.stacktrace(g["id"], 100)) for g in goroutines]
        locals_took += time.perf_counter() - t0
        for gid, stack in frames:
            for i, f in enumerate(stack):
                if not f.function.startswith("main."):
                    continue
                scope = {"GoroutineID": gid, "Frame": i, "DeferredCall": 0}
                for method, key in (("ListLocalVars", "Variables"), ("ListFunctionArgs", "Args")):
                    t0 = time.perf_counter()
                    reply = conn.call(method, {"Scope": scope, "Cfg": cfg}, CENSUS_CALL_TIMEOUT)
                    locals_took += time.perf_counter() - t0
                    nvars += _map_headers(list(reply.get(key) or ()), seen)
        return {
            "made_maps": made_maps,
            "made_objects": made_objects,
            "package_vars": len(names),
            "eval_s": took,
            "eval_maps": eval_maps,
            "eval_reply_mb": nbytes / 1e6,
            "dlv_peak_rss_eval_mb": rss_eval,
            "locals_s": locals_took,
            "maps_with_locals": len(seen),
            "variables": nvars,
            "dlv_peak_rss_mb": _peak_rss_mb(s.dlv.proc.pid) if s.dlv else 0.0,
        }


def _census_live(b: Bench, prog: Path) -> dict[str, float]:
    """dlvsnap's census (dlvsnap.census.take) of fixtures/censusbench stopped at main.ready:
    seconds, maps."""
    s, _ = _census_stop(b, prog, "census")
    with s:
        t0 = time.perf_counter()
        census = take_census(s)
        return {"s": time.perf_counter() - t0, "maps": len(census.maps)}


def _census_core(b: Bench, prog: Path) -> dict[str, float]:
    """The census from a core of fixtures/censusbench at main.ready, written by Delve
    (dlvsnap.dump): seconds (the census on the core, the core opened), maps; the dump's
    time and size."""
    with tempfile.TemporaryDirectory(prefix="dlvsnap-bench-") as tmp:
        path = Path(tmp) / "censusbench.core"
        s, _ = _census_stop(b, prog, "census core")
        with s:
            dumped = dump_core(s, str(path))
        with Session.core(b.dlv(), str(path), str(prog)) as cs:
            t0 = time.perf_counter()
            census = take_census(cs)
            took = time.perf_counter() - t0
        return {
            "s": took,
            "maps": len(census.maps),
            "dump_s": dumped.seconds,
            "core_mb": path.stat().st_size / 1e6,
        }


def census_bench(b: Bench, rounds: int) -> None:
    """Rows (issue 15): the census of fixtures/censusbench by dlvsnap, live, next to Delve's
    deep loads (census_baseline); and from a core file next to the live census. ``rounds``
    rounds, each one run of each, back to back, in reversed order every other round."""
    median = statistics.median
    prog = b.prog("censusbench")
    runs: dict[str, Callable[[], dict[str, float]]] = {
        "baseline": functools.partial(census_baseline, b, prog),
        "live": functools.partial(_census_live, b, prog),
        "core": functools.partial(_census_core, b, prog),
    }
    got: dict[str, list[dict[str, float]]] = {k: [] for k in runs}
    for i in range(rounds):
        for k in list(runs)[:: -1 if i % 2 else 1]:
            got[k].append(runs[k]())
    b.extra["census"] = got
    base, live, core = got["baseline"], got["live"], got["core"]
    made, objects = int(base[0]["made_maps"]), int(base[0]["made_objects"])
    eval_s = [r["eval_s"] for r in base]
    both_s = [r["eval_s"] + r["locals_s"] for r in base]
    seen = f"{_counts([r['eval_maps'] for r in base])} of the {made:,} maps"
    if min(r["eval_maps"] for r in base) < made:
        seen += " (the rest are in main.worker's frame: no package variable reaches them)"
    said = (
        f"Delve's loads returned {seen}; {median(r['variables'] for r in base):,.0f} Variables, "
        f"{median(r['eval_reply_mb'] for r in base):,.0f} MB of JSON, dlv peak RSS "
        f"{median(r['dlv_peak_rss_mb'] for r in base):,.0f} MB; with main's frames' locals "
        f"too: {median(both_s):.1f} s, {_counts([r['maps_with_locals'] for r in base])}"
        " maps"
    )
    label = f"fixtures/censusbench, {made:,} maps among {objects:,} objects"
    live_s = [o["s"] for o in live]
    b.rows.append(
        Row(
            f"map census, live, {label} ({rounds} paired runs)",
            f"Delve: ListPackageVars + deep Eval (MaxVariableRecurse {CENSUS_RECURSE})",
            median(eval_s),
            median(live_s),
            "s",
            "<= 10 s and <= 0.05x (20x faster)",
            f"dlvsnap listed {_counts([o['maps'] for o in live])} maps, in "
            f"{_spread(live_s, '.2f', ' s')}; " + said,
            paired=[o / e for o, e in zip(live_s, eval_s, strict=True)],
        )
    )
    core_s = [o["s"] for o in core]
    b.rows.append(
        Row(
            f"map census from a core file, {label} ({rounds} paired runs)",
            "dlvsnap's live census (the row above)",
            median(live_s),
            median(core_s),
            "s",
            "<= 1.0x",
            f"dlvsnap listed {_counts([o['maps'] for o in core])} maps, in "
            f"{_spread(core_s, '.2f', ' s')}; the dump (not in the figure): "
            f"{median(o['dump_s'] for o in core):.2f} s, "
            f"{median(o['core_mb'] for o in core):,.0f} MB",
            paired=[c / lv for c, lv in zip(core_s, live_s, strict=True)],
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--quick", action="store_true", help="smaller maps (a smoke test)")
    ap.add_argument("--go", default="1.26", help="Go release of the swiss target")
    ap.add_argument("--classic-go", default="1.22.10", help="Go release of the classic target")
    ap.add_argument(
        "--census",
        action="store_true",
        help="the map census rows only (issue 15; in the default run too)",
    )
    args = ap.parse_args()
    big = 100_000 if args.quick else 1_000_000
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.node(),
        "python": platform.python_version(),
        "benches": [],
    }
    for v in (Variant(args.go), Variant(args.classic_go)):
        b = Bench(v)
        if not args.census:
            print(f"bench: {v.id} ...", file=sys.stderr, flush=True)
            snapshot_bench(b, 100_000 if not args.quick else 10_000, eval_load=True)
            snapshot_bench(b, big, eval_load=False)
            bare, watched = stop_pair_bench(b, 1000, 100 if args.quick else 300)
            runs = b.extra["stop_pairs_1000"]
            ratios = [w and bb / w for bb, w in zip(runs["bare_s"], runs["watched_s"], strict=True)]
            b.rows.append(
                Row(
                    f"watched deletes/s, 1,000-entry map ({len(ratios)} paired runs)",
                    "bare Delve stop pairs",
                    1 / bare,
                    1 / watched,
                    "/s",
                    ">= 0.8x (stretch 1.0x)",
                    f"median of the pairs' ratios; pair by pair {min(ratios):.2f}x to "
                    f"{max(ratios):.2f}x; ratio of the medians {bare / watched:.2f}x",
                    paired=ratios,
                )
            )
            _, watched_big = stop_pair_bench(b, big, 30, rounds=3)
            b.rows.append(
                Row(
                    f"per-delete time, {big:,} vs 1,000 entries",
                    "dlvsnap on 1,000",
                    watched,
                    watched_big,
                    "s",
                    "<= 2x",
                )
            )
            print(f"bench: {v.id} watchpoint mode ...", file=sys.stderr, flush=True)
            bare_churn = churn_bench(b, big, rounds=5)
            churn_breakpoints_bench(b, 2_000 if args.quick else 20_000, big, bare_churn, rounds=3)
            watchpoint_pair_bench(b, 1000, 100 if args.quick else 300)
        print(f"bench: {v.id} census ...", file=sys.stderr, flush=True)
        census_bench(b, 1 if args.quick else 3)
        results["benches"].append(
            {
                "go": v.id,
                "rows": [_finite({**r.__dict__, "ratio": r.ratio()}) for r in b.rows],
                "extra": b.extra,
            }
        )
        _print(v, b.rows)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    """A row for --json: a figure not measured (NaN) is null, which JSON has."""
    return {k: None if isinstance(x, float) and math.isnan(x) else x for k, x in row.items()}


def _print(v: Variant, rows: list[Row]) -> None:
    table = [
        [
            r.measure,
            r.baseline,
            f"{r.baseline_value:,.4g}",
            "-" if math.isnan(r.dlvsnap_value) else f"{r.dlvsnap_value:,.4g}",
            r.unit,
            "-" if math.isnan(r.ratio()) else f"{r.ratio():.3g}x",
            r.target,
            r.ratio_note,
        ]
        for r in rows
    ]
    print(f"\n{v.id}")
    print(
        tabulate(
            table,
            headers=[
                "measure",
                "baseline",
                "baseline",
                "dlvsnap",
                "unit",
                "dlvsnap/baseline",
                "target",
                "note",
            ],
            tablefmt="github",
        )
    )


if __name__ == "__main__":
    main()
