"""Take a census of a program where a Session has it stopped (or of a core)."""

from __future__ import annotations

import time

from dlvsnap import snap as snapmod
from dlvsnap.census.maps import MapReader, Occupancy
from dlvsnap.census.plan import Plans
from dlvsnap.census.result import Census, MapEntry, RootStats
from dlvsnap.census.roots import goroutine_roots, package_roots
from dlvsnap.census.walk import Root, Walk
from dlvsnap.goversion import release_of
from dlvsnap.session import Session
from dlvsnap.target import binary
from dlvsnap.verify import choose_layout


def take(s: Session, *, goroutines: bool = True) -> Census:
    """The census of the program where it is stopped (or of a core)."""
    t0 = time.perf_counter()
    exe = binary(s.target.path)
    plans = Plans(exe.type_index)
    rstats = RootStats()
    roots: list[Root] = package_roots(plans, s.load_bias(), rstats)
    if goroutines:
        roots += goroutine_roots(s.client, plans, rstats)
    t1 = time.perf_counter()
    base = snapmod.types_base(s)
    probe = roots[0].addr if roots else base
    mem = s.memory(probe, s.target.ptr_size)
    layout = choose_layout(s.target)
    reader = MapReader(
        mem,
        layout,
        plans,
        types_base=base,
        catalog=snapmod.type_catalog(s),
        release=release_of(s.target.go_version),
    )
    index = exe.type_index

    def type_at(addr: int) -> int | None:
        return index.by_runtime.get(addr - base) if addr >= base else None

    walk = Walk(mem, plans, type_at, reader.read_all, little_endian=s.target.little_endian)
    found = walk.run(roots)
    t2 = time.perf_counter()
    entries = [
        _entry(f.path, f.steps, f.beyond_len, reader.seen[f.addr])
        for f in found
        if f.addr in reader.seen
    ]
    entries.sort(key=lambda m: (-m.waste, -m.figures.held, m.path))
    return Census(
        entries,
        walk.stats,
        rstats,
        {f"{a:#x}": why for a, why in reader.failed.items()},
        {"roots": t1 - t0, "walk": t2 - t1},
    )


def _entry(path: str, steps: int, beyond: bool, o: Occupancy) -> MapEntry:
    return MapEntry(
        path, steps, o.addr, o.type_name, o.impl, o.figures, o.facts, beyond, o.warnings
    )
