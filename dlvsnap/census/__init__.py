"""A map census: every map reachable from the program's package variables and goroutine
frames, each once, under its shortest path, with what it holds and what it wastes.

    roots (roots.py: DWARF globals, Delve's frames) -> walk (walk.py: typed, each object
    once, bulk reads) -> maps (maps.py: the layouts' decoders) -> Census (sorted by waste)

Only ``take`` and roots.py speak to Delve; the walk and the decoding read a MemoryReader
(/proc/PID/mem, a core file's segments, ExamineMemory), so a core is walked exactly as a
live process is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from dlvsnap import snap as snapmod
from dlvsnap.advice import MapFacts
from dlvsnap.census.maps import MapReader, Occupancy
from dlvsnap.census.plan import Plans
from dlvsnap.census.roots import RootStats, goroutine_roots, package_roots
from dlvsnap.census.walk import Root, Stats, Walk
from dlvsnap.goversion import release_of
from dlvsnap.phases import Figures
from dlvsnap.session import Session
from dlvsnap.target import binary
from dlvsnap.verify import choose_layout

__all__ = ["Census", "MapEntry", "take"]

# The advice of ``snap`` is given for at most this many maps, each wasting at least this.
ADVICE_MAPS = 3
ADVICE_MIN_WASTE = 16 << 10


@dataclass(frozen=True)
class MapEntry:
    """One map of the census."""

    path: str  # the shortest path from a root: main.srv.sessions["abc"].cache
    steps: int
    addr: int  # its header
    type_name: str
    impl: str
    figures: Figures
    facts: MapFacts
    beyond_len: bool = False  # the path goes through a slice element past its len
    warnings: tuple[str, ...] = ()

    @property
    def waste(self) -> int:
        return self.figures.waste


@dataclass
class Census:
    maps: list[MapEntry]  # by waste, largest first
    stats: Stats
    roots: RootStats
    undecoded: dict[str, str] = field(default_factory=dict)  # header (hex) -> why
    seconds: dict[str, float] = field(default_factory=dict)  # roots, walk

    @property
    def held(self) -> int:
        return sum(m.figures.held for m in self.maps)

    @property
    def needed(self) -> int:
        return sum(m.figures.needed for m in self.maps)

    @property
    def waste(self) -> int:
        return sum(m.waste for m in self.maps)

    def shown(self, top: int, min_bytes: int) -> list[MapEntry]:
        """The maps holding at least ``min_bytes``, the first ``top`` of them (0: all)."""
        kept = [m for m in self.maps if m.figures.held >= min_bytes]
        return kept[:top] if top else kept

    def worst(self) -> list[MapEntry]:
        """The maps worth the advice: the most wasteful, if they waste enough to matter."""
        return [m for m in self.maps[:ADVICE_MAPS] if m.waste >= ADVICE_MIN_WASTE]


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
        little_endian=s.target.little_endian,
    )
    index = exe.type_index

    def type_at(addr: int) -> int | None:
        return index.by_runtime.get(addr - base) if addr >= base else None

    walk = Walk(mem, plans, type_at, reader.read, little_endian=s.target.little_endian)
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
