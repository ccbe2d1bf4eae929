"""The classic decoder on synthetic hmaps: bucket arrays, overflow chains, growth with
oldbuckets and evacuated states, indirect keys, 32-bit pointers."""

from __future__ import annotations

import pytest

from dlvsnap.decode import ClassicDecoder, decode_map_type
from dlvsnap.diff import diff
from dlvsnap.errors import LayoutError
from dlvsnap.kinds import Kind
from dlvsnap.layouts import Layout, load_layout
from dlvsnap.memory import SparseMem
from dlvsnap.model import EMPTY_ONE, EMPTY_REST, EVACUATED_X, FULL, UNLINKED, RawKey, SlotLoc
from tests.unit.synth import type_fields


class ClassicMap:
    """Builds hmaps and buckets with the layout's own construct structs."""

    def __init__(
        self,
        layout: Layout,
        key_size: int = 8,
        elem_size: int = 8,
        indirect_key: bool = False,
        key_pointers: bool = False,
    ) -> None:
        self.lay = layout
        self.key_pointers = key_pointers
        self.p = layout.ptr_size
        self.key_size = key_size
        self.ks = self.p if indirect_key else key_size
        self.vs = elem_size
        self.bsize = 8 + 8 * self.ks + 8 * self.vs + self.p
        self.indirect_key = indirect_key
        self.mem = SparseMem()
        self.next = 0x10000

    def alloc(self, data: bytes) -> int:
        addr = self.next
        self.mem.add(addr, data)
        self.next += (len(data) + 0xFFF) // 0x1000 * 0x1000 + 0x1000
        return addr

    def type_desc(self) -> int:
        t = self.lay.struct("Type").struct

        kt = type_fields(self.key_size, Kind.INT64 if self.key_size == 8 else Kind.ARRAY)
        if self.key_pointers:
            kt.update(PtrBytes=self.p, Kind_=Kind.POINTER)
        key = self.alloc(t.build(kt))
        elem = self.alloc(t.build(type_fields(self.vs, Kind.INT64)))
        return self.alloc(
            self.lay.struct("MapType").struct.build(
                {
                    "Type": type_fields(self.p, 21),
                    "Key": key,
                    "Elem": elem,
                    "Bucket": 0,
                    "Hasher": 0,
                    "KeySize": self.ks,
                    "ValueSize": self.vs,
                    "BucketSize": self.bsize,
                    "Flags": 1 if self.indirect_key else 0,
                }
            )
        )

    def bucket(
        self,
        slots: dict[int, tuple[int, int | bytes]],
        tophash: dict[int, int] | None = None,
        overflow: int = 0,
    ) -> bytes:
        """slots: index -> (tophash, key); other tophash bytes from ``tophash`` (default 0)."""
        top = bytearray(8)
        keys = bytearray(8 * self.ks)
        for i, b in (tophash or {}).items():
            top[i] = b
        for i, (b, key) in slots.items():
            top[i] = b
            raw = (
                key
                if isinstance(key, bytes)
                else key.to_bytes(self.key_size, "little", signed=True)
            )
            if self.indirect_key:
                raw = self.alloc(raw).to_bytes(self.p, "little")
            keys[i * self.ks : (i + 1) * self.ks] = raw
        return bytes(top) + bytes(keys) + bytes(8 * self.vs) + overflow.to_bytes(self.p, "little")

    def hmap(
        self,
        count: int,
        b: int,
        buckets: int,
        *,
        oldbuckets: int = 0,
        flags: int = 0,
        hash0: int = 7,
        extra: int = 0,
    ) -> int:
        fields = {
            "count": count,
            "flags": flags,
            "B": b,
            "noverflow": 0,
            "hash0": hash0,
            "buckets": buckets,
            "oldbuckets": oldbuckets,
            "nevacuate": 0,
            "extra": extra,
        }
        if "clearSeq" in {f.name for f in self.lay.struct("hmap").fields}:
            fields["clearSeq"] = 0
        return self.alloc(self.lay.struct("hmap").struct.build(fields))


