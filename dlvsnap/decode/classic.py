"""Decode a classic map (hmap and buckets: Go <= 1.23, and 1.24-1.25 with noswissmap).

The bucket array has 2^B buckets; each heads a chain of overflow buckets (the pointer in a
bucket's last word). While the map grows, ``oldbuckets`` holds 2^(B-1) buckets (2^B for a
same-size grow) whose not yet evacuated entries are live and are not in the new array.
Preallocated overflow buckets after the 2^B main ones are only walked through chains: the
last one's overflow word points back at the array as an end marker, never at a bucket.

``snapshot`` reads every bucket (chains level by level, each level in one ``read_many``).
``probe`` reads the one chain a delete of a key can touch, when the map is not growing and
its bucket arrays and overflow count are those of ``known`` (else the watch takes a whole
snapshot): a delete writes only its own chain's tophashes (emptyOne, emptyRest back to the
chain's head) and the header.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dlvsnap.decode.base import BaseDecoder, SmallMaps
from dlvsnap.errors import LayoutError, MemoryReadError
from dlvsnap.layouts import Layout
from dlvsnap.memory import MemoryReader, SparseMem
from dlvsnap.model import (
    EMPTY_ONE,
    EMPTY_REST,
    EVACUATED_EMPTY,
    EVACUATED_X,
    EVACUATED_Y,
    FULL,
    MAX_OVERFLOW,
    SEED_FIELD,
    KeyValue,
    MapSnapshot,
    MapType,
    Memory,
    Rows,
    TypeCatalog,
    TypeSizes,
)

MAX_B = 40
# An overflow slice holds a pointer to each overflow bucket made since the last grow:
# fewer than the buckets of a bucket array of 2^MAX_B.
MAX_OVERFLOW_SLICE = 1 << MAX_B


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

    def __init__(
        self,
        layout: Layout,
        mem: MemoryReader,
        map_type: MapType,
        types: TypeCatalog | None = None,
    ) -> None:
        super().__init__(layout, mem, map_type, types)
        self.nslots = layout.const("bucket_slots")
        self.bsize = map_type.group_size
        self.min_top = layout.const("min_top_hash")
        self.ptr_t = layout.ptr_dtype

    def byte_state(self, b: int) -> str:
        return tophash_state(b, self.layout)

    def header(self, addr: int) -> dict[str, Any]:
        hs = self.layout.struct("hmap")
        h = hs.parse(self.mem.read(addr, hs.size))
        if int(h["B"]) > MAX_B:
            raise LayoutError(
                f"map at {addr:#x}: B = {h['B']}: not an hmap under layout {self.layout.name}"
            )
        return h

    def small_maps(self, addrs: NDArray[np.uint64]) -> SmallMaps:
        """Many maps of this type at once, for a census: the hmaps in one bulk read, then
        the bucket arrays of the small ones (B < 4: no preallocated overflow buckets), one
        bulk read per B; the figures ``snapshot`` would give for each small map that is
        not growing, has no mapextra nor overflow bucket, and whose tophash bytes agree
        with its count (``ok``). The others need ``snapshot``. A MemoryReadError when any
        of them cannot be read."""
        lay, n = self.layout, len(addrs)
        hs = lay.struct("hmap")
        h = np.frombuffer(self.mem.read_each(addrs, hs.size), dtype=hs.dtype)
        count = h["count"].astype(np.int64)
        b = h["B"].astype(np.int64)
        buckets = h["buckets"].astype(np.uint64)
        simple = (h["oldbuckets"] == 0) & (h["extra"] == 0) & (h["noverflow"] == 0) & (b < 4)
        ok = simple & (buckets == 0) & (count == 0)
        full = np.zeros(n, dtype=np.int64)
        ones = np.zeros(n, dtype=np.int64)
        for bb in np.unique(b[simple & (buckets != 0)]).tolist():
            idx = np.flatnonzero(simple & (buckets != 0) & (b == bb))
            nb = 1 << bb
            raw = self.mem.read_each(buckets[idx], nb * self.bsize)
            level = np.frombuffer(raw, dtype=np.uint8).reshape(len(idx) * nb, self.bsize)
            chained = (self._next(level) != 0).reshape(len(idx), nb).any(axis=1)
            top = level[:, : self.nslots].reshape(len(idx), nb * self.nslots)
            full[idx] = np.count_nonzero(top >= self.min_top, axis=1)
            ones[idx] = np.count_nonzero(top == lay.const("empty_one"), axis=1)
            ok[idx] = ~chained & (full[idx] == count[idx])
        memory: list[Memory | None] = []
        held: dict[tuple[int, int], Memory] = {}
        for good, bb, has, c in zip(
            ok.tolist(), b.tolist(), (buckets != 0).tolist(), count.tolist(), strict=True
        ):
            if not good:
                memory.append(None)
                continue
            key = (bb if has else -1, c)
            if key not in held:
                held[key] = self._memory(
                    {"extra": 0, "count": c}, (1 << bb) if has else 0, 0, 0, []
                )
            memory.append(held[key])
        return SmallMaps(
            ok=ok,
            used=count,
            slots=np.where(buckets != 0, (1 << b) * self.nslots, 0),
            tombstones=ones,
            memory=memory,
        )

    # -- snapshots ---------------------------------------------------------------------------
    def snapshot(self, addr: int, *, max_slots: int | None = None) -> MapSnapshot:
        """Every bucket of the map; ``max_slots`` (a saved file's own slot count): refuse a
        map of more slots before reading them."""
        h = self.header(addr)
        lay = self.layout
        b = int(h["B"])
        nb = 1 << b
        old_b = -1
        if h["oldbuckets"]:
            same_size = bool(h["flags"] & lay.const("flag_same_size_grow"))
            old_b = b if same_size else b - 1
            if old_b < 0:  # hashGrow doubles from B-1 >= 0: a growing hmap has B >= 1
                raise LayoutError(
                    f"map at {addr:#x}: growing (oldbuckets set) at B = 0: not an hmap "
                    f"under layout {self.layout.name}"
                )
        budget = _Budget(max_slots, self.nslots, addr)
        parts: list[Rows] = []
        arrays: list[tuple[int, int]] = []  # (start, end) of bucket arrays, for accounting
        chained: list[NDArray[np.uint64]] = []  # overflow buckets reached through chains
        depths: list[NDArray[np.int64]] = []
        n_new = n_old = 0  # buckets each array holds (preallocated overflow ones included)
        if h["buckets"]:
            n_new = self._array_len(b)
            arrays.append((h["buckets"], h["buckets"] + n_new * self.bsize))
            budget.take(nb)
            parts.append(self._array(h["buckets"], nb, False, chained, depths, budget=budget))
        if h["oldbuckets"]:
            nold = 1 << old_b
            n_old = self._array_len(old_b)
            arrays.append((h["oldbuckets"], h["oldbuckets"] + n_old * self.bsize))
            budget.take(nold)
            parts.append(self._array(h["oldbuckets"], nold, True, chained, depths, budget=budget))
        rows = Rows.concat(parts, classic=True)
        order = np.argsort(rows.row_keys(), kind="stable")
        rows = rows.take(order)
        ovf = np.concatenate(chained) if chained else np.zeros(0, dtype=np.uint64)
        inside = np.zeros(len(ovf), dtype=np.bool_)
        for s, e in arrays:
            inside |= (ovf >= s) & (ovf < e)
        outside = int(np.count_nonzero(~inside))
        count = int(h["count"])
        full = int(np.count_nonzero(rows.ctrl >= self.min_top))
        warnings = [] if full == count else [f"hmap.count is {count} but {full} slots are full"]
        memory = self._memory(h, n_new, outside, n_old, warnings)
        shape = (
            "classic",
            *_structure(h),
            tuple(np.concatenate(depths).tolist()) if depths else (),
        )
        return self._make(addr, h, rows, memory, warnings=warnings, shape=shape, partial=False)

    def probe(
        self,
        addr: int,
        key: KeyValue,
        hash_of: Callable[[int], int],
        known: MapSnapshot,
        *,
        insert: bool = False,
    ) -> tuple[MapSnapshot, bool] | None:
        """The chain of ``key``'s bucket (``hash_of(seed)`` is its hash), if the map is not
        growing and its structure is that of ``known`` (whose memory figures it keeps). An
        insert of a new key writes that chain too, unless it may start a grow or need an
        overflow bucket: then None (read the whole map), judged conservatively (a load of 6
        per bucket, 1.21's, is below every release's; the overflow threshold is
        tooManyOverflowBuckets')."""
        h = self.header(addr)
        if not _probeable(h, known):
            return None
        hash_ = hash_of(int(h[SEED_FIELD[self.family]]))
        bucket = hash_ & ((1 << int(h["B"])) - 1)
        top = self._top(hash_)
        rows = self._chain_rows(int(h["buckets"]) + bucket * self.bsize, bucket)
        hits = np.flatnonzero(rows.ctrl == top)
        found = any(rows.key(int(p)) == key for p in hits)
        if insert and not found:
            b = int(h["B"])
            if (
                int(h["count"]) + 1 > 6 << b
                or int(h["noverflow"]) >= 1 << min(b, 15)
                or not np.any(rows.ctrl < self.min_top)  # no free slot: a new overflow bucket
            ):
                return None
        warnings: list[str] = []
        memory = self._partial_memory(h, known.memory, warnings)
        snap = self._make(addr, h, rows, memory, shape=known.shape, partial=True, warnings=warnings)
        return snap, found

    def reread(self, addr: int, prior: MapSnapshot, *, structural: bool = False) -> MapSnapshot:
        """The chain of ``prior`` read again (the whole map if the structure changed: the
        header tells, so ``structural`` needs nothing more here)."""
        h = self.header(addr)
        if not prior.partial or not _probeable(h, prior):
            return self.snapshot(addr)
        bucket = int(prior.rows.index[0])
        rows = self._chain_rows(int(h["buckets"]) + bucket * self.bsize, bucket)
        warnings: list[str] = []
        memory = self._partial_memory(h, prior.memory, warnings)
        return self._make(addr, h, rows, memory, shape=prior.shape, partial=True, warnings=warnings)

    def _partial_memory(self, h: dict[str, Any], known: Memory, warnings: list[str]) -> Memory:
        """A partial snapshot's memory: the buckets as ``known`` counted them (its
        structure is known's), the header's allocations read again: mapextra's overflow
        slices come and go without a write of the map (mapiterinit creates them for
        pointer-free buckets: a range over the map)."""
        s = known.structural
        if s is None:
            return known
        b = self.bsize
        return self._memory(h, s.groups // b, s.overflow // b, s.old // b, warnings)

    def _add_extra(self, out: SparseMem, h: dict[str, Any]) -> None:
        """Add to ``out`` what ``_memory`` reads of the header's mapextra (pointer-free
        buckets only): the mapextra, and each overflow slice's header (its cap gives the
        sizes), each read once."""
        extra = int(h["extra"])
        if not extra or self.mt.group_pointers:
            return
        ex = self.layout.struct("mapextra")
        p = self.layout.ptr_size
        try:
            raw = self.mem.read(extra, ex.size)
            out.add(extra, raw)
            fields = ex.parse(raw)
            for at in (int(fields[n]) for n in ("overflow", "oldoverflow")):
                if at:
                    out.add(at, self.mem.read(at, 3 * p))
        except MemoryReadError:
            return  # _memory says so

    def recapture(self, addr: int, prior: MapSnapshot) -> SparseMem | None:
        """Every byte ``reread`` reads after a delete, read raw (the header and the chain),
        so that it can run on them later, while the program runs; None when it would read
        the whole map instead, or the chain's links changed (a delete changes none)."""
        if not prior.partial:
            return None
        hs = self.layout.struct("hmap")
        chain = prior.rows.addr.tolist()
        regions = [(addr, hs.size), *((a, self.bsize) for a in chain)]
        raw = self.mem.read_many(regions)
        h = hs.parse(raw)
        if not _probeable(h, prior):
            return None
        level = np.frombuffer(raw, dtype=np.uint8, offset=hs.size)[: len(chain) * self.bsize]
        if self._next(level.reshape(len(chain), -1)).tolist() != [*chain[1:], 0]:
            return None
        out = SparseMem.of(regions, raw)
        self._add_extra(out, h)
        return out

    def capture(
        self, addr: int, hash_of: Callable[[int], int], known: MapSnapshot
    ) -> SparseMem | None:
        """Every byte ``probe`` reads for a delete, read raw: the header and the key's bucket
        chain; None when ``probe`` would not probe (a growing map, another structure)."""
        hs = self.layout.struct("hmap")
        raw_hdr = self.mem.read(addr, hs.size)
        h = hs.parse(raw_hdr)
        if not _probeable(h, known):
            return None
        out = SparseMem({addr: raw_hdr})
        self._add_extra(out, h)
        bucket = hash_of(int(h[SEED_FIELD[self.family]])) & ((1 << int(h["B"])) - 1)
        at, depth = int(h["buckets"]) + bucket * self.bsize, 0
        p = self.layout.ptr_size
        while at and depth <= MAX_OVERFLOW:
            raw = self.mem.read(at, self.bsize)
            out.add(at, raw)
            at = int.from_bytes(raw[self.bsize - p :], self.layout.order)
            depth += 1
        return out

    def _top(self, hash_: int) -> int:
        """The tophash byte of a hash (runtime tophash: the top byte, moved past the
        reserved states)."""
        top = hash_ >> (8 * self.layout.ptr_size - 8)
        return top + self.min_top if top < self.min_top else top

    def placed(self, snap: MapSnapshot, pos: int, hash_: int) -> bool:
        """Whether ``hash_`` is the hash of the key in slot ``pos`` of a whole snapshot, as
        far as its place tells: its tophash, and its bucket unless the map is growing
        (then which array holds it depends on evacuation)."""
        rows = snap.rows
        r = pos // rows.slots_per_row
        if int(rows.ctrl[pos]) != self._top(hash_):
            return False
        if rows.old[r] or snap.header["oldbuckets"]:
            return True
        return int(rows.index[r]) == hash_ & ((1 << int(snap.header["B"])) - 1)

    # -- reading -------------------------------------------------------------------------------
    def _array(
        self,
        start: int,
        n: int,
        old: bool,
        chained: list[NDArray[np.uint64]],
        depths: list[NDArray[np.int64]],
        *,
        budget: _Budget,
    ) -> Rows:
        """A bucket array and its chains, level by level."""
        raw = np.frombuffer(self.mem.read(start, n * self.bsize), dtype=np.uint8)
        level = raw.reshape(n, self.bsize)
        bucket = np.arange(n, dtype=np.int64)
        addr = np.uint64(start) + np.arange(n, dtype=np.uint64) * np.uint64(self.bsize)
        parts = [self._rows(level, bucket, 0, old, addr)]
        depth = np.zeros(n, dtype=np.int64)
        seen: set[int] = set()
        for d in range(1, MAX_OVERFLOW + 1):
            nxt = self._next(level)
            live = np.flatnonzero(nxt)
            if len(live) == 0:
                break
            bucket, nxt = bucket[live], nxt[live]
            for b, a in zip(bucket.tolist(), nxt.tolist(), strict=True):
                if a in seen:
                    raise LayoutError(f"bucket {b}: overflow chain loops at {a:#x}")
                seen.add(a)
            budget.take(len(nxt))
            chained.append(nxt)
            depth[bucket] = d
            raw = np.frombuffer(self.mem.read_each(nxt, self.bsize), dtype=np.uint8)
            level = raw.reshape(-1, self.bsize)
            parts.append(self._rows(level, bucket, d, old, nxt))
        else:
            raise LayoutError("an overflow chain is longer than dlvsnap follows")
        depths.append(depth)
        return Rows.concat(parts, classic=True)

    def _chain_rows(self, first: int, bucket: int) -> Rows:
        parts: list[Rows] = []
        addr, depth = first, 0
        while addr:
            raw = np.frombuffer(self.mem.read(addr, self.bsize), dtype=np.uint8).reshape(1, -1)
            parts.append(
                self._rows(raw, np.array([bucket]), depth, False, np.array([addr], np.uint64))
            )
            addr = int(self._next(raw)[0])
            depth += 1
            if depth > MAX_OVERFLOW:
                raise LayoutError(f"bucket {bucket}: overflow chain loops at {addr:#x}")
        return Rows.concat(parts, classic=True)

    def _next(self, level: NDArray[np.uint8]) -> NDArray[np.uint64]:
        p = self.layout.ptr_size
        word = np.ascontiguousarray(level[:, self.bsize - p :])
        return word.view(self.ptr_t).reshape(-1).astype(np.uint64)

    def _rows(
        self,
        level: NDArray[np.uint8],
        bucket: NDArray[np.int64],
        depth: int,
        old: bool,
        addr: NDArray[np.uint64],
    ) -> Rows:
        n = level.shape[0]
        ctrl = np.ascontiguousarray(level[:, : self.nslots]).reshape(-1)
        full = ctrl >= self.min_top
        keys = self.keys.column(level, self.mt.keys_off, self.mt.key_stride, self.nslots, full)
        return Rows(
            True,
            np.full(n, -1, dtype=np.int32),
            bucket.astype(np.int64),
            np.full(n, depth, dtype=np.int32),
            np.full(n, old, dtype=np.bool_),
            addr.astype(np.uint64),
            ctrl,
            keys,
        )

    # -- accounting ------------------------------------------------------------------------------
    def _array_len(self, b: int) -> int:
        """The buckets makeBucketArray allocates for 2^b: from b = 4 it adds 2^(b-4)
        preallocated overflow buckets and then as many more as the allocation's size class
        (roundupsize) has room for; they are used as overflow buckets too."""
        n = 1 << b
        if b < 4:
            return n
        n += 1 << (b - 4)
        size = n * self.bsize
        up = self.alloc.usable(size, pointers=self.mt.group_pointers)
        return up // self.bsize if up != size else n

    def _memory(
        self, h: dict[str, Any], n_new: int, outside: int, n_old: int, warnings: list[str]
    ) -> Memory:
        """Every allocation the map owns, once, as the allocator reserves it: the hmap
        (new(hmap)), its mapextra and mapextra's overflow slices, the bucket array(s)
        (makeBucketArray: newarray), each overflow bucket outside them (newoverflow:
        newobject), and each live entry's indirect key/elem (newobject).
        docs/memory-accounting.md cites them."""
        lay, mt, a = self.layout, self.mt, self.alloc
        bsize, gp = self.bsize, mt.group_pointers
        hmap = lay.struct("hmap").size
        header, header_held, allocations = hmap, a.reserved(hmap, pointers=True), 1
        if h["extra"]:
            extra = lay.struct("mapextra").size
            header += extra
            header_held += a.reserved(extra, pointers=True)
            allocations += 1
            if not gp:  # only pointer-free buckets keep their overflow buckets in slices
                for size in self._overflow_slices(int(h["extra"]), warnings):
                    header += size
                    header_held += a.reserved(size, pointers=True)
                    allocations += 1
        bucket = a.reserved(bsize, pointers=gp)
        memory = Memory(
            header=header_held,
            directory=0,
            tables=0,
            groups=a.reserved(n_new * bsize, pointers=gp),
            indirect=0,
            live_entries=0,
            entry_bytes=mt.entry_bytes,
            overflow=outside * bucket,
            old=a.reserved(n_old * bsize, pointers=gp),
            structural=TypeSizes(
                header=header,
                groups=n_new * bsize,
                overflow=outside * bsize,
                old=n_old * bsize,
            ),
            allocations=allocations + (n_new > 0) + (n_old > 0) + outside,
        )
        return self.live(memory, int(h["count"]))

    def _overflow_slices(self, extra: int, warnings: list[str]) -> list[int]:
        """The sizes of the allocations behind mapextra.overflow and .oldoverflow (each a
        *[]*bmap: new([]*bmap), and the array append grew, of cap pointers, growslice
        having rounded cap up to fill its size class). A mapextra that cannot be read (a
        snapshot file saved before dlvsnap read it) is a warning, and its slices are not
        counted."""
        p, order = self.layout.ptr_size, self.layout.order
        ex = self.layout.struct("mapextra")
        try:
            fields = ex.parse(self.mem.read(extra, ex.size))
            out: list[int] = []
            for name in ("overflow", "oldoverflow"):
                at = int(fields[name])
                if not at:
                    continue
                raw = self.mem.read(at, 3 * p)
                data, length, cap = (
                    int.from_bytes(raw[i * p : (i + 1) * p], order) for i in range(3)
                )
                if length > cap or cap > MAX_OVERFLOW_SLICE:
                    raise LayoutError(
                        f"mapextra.{name} at {at:#x}: a slice of len {length}, cap {cap}: "
                        f"not an overflow slice under layout {self.layout.name}"
                    )
                out.append(3 * p)  # the slice header
                if data and cap:
                    out.append(cap * p)
        except MemoryReadError as e:
            warnings.append(
                f"mapextra at {extra:#x} not read ({e}): its overflow slices are not counted"
            )
            return []
        return out

    def _make(
        self,
        addr: int,
        h: dict[str, Any],
        rows: Rows,
        memory: Memory,
        *,
        shape: tuple[object, ...],
        partial: bool,
        warnings: tuple[str, ...] | list[str] = (),
    ) -> MapSnapshot:
        count = int(h["count"])
        return MapSnapshot(
            impl="classic",
            layout=self.layout.name,
            addr=addr,
            header=h,
            count=count,
            map_type=self.mt,
            tables=(),
            rows=rows,
            states=self.states,
            memory=self.live(memory, count),
            tombstones=0,
            warnings=tuple(warnings),
            shape=shape,
            partial=partial,
        )


class _Budget:
    """The slots a snapshot may still read (``max_slots``), counted bucket by bucket."""

    def __init__(self, max_slots: int | None, nslots: int, addr: int) -> None:
        self.left, self.nslots, self.addr = max_slots, nslots, addr

    def take(self, buckets: int) -> None:
        if self.left is None:
            return
        self.left -= buckets * self.nslots
        if self.left < 0:
            raise LayoutError(f"map at {self.addr:#x}: more slots than the snapshot may hold")


def _structure(h: dict[str, Any]) -> tuple[object, ...]:
    """What a delete never changes and an insert that adds buckets does (noverflow counts
    overflow buckets exactly below B = 16, approximately above: runtime incrnoverflow)."""
    return (
        int(h["B"]),
        int(h["buckets"]),
        int(h["oldbuckets"]),
        int(h["noverflow"]),
        bool(h["extra"]),
    )


def _probeable(h: dict[str, Any], known: MapSnapshot) -> bool:
    """Whether one bucket chain is all a delete can change: the map is not growing and its
    arrays and overflow count are those of a snapshot whose accounting is known."""
    return not h["oldbuckets"] and bool(h["buckets"]) and _structure(h) == known.shape[1:-1]
