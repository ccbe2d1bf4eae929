"""What deleting, clear(m), maps.Clone(m), a new map and inserting again keep of a map's
memory on each Go release of the matrix, measured on fixtures/shrink with dlvsnap's own
snapshots and the program's own HeapAlloc: every claim dlvsnap.advice makes (its text and
its per-release Behaviour), and the table of docs/memory-accounting.md.

One launch per release, one stop per phase (fixtures/shrink/prog/main.go lists them).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from dlvsnap import snap as snapmod
from dlvsnap.advice import (
    Behaviour,
    MapFacts,
    Sizes,
    advice,
    behaviour,
    fresh_allocations,
    fresh_bytes,
)
from dlvsnap.build import build_cached
from dlvsnap.goversion import Release, release_of, release_text
from dlvsnap.layouts import Layout
from dlvsnap.model import MapSnapshot
from dlvsnap.phases import Figures
from dlvsnap.session import Session
from dlvsnap.verify import choose_layout
from tests.support import FIXTURES, Variant, dlv_for, go_for, variants

pytestmark = pytest.mark.live

MODULE = FIXTURES / "shrink"
N, KEPT = 100_000, 10  # fixtures/shrink/prog: entries inserted, entries left
# The phases whose map is the parameter m, and those that only say HeapAlloc before/after.
MAP_STOPS = (
    "filled",
    "emptied",
    "clonedEmpty",
    "clearedEmpty",
    "fewLeft",
    "clonedFew",
    "copiedFresh",
    "copiedSized",
    "replaced",
    "beforeClear",
    "clearedFew",
    "refilled",
    "window0",
    "churned",
)
HEAP_STOPS = ("droppedClone", "droppedEmpty")
ORDER = (*MAP_STOPS[:4], *HEAP_STOPS, *MAP_STOPS[4:])

# HeapAlloc against dlvsnap's bytes held, which count each allocation as the allocator
# reserves it (docs/memory-accounting.md): equal but for what the runtime allocates of its
# own between two readings (a few hundred bytes here; 5 KiB seen once).
SLACK = 32 << 10


@dataclass(frozen=True)
class Stop:
    heap: int  # HeapAlloc after runtime.GC(), as the program read it
    before: int | None = None  # a drop's HeapAlloc before it
    snap: MapSnapshot | None = None
    facts: MapFacts | None = None

    @property
    def m(self) -> MapSnapshot:
        assert self.snap is not None
        return self.snap

    @property
    def f(self) -> MapFacts:
        assert self.facts is not None
        return self.facts

    @property
    def held(self) -> int:
        return self.m.memory.held

    @property
    def freed(self) -> int:
        """What HeapAlloc went down by over a drop."""
        assert self.before is not None
        return self.before - self.heap


@dataclass(frozen=True)
class Run:
    v: Variant
    release: Release
    layout: Layout
    b: Behaviour
    stops: dict[str, Stop]

    def __getitem__(self, phase: str) -> Stop:
        return self.stops[phase]

    @property
    def impl(self) -> str:
        return self.b.impl

    @property
    def sizes(self) -> Sizes:
        return Sizes.of(self.layout, self["filled"].m.map_type)

    def fresh(self, live: int) -> int:
        return fresh_bytes(self.impl, self.release, live, self.sizes)


@pytest.fixture(scope="module", params=variants(), ids=lambda v: v.id)
def run(request: pytest.FixtureRequest) -> Run:
    v: Variant = request.param
    if v.release < (1, 21):
        pytest.skip("clear(m) and maps.Clone need Go 1.21")
    exe = build_cached(MODULE, "prog", go_for(v), v.env())
    stops: dict[str, Stop] = {}
    with Session.launch(dlv_for(v), exe, [], sink=None) as s:
        layout = choose_layout(s.target)
        release = release_of(s.target.go_version)
        for phase in ORDER:
            snapmod.run_to(s, f"main.{phase}")
            heap = s.client.eval("heap").as_int()
            before = (
                s.client.eval("before").as_int() if phase in (*HEAP_STOPS, "replaced") else None
            )
            if phase in HEAP_STOPS:
                stops[phase] = Stop(heap, before)
                continue
            snap, _, _ = snapmod.snapshot(s, snapmod.resolve(s, "m"))
            stops[phase] = Stop(heap, before, snap, MapFacts.of(snap, layout, release))
    assert stops["filled"].m.impl == v.impl, "the fixture's map is not the variant's family"
    return Run(v, release, layout, behaviour(v.impl, release), stops)


def _close(freed: int, held: int) -> bool:
    """HeapAlloc went down by ``held`` bytes, give or take the runtime's own."""
    return abs(freed - held) <= SLACK


def _seed(s: MapSnapshot) -> int:
    return s.seed