@pytest.fixture(
    params=[("go1.22.10", 8), ("go1.22.10", 4), ("go1.19.8", 8), ("go1.25.5", 8)],
    ids=["1.22-64bit", "1.22-32bit", "1.19", "1.25-noswissmap"],
)
def cm(request: pytest.FixtureRequest) -> ClassicMap:
    version, ptr = request.param
    return ClassicMap(load_layout("classic", version, ptr, True))


def _decoder(cm: ClassicMap) -> ClassicDecoder:
    return ClassicDecoder(cm.lay, cm.mem, decode_map_type(cm.lay, cm.mem, cm.type_desc()))


def test_buckets_and_overflow_chain(cm: ClassicMap) -> None:
    dec = _decoder(cm)
    ovf = cm.alloc(cm.bucket({0: (0x90, 9)}))
    b0 = cm.bucket({i: (0x10 + i, i) for i in range(8)}, overflow=ovf)
    b1 = cm.bucket({2: (0xAA, 42)}, tophash={0: 1, 1: 1})
    arr = cm.alloc(b0 + b1)
    snap = dec.snapshot(cm.hmap(count=10, b=1, buckets=arr))
    assert snap.impl == "classic" and snap.warnings == ()
    by = {s.loc: s for s in snap.slots}
    assert by[SlotLoc(-1, 0, 0, overflow=1, classic=True)].key == 9
    assert by[SlotLoc(-1, 1, 2, classic=True)].key == 42
    assert by[SlotLoc(-1, 1, 0, classic=True)].state == EMPTY_ONE
    assert by[SlotLoc(-1, 1, 3, classic=True)].state == EMPTY_REST
    assert sorted(snap.live_keys()) == [0, 1, 2, 3, 4, 5, 6, 7, 9, 42]  # type: ignore[type-var]
    # the overflow bucket lies outside the array: a bucket of 144 (64-bit) or 140 (32-bit)
    # bytes, allocated alone (newobject) in class 11 (144)
    assert snap.memory.structural.overflow == cm.bsize and snap.memory.overflow == 144
    assert str(SlotLoc(-1, 0, 0, overflow=1, classic=True)) == "b0+1/s0"


def test_growing_map_reads_oldbuckets(cm: ClassicMap) -> None:
    dec = _decoder(cm)
    # B=1 now, oldbuckets has 1 bucket: slot 0 evacuated to X, slot 1 still live.
    new = cm.alloc(cm.bucket({0: (0x33, 5)}) + cm.bucket({}))
    old = cm.alloc(cm.bucket({1: (0x44, 6)}, tophash={0: 2}))
    snap = dec.snapshot(cm.hmap(count=2, b=1, buckets=new, oldbuckets=old))
    by = {s.loc: s for s in snap.slots}
    assert by[SlotLoc(-1, 0, 0, old=True, classic=True)].state == EVACUATED_X
    assert by[SlotLoc(-1, 0, 1, old=True, classic=True)].key == 6
    assert sorted(snap.live_keys()) == [5, 6]  # type: ignore[type-var]
    assert snap.memory.structural.old == cm.bsize and snap.memory.old == 144
    assert snap.warnings == ()


def test_finished_grow_unlinks_the_old_slots(cm: ClassicMap) -> None:
    dec = _decoder(cm)
    new = cm.alloc(cm.bucket({0: (0x33, 5)}) + cm.bucket({}))
    old = cm.alloc(cm.bucket({}, tophash={0: 2}))
    before = dec.snapshot(cm.hmap(count=1, b=1, buckets=new, oldbuckets=old))
    after = dec.snapshot(cm.hmap(count=1, b=1, buckets=new))
    d = diff(before, after)
    assert {c.after_state for c in d.changes} == {UNLINKED}
    assert len(d.changes) == 8 and all(c.loc.old for c in d.changes)


def test_indirect_keys() -> None:
    cm = ClassicMap(load_layout("classic", "go1.22.10", 8, True), key_size=200, indirect_key=True)
    dec = _decoder(cm)
    k = bytes(range(200))
    arr = cm.alloc(cm.bucket({3: (0x77, k)}))
    snap = dec.snapshot(cm.hmap(count=1, b=0, buckets=arr))
    assert snap.live_keys() == [RawKey(k)]
    # a pointer-free 200-byte key in its own allocation: class 15 (208)
    assert snap.memory.structural.indirect == 200 and snap.memory.indirect == 208


