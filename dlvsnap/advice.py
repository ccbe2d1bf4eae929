"""The answer to "I deleted keys from a Go map: is the memory freed?", for one map on one Go
release, as a short paragraph of facts and the fix that works there.

    from dlvsnap.advice import MapFacts, advice
    from dlvsnap.goversion import release_of
    from dlvsnap.verify import choose_layout

    # snapshot: a MapSnapshot of the map now (a watch's Summary.last, a phase's snapshot)
    facts = MapFacts.of(snapshot, choose_layout(target), release_of(target.go_version))
    print(advice(facts))
    print(advice(facts, held_before=summary.first.memory.held))  # before the first delete

``advice(facts, held_before=None) -> str`` says, one sentence each: what the map holds now
for its live entries (and, given ``held_before``, the bytes it held before the deletes,
whether deleting gave any back); why not (Go maps never shrink: a delete only marks its
slot, and buckets/tables stay until the map itself is garbage); what ``clear(m)`` and
``maps.Clone(m)`` keep on the target's release; what gives the memory back there (a new
map with the live entries copied in) and how many bytes that would give back: ``held``
minus what a new map sized for the live entries holds, which ``MapFacts.of`` estimates from
the layout's sizes and the runtime's sizing rules (``fresh_bytes``) and the text calls
an estimate.

``MapFacts`` can also be built by hand (``fresh`` given, ``fresh_estimated=False`` when it
was measured). Pure: no Delve, no I/O.

What each release family does (``behaviour``) was read in each release's runtime source
and measured on fixtures/shrink by tests/live/test_advice.py, which checks every claim the
text makes on the Go releases of the test matrix; the measured table is in
docs/memory-accounting.md, "What releases a map's memory, per release".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dlvsnap.alloc import Allocator
from dlvsnap.goversion import Release, release_text
from dlvsnap.phases import Figures

if TYPE_CHECKING:  # only read
    from dlvsnap.layouts import Layout
    from dlvsnap.model import MapSnapshot, MapType

# A rebuild is worth suggesting when it gives back at least this many bytes and at least
# this share of what the map holds.
WORTH_BYTES = 4096
WORTH_SHARE = 0.25

# Swiss tables (internal/runtime/maps): a table holds at most 1024 slots (maxTableCapacity)
# and grows at 7/8 full (maxAvgGroupLoad = 7 of abi.MapGroupSlots = 8).
_MAX_TABLE_SLOTS = 1024


@dataclass(frozen=True)
class Behaviour:
    """What one release's runtime does with a map's memory (docs/memory-accounting.md)."""

    impl: str  # "classic" | "swiss"
    release: Release
    # clear(m) exists (Go 1.21): it keeps the bucket array / every table.
    has_clear: bool
    # clear(m) returns at once when no entry is live (classic: h.count == 0; swiss 1.24:
    # m.Used() == 0), so what deletes left stays: overflow buckets, tombstones. Swiss 1.25
    # also clears a map with only tombstones (Map.tombstonePossible).
    clear_skips_emptied: bool
    # maps.Clone(m) copies the tables as they are, capacity and tombstones included (swiss
    # 1.25+: Map.Clone, golang/go#70836), instead of a map sized to the live entries
    # (classic mapclone2, swiss 1.24 mapclone2: makemap(len) and re-insert).
    clone_copies_tables: bool
    # A full swiss table first drops the tombstones no probe sequence needs, in place
    # (table.pruneTombstones, Go 1.25, golang/go#70886); before, only growing removed them.
    prunes_tombstones: bool
    # classic: entries per bucket before the map grows, as loadFactorNum/loadFactorDen:
    # 12/2 in Go 1.21 (integer division, golang/go#63438), else 13/2.
    load_num: int = 13


def behaviour(impl: str, release: Release) -> Behaviour:
    """The behaviour of ``impl`` maps ("classic" or "swiss") on Go ``release``."""
    if impl == "classic":
        return Behaviour(
            impl,
            release,
            has_clear=release >= (1, 21),
            clear_skips_emptied=True,
            clone_copies_tables=False,
            prunes_tombstones=False,
            load_num=12 if release == (1, 21) else 13,
        )
    if impl != "swiss":
        raise ValueError(f"unknown map implementation {impl!r}")
    return Behaviour(
        impl,
        release,
        has_clear=True,
        clear_skips_emptied=release < (1, 25),
        clone_copies_tables=release >= (1, 25),
        prunes_tombstones=release >= (1, 25),
    )


@dataclass(frozen=True)
class Sizes:
    """What a map of one type is built of, in bytes: its layout's structs and its type's
    bucket/group."""

    group: int  # one bucket (classic) or group (swiss)
    header: int  # hmap / maps.Map
    extra: int = 0  # classic: mapextra
    table: int = 0  # swiss: one table
    ptr: int = 8
    slots: int = 8  # slots per bucket / group
    pointers: bool = False  # a bucket/group has pointers (MapType.group_pointers)

    @classmethod
    def of(cls, layout: Layout, mt: MapType) -> Sizes:
        """The sizes of maps of type ``mt``, decoded with ``layout``."""
        classic = layout.family == "classic"
        return cls(
            group=mt.group_size,
            header=layout.struct("hmap" if classic else "Map").size,
            extra=layout.struct("mapextra").size if classic else 0,
            table=0 if classic else layout.struct("table").size,
            ptr=layout.ptr_size,
            slots=layout.const("bucket_slots" if classic else "group_slots"),
            pointers=mt.group_pointers,
        )


# One kind of heap allocation: (bytes asked for, how many, whether it has pointers).
Alloc = tuple[int, int, bool]


def fresh_bytes(impl: str, release: Release, live: int, sizes: Sizes) -> int:
    """An estimate of what ``make(map[K]V, live)`` holds once ``live`` entries are in it
    (keys and elems stored outside the slots not counted): ``fresh_allocations``, each as
    the release's allocator reserves it (dlvsnap.alloc), as dlvsnap's Memory counts a map
    (what it adds to MemStats.HeapAlloc)."""
    a = Allocator(release, sizes.ptr)
    return sum(
        a.reserved(size, pointers=p) * n
        for size, n, p in fresh_allocations(impl, release, live, sizes)
    )


def fresh_allocations(impl: str, release: Release, live: int, sizes: Sizes) -> list[Alloc]:
    """The heap allocations of a new map sized for ``live`` entries (docs/memory-accounting.md,
    "What a map allocates").

    classic (runtime.makemap, makeBucketArray): the smallest B with live <= 6.5 * 2^B (6 in
    Go 1.21), 2^B buckets in one array, from B = 4 with 2^(B-4) overflow buckets and as many
    more as the array's size class has room for; the overflow buckets a uniform hash needs
    beyond those on average (a bucket of k entries chains ceil(k/8) - 1), one allocation
    each, with mapextra and, for pointer-free buckets, the slice that keeps them; no bucket
    at all for 0 entries.
    swiss (maps.NewMap): one group for up to 8 entries; else capacity live*8/7 spread over
    a power-of-two directory of tables of at most 1024 slots, each a power of two.
    """
    out: list[Alloc] = [(sizes.header, 1, True)]
    if live <= 0:
        return out
    if impl == "classic":
        return out + _classic_allocations(release, live, sizes)
    if live <= sizes.slots:
        return [*out, (sizes.group, 1, sizes.pointers)]
    target = live * sizes.slots // 7
    tables = _pow2(-(-target // _MAX_TABLE_SLOTS))
    capacity = _pow2(max(sizes.slots, target // tables))
    return [
        *out,
        (tables * sizes.ptr, 1, True),  # the directory
        (sizes.table, tables, True),
        (capacity // sizes.slots * sizes.group, tables, sizes.pointers),  # each table's groups
    ]


def _classic_allocations(release: Release, live: int, sizes: Sizes) -> list[Alloc]:
    load_num = behaviour("classic", release).load_num
    b = 0
    while live > sizes.slots and live > load_num * ((1 << b) // 2):  # overLoadFactor
        b += 1
    buckets = n = 1 << b
    if b >= 4:  # makeBucketArray: preallocated overflow buckets, then roundupsize
        n += 1 << (b - 4)
        usable = Allocator(release, sizes.ptr).usable(n * sizes.group, pointers=sizes.pointers)
        n = max(n, usable // sizes.group)
    outside = max(0, round(_expected_overflow(live, buckets, sizes.slots) - (n - buckets)))
    out: list[Alloc] = [(n * sizes.group, 1, sizes.pointers)]
    if outside:
        out.append((sizes.group, outside, sizes.pointers))
    if n > buckets or outside:
        out.append((sizes.extra, 1, True))  # hmap.extra: nextOverflow, the overflow list
    if outside and not sizes.pointers:  # mapextra.overflow: new([]*bmap) and its array
        out += [(3 * sizes.ptr, 1, True), (outside * sizes.ptr, 1, True)]
    return out


def _expected_overflow(live: int, buckets: int, slots: int) -> float:
    """The overflow buckets ``buckets`` buckets need, on average, for ``live`` entries
    hashed uniformly: the entries of one bucket are Binomial(live, 1/buckets)."""
    if buckets == 1:
        return float(max(0, -(-live // slots) - 1))
    q = 1 / buckets
    p = math.exp(live * math.log1p(-q))  # P(k = 0)
    total = 0.0
    for k in range(live + 1):
        total += p * max(0, -(-k // slots) - 1)
        if k > live * q and p < 1e-12:
            break
        p *= (live - k) / (k + 1) * q / (1 - q)
    return total * buckets


def _pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


@dataclass(frozen=True)
class MapFacts:
    """What the advice is made of: one map, decoded, on one Go release."""

    impl: str  # "classic" | "swiss"
    release: Release  # (1, 26)
    live: int  # live entries
    capacity: int  # slots in the buckets (overflow and old ones included) or groups
    tombstones: int  # swiss: deleted slots; classic: emptyOne slots (as phases.Figures)
    held: int  # bytes the map holds (Memory.held)
    fresh: int  # bytes a new map sized for the live entries would hold
    fresh_estimated: bool = True  # ``fresh`` is fresh_bytes' estimate, not a measurement

    @classmethod
    def of(cls, snap: MapSnapshot, layout: Layout, release: Release) -> MapFacts:
        """The facts of a snapshot (a partial one will do: its Memory covers the whole
        map), decoded with ``layout`` from a program built by Go ``release``."""
        m = snap.memory
        sizes = Sizes.of(layout, snap.map_type)
        if snap.partial:  # its rows are the groups one delete can touch: count the bytes
            parts = m.structural or m  # the buckets/groups by their types' sizes
            capacity = (parts.groups + parts.overflow) // sizes.group * sizes.slots
            tombstones = snap.tombstones
        else:  # as the phase table counts them (classic: emptyOne slots as tombstones)
            fig = Figures.of(snap)
            capacity, tombstones = fig.capacity, fig.tombstones
        return cls(
            impl=snap.impl,
            release=release,
            live=snap.count,
            capacity=capacity,
            tombstones=tombstones,
            held=m.held,
            fresh=fresh_bytes(snap.impl, release, snap.count, sizes) + m.indirect,
        )

    @property
    def reclaimable(self) -> int:
        """What replacing the map by a new one for its live entries would give back."""
        return max(0, self.held - self.fresh)

    @property
    def worth_rebuilding(self) -> bool:
        return self.reclaimable >= max(WORTH_BYTES, WORTH_SHARE * self.held)


def advice(facts: MapFacts, held_before: int | None = None) -> str:
    """The paragraph (see the module's docstring). ``held_before``: the bytes the map held
    before the deletes (the first snapshot of a watch or a phase table), when known."""
    f, b = facts, behaviour(facts.impl, facts.release)
    go = f"Go {release_text(f.release)}"
    about = "about " if f.fresh_estimated else ""
    out = [_now(f, held_before)]
    kept = "the buckets stay" if f.impl == "classic" else "every table stays"
    out.append(
        "Go maps never shrink: a delete only marks its slot empty"
        + ("" if f.impl == "classic" else " (a tombstone if its group was full)")
        + f", and {kept} allocated until the map itself is garbage (later inserts reuse "
        "the slots)."
    )
    if b.has_clear:
        out.append(_clear_and_clone(f, b, go))
    entries = _entries(f.live, "live ")
    if not f.worth_rebuilding:
        out.append(
            f"A new map for its {entries} would hold {about}{f.fresh:,} B: replacing it would "
            f"give back {f.reclaimable:,} B, nothing worth doing."
        )
    else:
        sized = ", estimated from Go's sizing rules" if f.fresh_estimated else ""
        out.append(_fix(f, b))
        out.append(
            "Once nothing else refers to the old map, the next garbage collection frees it: "
            f"{about}{f.reclaimable:,} B here (a new map for {entries} holds "
            f"{about}{f.fresh:,} B{sized})."
        )
    if f.impl == "swiss" and not b.prunes_tombstones and f.tombstones:
        out.append(
            f"On {go} inserts get rid of tombstones only by growing their table, so a map "
            "whose keys keep changing keeps growing (Go 1.25 prunes them in place)."
        )
    return " ".join(out)


def _now(f: MapFacts, held_before: int | None) -> str:
    slots = f"{f.capacity:,} slots" + (
        f", {f.tombstones:,} of them tombstones" if f.tombstones else ""
    )
    holds = f"the map holds {f.held:,} B ({slots}) for {_entries(f.live, 'live ')}"
    if held_before == f.held:
        return f"Deleting gave no memory back: {holds}, as before."
    holds = holds[0].upper() + holds[1:]
    if held_before is None:
        return f"{holds}."
    if held_before > f.held:
        return f"{holds}, {held_before - f.held:,} B less than before."
    return f"{holds}, {f.held - held_before:,} B more than before."


def _clear_and_clone(f: MapFacts, b: Behaviour, go: str) -> str:
    if b.clone_copies_tables:
        return (
            f"On {go}, clear(m) keeps every table and maps.Clone(m) copies them as they are, "
            "tombstones included."
        )
    kept = "the bucket array" if f.impl == "classic" else "every table"
    if f.live == 0 and b.clear_skips_emptied:
        left = "its overflow buckets" if f.impl == "classic" else "its tombstones"
        kept += f" (and {left}: it does nothing to a map with no live entry)"
    return f"On {go}, clear(m) keeps {kept}; maps.Clone(m) builds a map sized to its entries."


def _fix(f: MapFacts, b: Behaviour) -> str:
    if f.live == 0:
        return "Replacing the map gives it back: m = make(map[K]V), or nil."
    if b.has_clear and not b.clone_copies_tables:
        how = "m = maps.Clone(m), or the live entries copied into make(map[K]V, len(m))"
    else:
        how = "m2 := make(map[K]V, len(m)); for k, v := range m { m2[k] = v }; m = m2"
    return f"Replacing the map by a copy gives it back: {how}."


def _entries(n: int, what: str = "") -> str:
    return f"{n:,} {what}{'entry' if n == 1 else 'entries'}"
