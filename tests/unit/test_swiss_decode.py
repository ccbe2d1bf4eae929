"""The swiss decoder on synthetic maps (small, one table, several tables, indirect keys)."""

from __future__ import annotations

import pytest

from dlvsnap.decode import SwissDecoder, decode_map_type
from dlvsnap.errors import LayoutError
from dlvsnap.kinds import Kind
from dlvsnap.layouts import load_layout
from dlvsnap.model import DELETED, EMPTY, FULL, RawKey, SlotLoc
from tests.unit.synth import SwissMap, type_fields


@pytest.fixture(params=[8, 4], ids=["64bit", "32bit"])
def sm(request: pytest.FixtureRequest) -> SwissMap:
    return SwissMap(load_layout("swiss", "go1.26.8", request.param, True))


def _decoder(sm: SwissMap) -> SwissDecoder:
    return SwissDecoder(sm.layout, sm.mem, decode_map_type(sm.layout, sm.mem, sm.type_desc()))


def test_small_map(sm: SwissMap) -> None:
    dec = _decoder(sm)
    group = sm.alloc(sm.group({0: (0x11, 7), 3: (0x7F, -2), 5: (0x00, 42)}))
    snap = dec.snapshot(sm.header(used=3, dir_ptr=group, dir_len=0))
    assert snap.count == 3 and snap.tables == ()
    states = {s.loc: (s.state, s.key) for s in snap.slots}
    assert states[SlotLoc(-1, 0, 0)] == (FULL, 7)
    assert states[SlotLoc(-1, 0, 3)] == (FULL, -2)
    assert states[SlotLoc(-1, 0, 5)] == (FULL, 42)  # ctrl 0x00 is full with H2 = 0, not empty
    assert states[SlotLoc(-1, 0, 1)] == (EMPTY, None)
    assert sorted(snap.live_keys()) == [-2, 7, 42]  # type: ignore[type-var]
    # one group of 136 B (8 slots of 16 B after the control word), class 11 (144)
    assert snap.memory.structural.groups == sm.group_size == 136
    assert snap.memory.groups == 144 and snap.memory.directory == 0
    assert snap.warnings == ()


def test_nil_small_map(sm: SwissMap) -> None:
    snap = _decoder(sm).snapshot(sm.header(used=0, dir_ptr=0, dir_len=0))
    assert snap.slots == () and snap.memory.groups == 0


def test_one_table_with_a_tombstone(sm: SwissMap) -> None:
    dec = _decoder(sm)
    g0 = sm.group({i: (i, 100 + i) for i in range(7)}, deleted=(7,))
    g1 = sm.group({0: (0x55, 5)})
    table = sm.table([g0, g1], used=8, growth_left=5, index=0)
    snap = dec.snapshot(sm.header(used=8, dir_ptr=sm.directory([table]), dir_len=1))
    assert [t.index for t in snap.tables] == [0]
    assert snap.tombstones == 1
    assert snap.tables[0].tombstones == 16 * 7 // 8 - 8 - 5
    assert {s.state for s in snap.slots if s.loc.group == 0} == {FULL, DELETED}
    # a table is 32 B (64-bit) or 24 B (32-bit): class sizes both
    assert snap.memory.tables == snap.memory.structural.tables == sm.layout.struct("table").size


def test_directory_with_a_shared_table_is_deduplicated(sm: SwissMap) -> None:
    dec = _decoder(sm)
    ta = sm.table([sm.group({0: (1, 1)})], used=1, growth_left=6, index=0, local_depth=1)
    tb = sm.table([sm.group({0: (2, 2)})], used=1, growth_left=6, index=2, local_depth=2)
    tc = sm.table([sm.group({0: (3, 3)})], used=1, growth_left=6, index=3, local_depth=2)
    d = sm.directory([ta, ta, tb, tc])
    snap = dec.snapshot(sm.header(used=3, dir_ptr=d, dir_len=4, depth=2))
    assert [t.index for t in snap.tables] == [0, 2, 3]
    assert sorted(snap.live_keys()) == [1, 2, 3]  # type: ignore[type-var]
    assert snap.memory.directory == snap.memory.structural.directory == 4 * sm.layout.ptr_size
    assert snap.warnings == ()


def test_inconsistent_counts_are_reported(sm: SwissMap) -> None:
    dec = _decoder(sm)
    group = sm.alloc(sm.group({0: (1, 1)}))
    snap = dec.snapshot(sm.header(used=2, dir_ptr=group, dir_len=0))
    assert snap.warnings == ("Map.used is 2 but 1 slots are full",)


def test_indirect_keys_are_followed() -> None:
    sm = SwissMap(
        load_layout("swiss", "go1.26.8", 8, True),
        key_kind=Kind.ARRAY,
        key_size=200,
        indirect_key=True,
    )
    dec = _decoder(sm)
    k = bytes(range(200))
    group = sm.alloc(sm.group({2: (9, k)}))
    snap = dec.snapshot(sm.header(used=1, dir_ptr=group, dir_len=0))
    assert snap.live_keys() == [RawKey(k)]
    # a pointer-free 200-byte key in its own allocation: class 15 (208)
    assert snap.memory.structural.indirect == 200 and snap.memory.indirect == 208


