"""dlvsnap.advice: the per-release behaviour table, the fresh-map estimate (against sizes
measured on fixtures/shrink, tests/live/test_advice.py), the facts of a decoded snapshot,
and the paragraph."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from dlvsnap.advice import (
    MapFacts,
    Sizes,
    advice,
    behaviour,
    fresh_allocations,
    fresh_bytes,
)
from dlvsnap.decode import ClassicDecoder, SwissDecoder, decode_map_type
from dlvsnap.goversion import Release
from dlvsnap.kinds import Kind
from dlvsnap.layouts import load_layout
from dlvsnap.model import KeyType, MapType
from tests.unit.synth import SwissMap
from tests.unit.test_classic_decode import ClassicMap

# map[int64]int64 on 64-bit: a classic bucket is 8 tophash + 8 keys + 8 elems + overflow
# pointer; a swiss group an 8-byte control word + 8 slots of 16 bytes. Neither has pointers.
BUCKET, GROUP = 144, 136


def map_type(group_size: int, *, pointers: bool = False) -> MapType:
    k = KeyType(Kind.INT64, 8, False, pointers=pointers)
    return MapType(0, k, KeyType(Kind.INT64, 8, False), group_size, 8, 8, 72, 8, 0)


def classic_sizes(version: str = "go1.22.10") -> Sizes:
    return Sizes.of(load_layout("classic", version, 8, True), map_type(BUCKET))


def swiss_sizes(version: str = "go1.26.8") -> Sizes:
    return Sizes.of(load_layout("swiss", version, 8, True), map_type(GROUP))


def test_sizes_come_from_the_layout() -> None:
    assert classic_sizes() == Sizes(group=BUCKET, header=48, extra=24, ptr=8, slots=8)
    assert classic_sizes("go1.25.5").header == 56  # noswissmap's hmap.clearSeq
    assert swiss_sizes() == Sizes(group=GROUP, header=48, table=32, ptr=8, slots=8)
    lay32 = load_layout("swiss", "go1.26.8", 4, True)
    assert Sizes.of(lay32, map_type(100, pointers=True)) == Sizes(
        group=100, header=32, table=24, ptr=4, slots=8, pointers=True
    )


# What tests/live/test_advice.py measured (fixtures/shrink, map[int64]int64, amd64): bytes
# as the allocator reserves them, equal to the program's HeapAlloc deltas.
@pytest.mark.parametrize(
    "impl,release,live,held",
    [
        ("classic", (1, 22), 0, 48),  # make(map[K]V): no bucket until the first insert
        ("classic", (1, 22), 10, 48 + 2 * BUCKET),  # B=1: 288 B, a size class
        ("classic", (1, 21), 10, 48 + 2 * BUCKET),
        # Go 1.21's load factor is 6: 100,000 entries need B=15 (2^15 + 2^11 buckets in 612
        # whole pages; the overflow ones in the array are enough), and mapextra
        ("classic", (1, 21), 100_000, 48 + (32768 + 2048) * BUCKET + 24),
        ("swiss", (1, 26), 0, 48),
        ("swiss", (1, 26), 8, 48 + 144),  # a small map: one group (136 B: class 144)
        ("swiss", (1, 26), 10, 48 + 8 + 32 + 288),  # one table of 16 slots (272 B: 288)
        # 128 tables: the directory (1,024 B of pointers and a malloc header: 1,152), and
        # 128 group arrays of 17,408 B (class 18,432)
        ("swiss", (1, 24), 100_000, 48 + 1152 + 128 * 32 + 128 * 18432),  # 2,364,592
    ],
)
def test_fresh_bytes_as_measured(impl: str, release: Release, live: int, held: int) -> None:
    sizes = classic_sizes() if impl == "classic" else swiss_sizes()
    assert fresh_bytes(impl, release, live, sizes) == held


def test_fresh_allocations() -> None:
    """One entry per kind of heap object (bytes, how many, pointers): the header, the bucket
    array, the overflow buckets outside it, mapextra and the slice that keeps them; the
    header, the directory, each table and its groups."""
    c, s = classic_sizes(), swiss_sizes()
    assert fresh_allocations("classic", (1, 22), 0, c) == [(48, 1, True)]
    assert fresh_allocations("classic", (1, 22), 10, c) == [(48, 1, True), (288, 1, False)]
    assert fresh_allocations("classic", (1, 21), 100_000, c) == [
        (48, 1, True),
        ((32768 + 2048) * BUCKET, 1, False),
        (24, 1, True),
    ]
    head, array, (bucket, outside, gp), extra, slice_header, slice_array = fresh_allocations(
        "classic", (1, 22), 100_000, c
    )
    assert head == (48, 1, True) and array == ((16384 + 1024) * BUCKET, 1, False)
    assert (bucket, gp) == (BUCKET, False) and 1600 < outside < 1700
    assert extra == (24, 1, True) and slice_header == (24, 1, True)
    assert slice_array == (outside * 8, 1, True)
    assert fresh_allocations("swiss", (1, 26), 8, s) == [(48, 1, True), (GROUP, 1, False)]
    assert fresh_allocations("swiss", (1, 26), 100_000, s) == [
        (48, 1, True),
        (128 * 8, 1, True),
        (32, 128, True),
        (128 * GROUP, 128, False),
    ]


def test_classic_estimate_counts_the_average_overflow_buckets() -> None:
    """100,000 entries in 2^14 buckets: 1,024 overflow buckets come with the array and about
    1,660 more are allocated on their own (measured: 1,607 to 1,708 in ten runs; held
    2,764,704 to 2,769,760 B on four releases)."""
    est = fresh_bytes("classic", (1, 22), 100_000, classic_sizes())
    array = 48 + 24 + (16384 + 1024) * BUCKET
    assert 1600 * BUCKET < est - array < 1800 * BUCKET
    assert 2_764_704 * 0.99 < est < 2_769_760 * 1.01


def test_classic_array_fills_its_size_class() -> None:
    """makeBucketArray rounds the array up (roundupsize) and uses the room as overflow
    buckets: B=4 asks for 17 buckets of 208 B (3,536 B), class 4,096 holds 19."""
    sizes = Sizes.of(load_layout("classic", "go1.22.10", 8, True), map_type(208))
    allocs = fresh_allocations("classic", (1, 22), 100, sizes)
    assert allocs[1] == (19 * 208, 1, False)


@pytest.mark.parametrize(
    "release,live,buckets",
    [((1, 22), 13, 2), ((1, 22), 14, 4), ((1, 21), 12, 2), ((1, 21), 13, 4), ((1, 19), 13, 2)],
)
def test_classic_load_factor(release: Release, live: int, buckets: int) -> None:
    """overLoadFactor: 13/2 entries per bucket, 12/2 in Go 1.21 (golang/go#63438)."""
    array = fresh_allocations("classic", release, live, classic_sizes())[1]
    assert array == (buckets * BUCKET, 1, False)


@pytest.mark.parametrize(
    "live,tables,slots",
    [(9, 1, 16), (14, 1, 16), (15, 1, 32), (896, 1, 1024), (897, 2, 512), (2000, 4, 1024)],
)
def test_swiss_sizing(live: int, tables: int, slots: int) -> None:
    """maps.NewMap: capacity live*8/7, a power-of-two directory of tables of at most 1024
    slots, each a power of two."""
    assert fresh_allocations("swiss", (1, 26), live, swiss_sizes()) == [
        (48, 1, True),
        (tables * 8, 1, True),
        (32, tables, True),
        (slots // 8 * GROUP, tables, False),
    ]


def test_behaviour_per_release() -> None:
    for rel in ((1, 21), (1, 22), (1, 23), (1, 24), (1, 25)):
        c = behaviour("classic", rel)
        assert c.has_clear and c.clear_skips_emptied and not c.clone_copies_tables
        assert c.load_num == (12 if rel == (1, 21) else 13)
    assert not behaviour("classic", (1, 20)).has_clear
    s24 = behaviour("swiss", (1, 24))
    assert s24.clear_skips_emptied and not s24.clone_copies_tables
    assert not s24.prunes_tombstones
    for rel in ((1, 25), (1, 26), (1, 27)):
        s = behaviour("swiss", rel)
        assert s.clone_copies_tables and s.prunes_tombstones and not s.clear_skips_emptied
    with pytest.raises(ValueError, match="unknown map implementation"):
        behaviour("robinhood", (1, 30))


# -- facts from a decoded snapshot -------------------------------------------------------------


def test_facts_of_a_swiss_snapshot() -> None:
    lay = load_layout("swiss", "go1.26.8", 8, True)
    sm = SwissMap(lay)
    dec = SwissDecoder(lay, sm.mem, decode_map_type(lay, sm.mem, sm.type_desc()))
    g0 = sm.group({i: (i, 100 + i) for i in range(6)}, deleted=(6, 7))
    g1 = sm.group({0: (0x55, 5)})
    table = sm.table([g0, g1], used=7, growth_left=5, index=0)
    snap = dec.snapshot(sm.header(used=7, dir_ptr=sm.directory([table]), dir_len=1))
    f = MapFacts.of(snap, lay, (1, 26))
    assert (f.impl, f.release, f.live, f.capacity) == ("swiss", (1, 26), 7, 16)
    assert f.tombstones == snap.tombstones == 16 * 7 // 8 - 7 - 5
    # two 136-byte groups in one 272-byte array: class 288
    assert f.held == snap.memory.held == 48 + 8 + 32 + 288
    assert f.fresh == 48 + 144 and f.fresh_estimated  # 7 entries: a small map's one group
    assert f.reclaimable == f.held - f.fresh and not f.worth_rebuilding


def test_facts_of_a_partial_snapshot() -> None:
    """A watch's snapshot around a delete holds only the groups the delete could touch: the
    capacity comes from the bytes of every group, the tombstones from the table headers."""
    lay = load_layout("swiss", "go1.26.8", 8, True)
    sm = SwissMap(lay)
    dec = SwissDecoder(lay, sm.mem, decode_map_type(lay, sm.mem, sm.type_desc()))
    g0 = sm.group({i: (i, 100 + i) for i in range(6)}, deleted=(6, 7))
    table = sm.table([g0, sm.group({0: (0x55, 5)})], used=7, growth_left=5, index=0)
    full = dec.snapshot(sm.header(used=7, dir_ptr=sm.directory([table]), dir_len=1))
    part = dataclasses.replace(full, partial=True, rows=full.rows.take(np.array([1])))
    f = MapFacts.of(part, lay, (1, 26))
    assert (f.capacity, f.tombstones, f.held) == (16, 2, full.memory.held)
    assert f == MapFacts.of(full, lay, (1, 26))


def test_facts_of_a_classic_snapshot() -> None:
    lay = load_layout("classic", "go1.22.10", 8, True)
    cm = ClassicMap(lay)
    dec = ClassicDecoder(lay, cm.mem, decode_map_type(lay, cm.mem, cm.type_desc()))
    ovf = cm.alloc(cm.bucket({0: (0x90, 9)}))
    arr = cm.alloc(cm.bucket({0: (0x10, 1)}, overflow=ovf) + cm.bucket({}))
    snap = dec.snapshot(cm.hmap(count=2, b=1, buckets=arr))
    f = MapFacts.of(snap, lay, (1, 22))
    assert (f.impl, f.live, f.tombstones) == ("classic", 2, 0)
    assert f.capacity == 3 * 8  # two buckets and an overflow bucket (phases.Figures')
    assert f.held == snap.memory.held and f.fresh == 48 + cm.bsize  # 144 B: a class


# -- the paragraph ---------------------------------------------------------------------------


def facts(
    impl: str, release: Release, live: int, *, cap: int, tomb: int = 0, held: int
) -> MapFacts:
    sizes = classic_sizes() if impl == "classic" else swiss_sizes()
    fresh = fresh_bytes(impl, release, live, sizes)
    return MapFacts(impl, release, live, cap, tomb, held, fresh)


def sentences(text: str) -> list[str]:
    # a sentence ends with ". " (the code in the fix has "; " and "{ }", no ". ")
    return [s for s in re.split(r"(?<=\.) (?=[A-Z])", text) if s]


def test_classic_paragraph() -> None:
    f = facts("classic", (1, 22), 10, cap=152_704, held=2_773_344)  # measured on Go 1.22
    text = advice(f, held_before=2_773_344)
    assert sentences(text) == [
        "Deleting gave no memory back: the map holds 2,773,344 B (152,704 slots) for 10 live "
        "entries, as before.",
        "Go maps never shrink: a delete only marks its slot empty, and the buckets stay "
        "allocated until the map itself is garbage (later inserts reuse the slots).",
        "On Go 1.22, clear(m) keeps the bucket array; maps.Clone(m) builds a map sized to its "
        "entries.",
        "Replacing the map by a copy gives it back: m = maps.Clone(m), or the live entries "
        "copied into make(map[K]V, len(m)).",
        "Once nothing else refers to the old map, the next garbage collection frees it: about "
        "2,773,008 B here (a new map for 10 live entries holds about 336 B, estimated from "
        "Go's sizing rules).",
    ]


def test_swiss_paragraph_from_go_1_25() -> None:
    """maps.Clone copies the tables: the fix is a copy by hand, and Clone is not offered."""
    text = advice(facts("swiss", (1, 26), 10, cap=131_072, tomb=46_051, held=2_364_592))
    assert sentences(text) == [
        "The map holds 2,364,592 B (131,072 slots, 46,051 of them tombstones) for 10 live entries.",
        "Go maps never shrink: a delete only marks its slot empty (a tombstone if its group "
        "was full), and every table stays allocated until the map itself is garbage (later "
        "inserts reuse the slots).",
        "On Go 1.26, clear(m) keeps every table and maps.Clone(m) copies them as they are, "
        "tombstones included.",
        "Replacing the map by a copy gives it back: m2 := make(map[K]V, len(m)); for k, v := "
        "range m { m2[k] = v }; m = m2.",
        "Once nothing else refers to the old map, the next garbage collection frees it: about "
        "2,364,216 B here (a new map for 10 live entries holds about 376 B, estimated from "
        "Go's sizing rules).",
    ]


def test_swiss_1_24_emptied_map() -> None:
    """Go 1.24: clear(m) of a map with no live entry leaves its tombstones, Clone is sized
    to the entries, and tombstones make a churning map grow."""
    text = advice(facts("swiss", (1, 24), 0, cap=131_072, tomb=46_144, held=2_364_592))
    assert (
        "On Go 1.24, clear(m) keeps every table (and its tombstones: it does nothing to a map "
        "with no live entry); maps.Clone(m) builds a map sized to its entries." in text
    )
    assert "Replacing the map gives it back: m = make(map[K]V), or nil." in text
    assert "about 2,364,544 B here (a new map for 0 live entries holds about 48 B" in text
    assert text.endswith(
        "On Go 1.24 inserts get rid of tombstones only by growing their table, so a map "
        "whose keys keep changing keeps growing (Go 1.25 prunes them in place)."
    )


def test_classic_emptied_map_keeps_its_overflow_buckets_on_clear() -> None:
    text = advice(facts("classic", (1, 25), 0, cap=152_504, held=2_769_760))
    assert "clear(m) keeps the bucket array (and its overflow buckets: it does nothing" in text


def test_nothing_worth_doing() -> None:
    """A map about the size its entries need: no fix offered."""
    text = advice(facts("swiss", (1, 25), 700, cap=1024, tomb=100, held=18_520))
    assert text.endswith(
        "A new map for its 700 live entries would hold about 18,520 B: replacing it would "
        "give back 0 B, nothing worth doing."
    )
    assert "Replacing the map" not in text and "garbage collection frees" not in text
    # a small gain is not worth it either: under 4 KiB, or under a quarter of what it holds
    assert not facts("classic", (1, 22), 10, cap=16, held=336 + 4000).worth_rebuilding
    assert not facts("swiss", (1, 26), 1000, cap=2048, held=40_000).worth_rebuilding  # 5 kB


def test_before_go_1_21_there_is_no_clear_nor_maps_clone() -> None:
    text = advice(facts("classic", (1, 20), 10, cap=152_768, held=2_749_896))
    assert "clear(m)" not in text and "maps.Clone" not in text
    assert "m2 := make(map[K]V, len(m)); for k, v := range m { m2[k] = v }; m = m2." in text


def test_held_before_and_measured_fresh() -> None:
    f = facts("classic", (1, 21), 0, cap=278_528, held=5_015_648)  # Go 1.21, emptied
    assert advice(f, held_before=7_758_520).startswith(
        "The map holds 5,015,648 B (278,528 slots) for 0 live entries, 2,742,872 B less "
        "than before."
    )
    assert "B more than before." in advice(f, held_before=1000)
    measured = MapFacts("swiss", (1, 26), 10, 131_072, 0, 2_364_592, 376, fresh_estimated=False)
    text = advice(measured)
    assert "about" not in text and "estimated" not in text
    assert "frees it: 2,364,216 B here (a new map for 10 live entries holds 376 B)." in text


def test_one_entry() -> None:
    assert "for 1 live entry." in advice(facts("swiss", (1, 26), 1, cap=8, held=192))