def _sized(run: Run, s: Stop, live: int) -> None:
    """The map ``s`` (``live`` entries) holds what fresh_bytes says a map sized for them
    holds: swiss exactly; classic its bucket array, and exactly unless chance gave it an
    overflow bucket (the estimate counts their average: none for 10 entries in 2 buckets,
    while 2% of seeds put 9 of them in one bucket)."""
    assert s.m.count == live
    est = run.fresh(live)
    if run.impl == "swiss" or live == 0 or not s.m.memory.overflow:
        assert s.held == est, (s.held, est)
        return
    array = fresh_allocations(run.impl, run.release, live, run.sizes)[1]
    assert s.m.memory.structural is not None
    assert s.m.memory.structural.groups == array[0], (s.m.memory, array)
    assert s.m.memory.overflow <= 2 * s.m.map_type.group_size


# -- deleting ---------------------------------------------------------------------------------


def test_deleting_gives_nothing_back(run: Run) -> None:
    """Go maps never shrink: after deleting every entry the map holds the same buckets or
    tables (swiss: tombstones where groups were full); HeapAlloc says the same."""
    filled, emptied = run["filled"], run["emptied"]
    assert filled.m.count == N and emptied.m.count == 0
    assert emptied.m.memory.groups == filled.m.memory.groups
    if filled.m.memory.old:
        # Go 1.21 (load factor 6): 100,000 entries started a grow to 2^15 buckets; deleting
        # moves buckets too, so the grow finishes and the old array goes, nothing else.
        assert run.release == (1, 21)
        assert emptied.held <= filled.held - filled.m.memory.old
        assert emptied.m.memory.old == 0
    else:
        assert emptied.held == filled.held and emptied.f.capacity == filled.f.capacity
        assert abs(emptied.heap - filled.heap) <= SLACK
        text = advice(emptied.f, held_before=filled.held)
        assert text.startswith(f"Deleting gave no memory back: the map holds {emptied.held:,} B")
    if run.impl == "swiss":
        assert emptied.m.tombstones > 0 and emptied.f.tombstones == emptied.m.tombstones
    assert "Go maps never shrink" in advice(emptied.f)


def test_inserting_again_reuses_the_slots(run: Run) -> None:
    """Deleting everything and inserting as many other keys: the map reuses its slots (and
    tombstones) instead of needing as much again; it never shrinks."""
    filled, emptied, refilled = run["filled"], run["emptied"], run["refilled"]
    assert refilled.m.count == N
    assert refilled.m.memory.groups >= emptied.m.memory.groups
    assert refilled.held < 1.5 * filled.held, (refilled.held, filled.held)
    if run.impl == "swiss":
        assert refilled.m.tombstones < emptied.m.tombstones / 2
    assert "later inserts reuse the slots" in advice(refilled.f)


def test_churn_and_tombstones(run: Run) -> None:
    """300 live keys, 100,000 times one deleted and another inserted. Swiss from Go 1.25:
    a full table prunes its tombstones in place and keeps its size; Go 1.24 grows the table
    instead, again and again. Classic: deleted slots are reused; B never changes."""
    start, end = run["window0"], run["churned"]
    assert start.m.count == end.m.count == 300
    if run.impl == "classic":
        assert end.m.header["B"] == start.m.header["B"]
        return
    text = advice(end.f)
    if run.b.prunes_tombstones:
        assert end.f.capacity == start.f.capacity, (start.f.capacity, end.f.capacity)
        assert "prunes them in place" not in text
    else:
        assert end.f.capacity >= 2 * start.f.capacity, (start.f.capacity, end.f.capacity)
        if end.f.tombstones:
            assert "keeps growing (Go 1.25 prunes them in place)" in text


# -- clear(m) ---------------------------------------------------------------------------------


def test_clear_keeps_the_buckets_or_tables(run: Run) -> None:
    """clear(m) of a map with live entries keeps its bucket array / every table: classic
    drops its overflow buckets and the list that kept them (HeapAlloc down by as much),
    swiss its tombstones."""
    before, after = run["beforeClear"], run["clearedFew"]
    assert before.m.count == KEPT and after.m.count == 0
    assert after.m.memory.groups == before.m.memory.groups
    if run.impl == "classic":
        assert after.m.header["B"] == before.m.header["B"]
        assert after.m.memory.overflow == 0
        assert before.held - after.held >= before.m.memory.overflow
        assert _close(before.heap - after.heap, before.held - after.held)
        kept = "clear(m) keeps the bucket array"
    else:
        assert after.held == before.held and after.m.tombstones == 0
        assert abs(before.heap - after.heap) <= SLACK
        kept = "clear(m) keeps every table"
    assert kept in advice(before.f)


def test_clear_of_an_emptied_map(run: Run) -> None:
    """clear(m) of a map whose entries were all deleted: classic and swiss 1.24 return at
    once (its seed is not even reset), so overflow buckets / tombstones stay; swiss 1.25+
    clears the tombstones (Map.tombstonePossible). The tables or buckets stay in all."""
    emptied, cleared = run["emptied"], run["clearedEmpty"]
    assert cleared.held == emptied.held and cleared.f.capacity == emptied.f.capacity
    if run.b.clear_skips_emptied:
        assert _seed(cleared.m) == _seed(emptied.m)
        assert cleared.m.tombstones == emptied.m.tombstones
        assert cleared.m.memory.overflow == emptied.m.memory.overflow
        left = "overflow buckets" if run.impl == "classic" else "tombstones"
        assert f"(and its {left}: it does nothing to a map with no live entry)" in advice(emptied.f)
    else:
        assert run.impl == "swiss" and emptied.m.tombstones > 0
        assert cleared.m.tombstones == 0 and _seed(cleared.m) != _seed(emptied.m)
        assert "does nothing" not in advice(emptied.f)