def test_emptyrest_cascade_is_a_transition(cm: ClassicMap) -> None:
    dec = _decoder(cm)
    ovf_before = cm.alloc(cm.bucket({0: (0x90, 9)}))
    arr = cm.alloc(cm.bucket({}, tophash=dict.fromkeys(range(8), 1), overflow=ovf_before))
    before = dec.snapshot(cm.hmap(count=1, b=0, buckets=arr))
    cm.mem.add(ovf_before, cm.bucket({}))  # slot 0 of the overflow: emptyRest
    cm.mem.add(arr, cm.bucket({}, overflow=ovf_before))  # the whole main bucket: emptyRest
    after = dec.snapshot(cm.hmap(count=0, b=0, buckets=arr, hash0=8))
    d = diff(before, after)
    assert [(str(c.loc), c.before_state, c.after_state) for c in d.changes][:2] == [
        ("b0/s0", EMPTY_ONE, EMPTY_REST),
        ("b0/s1", EMPTY_ONE, EMPTY_REST),
    ]
    assert (str(d.changes[-1].loc), d.changes[-1].before_state) == ("b0+1/s0", FULL)
    assert d.reseeded


def test_preallocated_overflow_buckets_are_reached_only_through_chains(cm: ClassicMap) -> None:
    """B=4: 16 buckets, then 2^(4-4) = 1 preallocated overflow bucket whose overflow word
    points back at the array (makeBucketArray's end marker). Bucket 3's chain uses it."""
    dec = _decoder(cm)
    n = 16
    base = cm.next  # where alloc() will place the array
    prealloc_addr = base + n * cm.bsize
    buckets = [cm.bucket({}) for _ in range(n)]
    buckets[3] = cm.bucket({0: (0x55, 1)}, overflow=prealloc_addr)
    handed_out = cm.bucket({0: (0x66, 2)})  # newoverflow set its overflow word to nil
    arr = cm.alloc(b"".join(buckets) + handed_out)
    assert arr == base
    snap = dec.snapshot(cm.hmap(count=2, b=4, buckets=arr))
    assert sorted(snap.live_keys()) == [1, 2]  # type: ignore[type-var]
    # makeBucketArray: 17 buckets of 144 B (64-bit) = 2,448 B, or of 140 B (32-bit) =
    # 2,380 B, both in class 40 (2,688 B), which holds 18 (or 19) buckets: it allocates
    # that many, the last ones overflow buckets too
    buckets = 18 if cm.bsize == 144 else 19
    assert snap.memory.structural.groups == buckets * cm.bsize
    assert snap.memory.groups == 2688 and snap.memory.overflow == 0
    assert all(s.loc.group < n for s in snap.slots)
    # an unused preallocated bucket with the end marker is never walked into
    sentinel = cm.bucket({}, overflow=arr)
    cm.mem.add(arr, b"".join(cm.bucket({}) for _ in range(n)) + sentinel)
    snap = dec.snapshot(cm.hmap(count=0, b=4, buckets=arr))
    assert len(snap.slots) == n * 8 and snap.live_keys() == []


def test_growing_at_b0_is_not_an_hmap(cm: ClassicMap) -> None:
    """oldbuckets set at B = 0 would be a grow from B = -1 (a negative shift before): a
    LayoutError, unless the grow keeps the size (sameSizeGrow: old B = B)."""
    dec = _decoder(cm)
    arr = cm.alloc(cm.bucket({0: (0x90, 9)}))
    old = cm.alloc(cm.bucket({}))
    with pytest.raises(LayoutError, match=r"growing \(oldbuckets set\) at B = 0: not an hmap"):
        dec.snapshot(cm.hmap(count=1, b=0, buckets=arr, oldbuckets=old))
    same_size = cm.lay.const("flag_same_size_grow")
    snap = dec.snapshot(cm.hmap(count=1, b=0, buckets=arr, oldbuckets=old, flags=same_size))
    assert len(snap.rows) == 2


