#!/usr/bin/env python3
"""Measure dlvsnap next to baselines taken in the same run, on the same target and machine.

    make bench                      # .venv/bin/python scripts/bench.py --json bench.json
    .venv/bin/python scripts/bench.py --quick

Baselines: the raw /proc/PID/mem read of the bytes a snapshot reads; Delve's ExamineMemory
over the same bytes; bare Delve stop pairs (a conditional breakpoint on the delete entry
point + stepOut, no memory read); Delve's own Eval load of the map. dlvsnap: a snapshot
(time and peak Python memory), watched deletes per second with snapshot + diff + JSON
output, per-delete time on a small and a large map. Prints a table with ratios; --json
writes the figures. Targets are in issue 4 and README "Performance".
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tabulate import tabulate  # noqa: E402

from dlvsnap.build import build_cached  # noqa: E402
from dlvsnap.decode import decode_map_type, make_decoder  # noqa: E402
from dlvsnap.delve.client import BreakpointSpec  # noqa: E402
from dlvsnap.delve.memory import DelveMem  # noqa: E402
from dlvsnap.delve.types import LoadConfig  # noqa: E402
from dlvsnap.memory import ProcMem, RecordingMem  # noqa: E402
from dlvsnap.model import DeleteEvent  # noqa: E402
from dlvsnap.render import jsonl  # noqa: E402
from dlvsnap.session import Session  # noqa: E402
from dlvsnap.toolchain import Variant, pick_dlv  # noqa: E402
from dlvsnap.verify import choose_layout  # noqa: E402
from dlvsnap.watch import DEFAULT_OPS, MapWatch, WatchOptions, ops_regex  # noqa: E402


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

    def prog(self) -> Path:
        go = self.variant.go_path()
        assert go is not None and go.exists(), f"Go {self.variant.go} not installed"
        return build_cached(ROOT / "fixtures", "bench", str(go), self.variant.env())

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


def _watched(b: Bench, n: int, deletes: int) -> float:
    out = io.StringIO()
    stamps: list[float] = []

    def on_event(ev: DeleteEvent) -> None:
        jsonl.event(out, ev, False)
        stamps.append(time.perf_counter())

    with Session.launch(b.dlv(), b.prog(), [str(n), str(deletes)], sink=None) as s:
        w = MapWatch(s, WatchOptions(expr="main.table", pipeline=True), on_event)
        w.run()
    # from the first watched delete to the last: the first one's whole snapshot (which
    # checks the hash) is a one-off
    return (stamps[-1] - stamps[0]) / max(len(stamps) - 1, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--quick", action="store_true", help="smaller maps (a smoke test)")
    ap.add_argument("--go", default="1.26", help="Go release of the swiss target")
    ap.add_argument("--classic-go", default="1.22.10", help="Go release of the classic target")
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
        results["benches"].append(
            {
                "go": v.id,
                "rows": [{**r.__dict__, "ratio": r.ratio()} for r in b.rows],
                "extra": b.extra,
            }
        )
        _print(v, b.rows)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def _print(v: Variant, rows: list[Row]) -> None:
    table = [
        [
            r.measure,
            r.baseline,
            f"{r.baseline_value:,.4g}",
            f"{r.dlvsnap_value:,.4g}",
            r.unit,
            f"{r.ratio():.3g}x",
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