# -- maps.Clone(m) ----------------------------------------------------------------------------


@pytest.mark.parametrize("source,clone", [("emptied", "clonedEmpty"), ("fewLeft", "clonedFew")])
def test_clone(run: Run, source: str, clone: str) -> None:
    """maps.Clone(m): classic and swiss 1.24 build a map sized to the live entries (what
    fresh_bytes estimates); swiss 1.25+ copies every table as it is,
    tombstones included. HeapAlloc grows by what the clone holds."""
    src, c = run[source], run[clone]
    assert c.m.count == src.m.count
    text = advice(src.f)
    if run.b.clone_copies_tables:
        assert c.f.capacity == src.f.capacity and c.m.tombstones == src.m.tombstones > 0
        assert c.held == src.held
        assert "maps.Clone(m) copies them as they are, tombstones included" in text
        assert "m = maps.Clone(m)" not in text
    else:
        _sized(run, c, src.m.count)
        assert c.m.tombstones == 0 and src.f.fresh == run.fresh(src.m.count)
        assert "maps.Clone(m) builds a map sized to its entries" in text
        if src.m.count:
            assert "m = maps.Clone(m)" in text
    assert _close(c.heap - src.heap, c.held)


def test_dropping_a_clone_frees_it(run: Run) -> None:
    assert _close(run["droppedClone"].freed, run["clonedEmpty"].held)


# -- a new map --------------------------------------------------------------------------------


def test_a_new_map_holds_what_fresh_bytes_says(run: Run) -> None:
    """make(map[K]V) and make(map[K]V, len(m)), the 10 live entries copied in: both hold
    what the advice's estimate says."""
    few = run["fewLeft"]
    for phase in ("copiedFresh", "copiedSized"):
        assert run[phase].m.tombstones == 0
        _sized(run, run[phase], KEPT)
    assert few.f.fresh == run.fresh(KEPT)


def test_the_estimate_at_scale(run: Run) -> None:
    """fresh_bytes for 100,000 entries against the map that holds them: swiss exactly (128
    tables of 1024 slots); classic within 2% (its overflow buckets are an average), and the
    bucket array is the one the load factor gives."""
    filled = run["filled"]
    if run.impl == "classic":  # 6.5 entries per bucket, 6 in Go 1.21 (golang/go#63438)
        assert filled.m.header["B"] == (15 if run.release == (1, 21) else 14)
    if filled.m.memory.old:
        pytest.skip("Go 1.21: the map is growing at this stop (old buckets held)")
    est = run.fresh(N)
    if run.impl == "swiss":
        assert est == filled.held
    else:
        assert abs(est - filled.held) <= 0.02 * filled.held, (est, filled.held)


def test_replacing_the_map_gives_the_memory_back(run: Run) -> None:
    """b = the new map: the old one is freed at the next collection, and what the program
    keeps is the new map: HeapAlloc goes down by the old map's bytes, the advice's
    "would give back" is those bytes minus the new map's."""
    few, replaced = run["fewLeft"], run["replaced"]
    _sized(run, replaced, KEPT)
    assert _close(replaced.freed, few.held)
    assert _close(replaced.freed - replaced.held, few.f.reclaimable)
    assert few.f.worth_rebuilding
    text = advice(few.f)
    assert f"the next garbage collection frees it: about {few.f.reclaimable:,} B here" in text
    assert f"a new map for 10 live entries holds about {few.f.fresh:,} B" in text


def test_dropping_an_emptied_map_frees_it(run: Run) -> None:
    cleared = run["clearedEmpty"]
    assert _close(run["droppedEmpty"].freed, cleared.held)
    text = advice(cleared.f)
    assert "Replacing the map gives it back: m = make(map[K]V), or nil." in text
    assert f"about {cleared.held - run.fresh(0):,} B here" in text


def test_the_paragraph(run: Run) -> None:
    """The facts the paragraph is made of are the snapshot's, counted as the phase table
    counts them (phases.Figures), and it names the release."""
    few = run["fewLeft"]
    f, fig = few.f, Figures.of(few.m)
    assert (f.impl, f.release, f.live) == (run.impl, run.release, KEPT)
    assert (f.held, f.capacity, f.tombstones) == (fig.held, fig.capacity, fig.tombstones)
    if run.impl == "swiss":
        assert f.capacity == sum(t.capacity for t in few.m.tables)
        assert f.tombstones == few.m.tombstones
    else:
        assert f.capacity >= (1 << int(few.m.header["B"])) * 8
    text = advice(f)
    assert f"On Go {release_text(run.release)}, clear(m) keeps" in text
    assert text.startswith(f"The map holds {few.held:,} B ({f.capacity:,} slots")
