"""Decode a classic map (hmap and buckets: Go <= 1.23, and 1.24-1.25 with noswissmap).

The bucket array has 2^B buckets; each heads a chain of overflow buckets (the pointer in a
bucket's last word). While the map grows, ``oldbuckets`` holds 2^(B-1) buckets (2^B for a
same-size grow) whose not yet evacuated entries are live and are not in the new array.
Preallocated overflow buckets after the 2^B main ones are only walked through chains: the
last one's overflow word points back at the array as an end marker, never at a bucket.
"""

from __future__ import annotations

from dlvsnap.decode.base import BaseDecoder
from dlvsnap.errors import LayoutError
from dlvsnap.layouts import Layout
from dlvsnap.memory import MemoryReader
from dlvsnap.model import (
    EMPTY_ONE,
    EMPTY_REST,
    EVACUATED_EMPTY,
    EVACUATED_X,
    EVACUATED_Y,
    FULL,
    MapSnapshot,
    MapType,
    Memory,
    Slot,
    SlotLoc,
)

MAX_B = 40
MAX_CHAIN = 1 << 16  # longer overflow chains mean a cycle or garbage


def tophash_state(b: int, layout: Layout) -> str:
    if b >= layout.const("min_top_hash"):
        return FULL
    return {
        layout.const("empty_rest"): EMPTY_REST,
        layout.const("empty_one"): EMPTY_ONE,
        layout.const("evacuated_x"): EVACUATED_X,
        layout.const("evacuated_y"): EVACUATED_Y,
        layout.const("evacuated_empty"): EVACUATED_EMPTY,
    }[b]


class ClassicDecoder(BaseDecoder):
    family = "classic"

    def __init__(self, layout: Layout, mem: MemoryReader, map_type: MapType) -> None:
        super().__init__(layout, mem, map_type)
        self.nslots = layout.const("bucket_slots")
        self.bsize = map_type.group_size

    def byte_state(self, b: int) -> str:
        return tophash_state(b, self.layout)

    def snapshot(self, addr: int) -> MapSnapshot:
        lay = self.layout
        hs = lay.struct("hmap")
        h = hs.parse(self.mem.read(addr, hs.size))
        b = int(h["B"])
        if b > MAX_B:
            raise LayoutError(f"map at {addr:#x}: B = {b}: not an hmap under layout {lay.name}")
        slots: list[Slot] = []
        arrays: list[tuple[int, int]] = []  # (start, end) of bucket arrays, for accounting
        chained: list[int] = []  # overflow buckets reached through chains
        depths: list[int] = []  # overflow buckets per chain, array after array
        nb = 1 << b
        bucket_bytes = old_bytes = 0
        if h["buckets"]:
            bucket_bytes = (nb + _prealloc(b)) * self.bsize
            arrays.append((h["buckets"], h["buckets"] + bucket_bytes))
            slots += self._array(h["buckets"], nb, False, chained, depths)
        if h["oldbuckets"]:
            same_size = bool(h["flags"] & lay.const("flag_same_size_grow"))
            old_b = b if same_size else b - 1
            nold = 1 << old_b
            old_bytes = (nold + _prealloc(old_b)) * self.bsize
            arrays.append((h["oldbuckets"], h["oldbuckets"] + old_bytes))
            slots += self._array(h["oldbuckets"], nold, True, chained, depths)
        outside = [a for a in chained if not any(s <= a < e for s, e in arrays)]
        count = int(h["count"])
        full = sum(1 for s in slots if s.state == FULL)
        warnings = [] if full == count else [f"hmap.count is {count} but {full} slots are full"]
        mt = self.mt
        extra = lay.struct("mapextra").size if h["extra"] else 0
        memory = Memory(
            header=hs.size + extra,
            directory=0,
            tables=0,
            groups=bucket_bytes,
            indirect=count * mt.indirect_bytes,
            live_entries=count,
            entry_bytes=mt.entry_bytes,
            overflow=len(outside) * self.bsize,
            old=old_bytes,
        )
        return MapSnapshot(
            impl="classic",
            layout=lay.name,
            addr=addr,
            header=h,
            count=count,
            map_type=mt,
            tables=(),
            slots=tuple(slots),
            memory=memory,
            warnings=tuple(warnings),
            shape=("classic", h["buckets"] != 0, nb, h["oldbuckets"] != 0, tuple(depths)),
        )

    def _array(
        self, start: int, n: int, old: bool, chained: list[int], depths: list[int]
    ) -> list[Slot]:
        raw = self.mem.read(start, n * self.bsize)
        out: list[Slot] = []
        for i in range(n):
            before = len(chained)
            out += self._chain(raw[i * self.bsize : (i + 1) * self.bsize], i, old, chained)
            depths.append(len(chained) - before)
        return out

    def _chain(self, raw: bytes, bucket: int, old: bool, chained: list[int]) -> list[Slot]:
        p = self.layout.ptr_size
        out: list[Slot] = []
        seen: set[int] = set()
        depth = 0
        while True:
            out += self._bucket_slots(raw, bucket, depth, old)
            ovf = int.from_bytes(raw[self.bsize - p : self.bsize], self.layout.order)
            if ovf == 0:
                return out
            if ovf in seen or depth >= MAX_CHAIN:
                raise LayoutError(f"bucket {bucket}: overflow chain loops at {ovf:#x}")
            seen.add(ovf)
            chained.append(ovf)
            depth += 1
            raw = self.mem.read(ovf, self.bsize)

    def _bucket_slots(self, raw: bytes, bucket: int, depth: int, old: bool) -> list[Slot]:
        out: list[Slot] = []
        for i in range(self.nslots):
            top = raw[i]
            state = self.states[top]
            key = self.slot_key(raw, i) if state == FULL else None
            loc = SlotLoc(-1, bucket, i, overflow=depth, old=old, classic=True)
            out.append(Slot(loc, top, state, key))
        return out


def _prealloc(b: int) -> int:
    """Overflow buckets makeBucketArray allocates after the 2^b main ones (before rounding
    the allocation up to its size class, which dlvsnap does not model)."""
    return 1 << (b - 4) if b >= 4 else 0