def test_max_slots_refuses_a_bigger_map_before_reading_it(cm: ClassicMap) -> None:
    """A saved file's decode may not produce more slots than the file lists: B = 30 (a
    billion buckets) is refused before any bucket is read, an overflow level past the
    limit before that level is read."""
    dec = _decoder(cm)
    ovf = cm.alloc(cm.bucket({0: (0x90, 9)}))
    arr = cm.alloc(cm.bucket({0: (0x91, 1)}, overflow=ovf) + cm.bucket({}))
    assert len(dec.snapshot(cm.hmap(count=2, b=1, buckets=arr), max_slots=24).rows) == 3
    with pytest.raises(LayoutError, match="more slots than the snapshot may hold"):
        dec.snapshot(cm.hmap(count=2, b=1, buckets=arr), max_slots=16)
    with pytest.raises(LayoutError, match="more slots than the snapshot may hold"):
        dec.snapshot(cm.hmap(count=2, b=30, buckets=arr), max_slots=1 << 20)


def test_memory_counts_each_allocation_once_as_the_allocator_does() -> None:
    """A pointer-free map[int64]int64 (Go 1.22, 64-bit) whose mapextra's overflow slice
    keeps its one overflow bucket alive: the hmap (48 B: class 5, 48), the mapextra (24 B:
    class 3, 24), the slice's header (new([]*bmap): 24 B, class 3) and its array (append
    from nil: cap 1, 8 B with pointers, class 1: 8), the array of 2 buckets (288 B: class
    19, 288) and the overflow bucket (144 B: class 11, 144). All are class sizes already."""
    cm = ClassicMap(load_layout("classic", "go1.22.10", 8, True))
    dec = _decoder(cm)
    ovf = cm.alloc(cm.bucket({0: (0x90, 9)}))
    arr = cm.alloc(cm.bucket({i: (0x10 + i, i) for i in range(8)}, overflow=ovf) + cm.bucket({}))
    array = cm.alloc(ovf.to_bytes(8, "little"))
    header = cm.alloc(array.to_bytes(8, "little") + (1).to_bytes(8, "little") * 2)
    extra = cm.alloc(
        cm.lay.struct("mapextra").struct.build(
            {"overflow": header, "oldoverflow": 0, "nextOverflow": 0}
        )
    )
    snap = dec.snapshot(cm.hmap(count=9, b=1, buckets=arr, extra=extra))
    m = snap.memory
    assert (m.header, m.groups, m.overflow) == (48 + 24 + 24 + 8, 288, 144)
    assert m.held == m.structural_bytes == 536 and m.allocations == 6
    assert snap.warnings == ()
    assert m.to_json()["structural_bytes"] == 536 and m.to_json()["allocations"] == 6


@pytest.mark.parametrize(("version", "held"), [("go1.19.8", 576), ("go1.22.10", 640)])
def test_a_bucket_array_with_pointers_has_a_malloc_header_from_go1_22(
    version: str, held: int
) -> None:
    """map[*T]int64 at B=2: 4 buckets of 144 B, 576 B with pointers. Go 1.19: class 27
    (576). Go 1.22: over minSizeForMallocHeader (512 on 64-bit), so 576 + 8 = 584: class
    28 (640)."""
    cm = ClassicMap(load_layout("classic", version, 8, True), key_pointers=True)
    dec = _decoder(cm)
    arr = cm.alloc(b"".join(cm.bucket({}) for _ in range(4)))
    m = dec.snapshot(cm.hmap(count=0, b=2, buckets=arr)).memory
    assert m.structural is not None
    assert (m.groups, m.structural.groups) == (held, 576)


def test_a_mapextra_that_cannot_be_read_is_a_warning() -> None:
    """A snapshot file saved before dlvsnap read mapextra has no bytes of it: the map still
    decodes, its overflow slices uncounted, and says so."""
    cm = ClassicMap(load_layout("classic", "go1.22.10", 8, True))
    arr = cm.alloc(cm.bucket({}))
    snap = _decoder(cm).snapshot(cm.hmap(count=0, b=0, buckets=arr, extra=0x7000_0000))
    assert len(snap.warnings) == 1
    assert snap.warnings[0].startswith("mapextra at 0x70000000 not read (")
    assert snap.warnings[0].endswith("): its overflow slices are not counted")
    assert snap.memory.header == 48 + 24  # the hmap and the mapextra itself