def test_string_keys() -> None:
    sm = SwissMap(load_layout("swiss", "go1.26.8", 8, True), key_kind=Kind.STRING, key_size=16)
    s1 = sm.alloc(b"h\xc3\xa9llo")
    bad = sm.alloc(b"\xff\xfe")
    dec = _decoder(sm)

    def sk(addr: int, n: int) -> bytes:
        return addr.to_bytes(8, "little") + n.to_bytes(8, "little")

    group = sm.alloc(sm.group({0: (1, sk(s1, 6)), 1: (2, sk(bad, 2)), 2: (3, sk(0, 0))}))
    snap = dec.snapshot(sm.header(used=3, dir_ptr=group, dir_len=0))
    assert snap.live_keys() == ["héllo", RawKey(b"\xff\xfe"), ""]


def test_wrong_group_size_is_refused() -> None:
    from dlvsnap.errors import LayoutError

    lay = load_layout("swiss", "go1.26.8", 8, True)
    sm = SwissMap(lay)
    sm.mem.add(
        0x100,
        lay.struct("MapType").struct.build(
            {
                "Type": dict.fromkeys(
                    (
                        "Size_",
                        "PtrBytes",
                        "Hash",
                        "TFlag",
                        "Align_",
                        "FieldAlign_",
                        "Kind_",
                        "Equal",
                        "GCData",
                        "Str",
                        "PtrToThis",
                    ),
                    0,
                ),
                "Key": 0x200,
                "Elem": 0x200,
                "Group": 0,
                "Hasher": 0,
                "GroupSize": 100,
                "SlotSize": 16,
                "ElemOff": 8,
                "Flags": 0,
            }
        ),
    )
    sm.mem.add(
        0x200,
        lay.struct("Type").struct.build(
            {
                "Size_": 8,
                "PtrBytes": 0,
                "Hash": 0,
                "TFlag": 0,
                "Align_": 8,
                "FieldAlign_": 8,
                "Kind_": 2,
                "Equal": 0,
                "GCData": 0,
                "Str": 0,
                "PtrToThis": 0,
            }
        ),
    )
    with pytest.raises(LayoutError, match="do not fit a 100-byte group"):
        decode_map_type(lay, sm.mem, 0x100)


def test_go127_split_group_layout() -> None:
    """GOEXPERIMENT=mapsplitgroup: keys [8]K then elems [8]V, placed by KeysOff/KeyStride."""
    lay = load_layout("swiss", "go1.27.3", 8, True)
    sm = SwissMap(lay)
    t = lay.struct("Type").struct

    key, elem = sm.alloc(t.build(type_fields(4, 5, 4))), sm.alloc(t.build(type_fields(1, 8, 1)))
    mt = sm.alloc(
        lay.struct("MapType").struct.build(
            {
                "Type": type_fields(8, 21),
                "Key": key,
                "Elem": elem,
                "Group": 0,
                "Hasher": 0,
                "GroupSize": 8 + 32 + 8,
                "KeysOff": 8,
                "KeyStride": 4,
                "ElemsOff": 40,
                "ElemStride": 1,
                "ElemOff": 0,
                "Flags": 0,
            }
        )
    )
    ctrl = sum(b << (8 * i) for i, b in enumerate([0x11, 0x80, 0x22, 0x80, 0x80, 0x80, 0x80, 0xFE]))
    keys = b"".join(v.to_bytes(4, "little", signed=True) for v in (-7, 0, 9, 0, 0, 0, 0, 0))
    group = sm.alloc(ctrl.to_bytes(8, "little") + keys + bytes(8))
    dec = SwissDecoder(lay, sm.mem, decode_map_type(lay, sm.mem, mt))
    snap = dec.snapshot(sm.header(used=2, dir_ptr=group, dir_len=0))
    assert snap.live_keys() == [-7, 9]
    assert [s.state for s in snap.slots][7] == DELETED


def test_max_slots_refuses_a_bigger_map_before_reading_it(sm: SwissMap) -> None:
    dec = _decoder(sm)
    table = sm.table([sm.group({0: (1, 1)}), sm.group({})], used=1, growth_left=13, index=0)
    h = sm.header(used=1, dir_ptr=sm.directory([table]), dir_len=1)
    assert len(dec.snapshot(h, max_slots=16).rows) == 2
    with pytest.raises(LayoutError, match="more slots than the snapshot may hold"):
        dec.snapshot(h, max_slots=8)


def test_memory_counts_each_allocation_once_as_the_allocator_does() -> None:
    """The README's demo map: a map[int]int of 96 entries in one table of 16 groups (Go
    1.26, 64-bit): the Map (48 B: class 48), the directory (1 pointer: class 8), the table
    (32 B: class 32) and its groups (16 x 136 = 2,176 B, pointer-free: class 39, 2,304)."""
    sm = SwissMap(load_layout("swiss", "go1.26.8", 8, True))
    dec = _decoder(sm)
    groups = [sm.group({i: (i, 8 * g + i) for i in range(6)}) for g in range(16)]
    table = sm.table(groups, used=96, growth_left=16 * 7 - 96, index=0)
    snap = dec.snapshot(sm.header(used=96, dir_ptr=sm.directory([table]), dir_len=1))
    m = snap.memory
    assert (m.header, m.directory, m.tables, m.groups) == (48, 8, 32, 2304)
    assert (m.held, m.structural_bytes, m.allocations) == (2392, 2264, 4)
    assert m.to_json()["held_bytes"] == 2392 and m.to_json()["structural_bytes"] == 2264
