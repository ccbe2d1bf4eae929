"""Decode a swiss-table map (Go 1.24+, internal/runtime/maps) into a MapSnapshot.

Small maps (dirLen 0: dirPtr is one group, or nil), and table maps (dirPtr is an array of
dirLen table pointers; a table with localDepth d appears 2^(globalDepth-d) times).

``snapshot`` reads every group. ``probe`` reads what a delete of one key can touch: the
header, the directory, every table header (for memory and tombstone accounting) and the
groups of the key's probe sequence in its table, up to the group holding the key or the
first group with an empty slot, where the runtime's (*table).Delete stops. ``reread``
reads the same groups again (after the delete).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dlvsnap.decode.base import BaseDecoder, SmallMaps
from dlvsnap.errors import LayoutError
from dlvsnap.layouts import Layout
from dlvsnap.memory import MemoryReader, SparseMem
from dlvsnap.model import (
    DELETED,
    EMPTY,
    FULL,
    SEED_FIELD,
    KeyValue,
    MapSnapshot,
    MapType,
    Memory,
    Rows,
    Table,
    TypeCatalog,
    TypeSizes,
)

# A directory longer than this is not a map header (2^16 tables of 1024 slots = 64M slots).
MAX_DIR_LEN = 1 << 20
MAX_GROUPS_PER_TABLE = 1024 // 8


def ctrl_state(byte: int, layout: Layout) -> str:
    if byte & 0x80 == 0:
        return FULL
    if byte == layout.const("ctrl_empty"):
        return EMPTY
    if byte == layout.const("ctrl_deleted"):
        return DELETED
    return f"invalid(0x{byte:02x})"


class SwissDecoder(BaseDecoder):
    family = "swiss"

    def __init__(
        self,
        layout: Layout,
        mem: MemoryReader,
        map_type: MapType,
        types: TypeCatalog | None = None,
    ) -> None:
        super().__init__(layout, mem, map_type, types)
        self.nslots = layout.const("group_slots")
        self.empty_byte = layout.const("ctrl_empty")

    def byte_state(self, b: int) -> str:
        return ctrl_state(b, self.layout)

    # -- reading ---------------------------------------------------------------------------
    def header(self, addr: int) -> dict[str, Any]:
        hs = self.layout.struct("Map")
        return hs.parse(self.mem.read(addr, hs.size))

    def _directory(self, addr: int, hdr: dict[str, Any], warnings: list[str]) -> _Dir:
        """Every distinct table of the directory, in directory order (table headers read
        with one ``read_many`` and parsed in bulk)."""
        dir_len, dir_ptr = int(hdr["dirLen"]), int(hdr["dirPtr"])
        lay = self.layout
        ts = lay.struct("table")
        if dir_len == 0:
            return _Dir(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=ts.dtype), [])
        if not 0 < dir_len <= MAX_DIR_LEN or dir_len & (dir_len - 1):
            raise LayoutError(f"map at {addr:#x}: dirLen {dir_len} is not a power of two")
        entries = np.frombuffer(self.mem.read(dir_ptr, dir_len * lay.ptr_size), dtype=lay.ptr_dtype)
        if dir_len <= 64:  # small directories: a dict is faster than a sort
            seen: dict[int, int] = {}
            for i, a in enumerate(entries.tolist()):
                seen.setdefault(a, i)
            first = np.fromiter(seen.values(), dtype=np.int64, count=len(seen))
        else:
            _, first = np.unique(entries, return_index=True)
            first.sort()
        taddrs = entries[first].astype(np.uint64)
        th = np.frombuffer(self.mem.read_each(taddrs, ts.size), dtype=ts.dtype)
        mask = th["groups.lengthMask"].astype(np.int64)
        n_groups = mask + 1
        bad = (n_groups > MAX_GROUPS_PER_TABLE) | ((n_groups & mask) != 0)
        bad |= th["capacity"].astype(np.int64) != n_groups * self.nslots
        for i in np.flatnonzero(bad).tolist():
            raise LayoutError(
                f"table at {taddrs[i]:#x}: lengthMask {int(mask[i])}, capacity "
                f"{int(th['capacity'][i])}: not a table of at most {MAX_GROUPS_PER_TABLE} "
                "groups of 8 slots"
            )
        for i in np.flatnonzero(th["index"] != first).tolist():
            warnings.append(
                f"table at {taddrs[i]:#x} has index {int(th['index'][i])}, first seen at "
                f"{int(first[i])}"
            )
        return _Dir(first.astype(np.int64), th, taddrs.tolist())

    def _rows(self, where: list[tuple[int, int, int]], bases: dict[int, int]) -> Rows:
        """Read groups given as (table index, first group, group count), contiguous runs;
        ``bases``: each table's group array (-1: a small map's group), see ``_bases``."""
        gs = self.mt.group_size

        def gaddr(table: int, group: int) -> int:
            return bases[table] + group * gs

        raw = self.mem.read_many([(gaddr(t, g), n * gs) for t, g, n in where])
        groups = np.frombuffer(raw, dtype=np.uint8).reshape(-1, gs)
        if len(where) == 1:  # one run (a probe's group, a table): no stitching
            t, g, n = where[0]
            index = np.arange(g, g + n, dtype=np.int64)
            addr = np.uint64(gaddr(t, g)) + np.arange(n, dtype=np.uint64) * np.uint64(gs)
            return self._decode_rows(groups, np.full(n, t, dtype=np.int32), index, addr)
        table = np.repeat(
            np.array([t for t, _, _ in where], dtype=np.int32), [n for *_, n in where]
        )
        first = np.repeat(
            np.array([g for _, g, _ in where], dtype=np.int64), [n for *_, n in where]
        )
        run_start = np.repeat(np.cumsum([0] + [n for *_, n in where])[:-1], [n for *_, n in where])
        index = first + np.arange(len(table), dtype=np.int64) - run_start
        base = np.repeat(
            np.array([gaddr(t, g) for t, g, _ in where], dtype=np.uint64),
            [n for *_, n in where],
        )
        addr = base + (index - first).astype(np.uint64) * np.uint64(gs)
        return self._decode_rows(groups, table, index, addr)

    def _decode_rows(
        self,
        groups: NDArray[np.uint8],
        table: NDArray[np.int32],
        index: NDArray[np.int64],
        addr: NDArray[Any],
    ) -> Rows:
        ctrl = groups[:, :8]
        if not self.layout.little_endian:  # slot i is byte i of the ctrl word's value
            ctrl = ctrl[:, ::-1]
        ctrl_flat = np.ascontiguousarray(ctrl).reshape(-1)
        full = ctrl_flat < 0x80
        keys = self.keys.column(groups, self.mt.keys_off, self.mt.key_stride, self.nslots, full)
        n = len(table)
        return Rows(
            False,
            table,
            index,
            np.zeros(n, dtype=np.int32),
            np.zeros(n, dtype=np.bool_),
            addr.astype(np.uint64),
            ctrl_flat,
            keys,
        )

    def small_maps(self, addrs: NDArray[np.uint64]) -> SmallMaps:
        """Many maps of this type at once, for a census: the headers in one bulk read, then
        the one group of each small map (no directory) in another; the figures ``snapshot``
        would give for each small map whose group agrees with its header (``ok``). The
        others (tables, a header and group that disagree) need ``snapshot``. A
        MemoryReadError when any of them cannot be read."""
        hs, gs, n = self.layout.struct("Map"), self.mt.group_size, len(addrs)
        h = np.frombuffer(self.mem.read_each(addrs, hs.size), dtype=hs.dtype)
        used = h["used"].astype(np.int64)
        dir_ptr = h["dirPtr"].astype(np.uint64)
        grouped = (h["dirLen"] == 0) & (dir_ptr != 0) & (used <= self.nslots)
        ctrl = np.full((n, 8), self.empty_byte, dtype=np.uint8)
        idx = np.flatnonzero(grouped)
        if len(idx):
            raw = self.mem.read_each(dir_ptr[idx], gs)
            words = np.frombuffer(raw, dtype=np.uint8).reshape(len(idx), gs)[:, :8]
            ctrl[idx] = words if self.layout.little_endian else words[:, ::-1]
        full = np.count_nonzero(ctrl < 0x80, axis=1)
        ok = (grouped & (full == used)) | ((h["dirLen"] == 0) & (dir_ptr == 0) & (used == 0))
        held: dict[tuple[bool, int], Memory] = {}
        memory: list[Memory | None] = []
        empty = _Dir(
            np.zeros(0, dtype=np.int64), np.zeros(0, dtype=self.layout.struct("table").dtype), []
        )
        for good, g, u in zip(ok.tolist(), grouped.tolist(), used.tolist(), strict=True):
            if not good:
                memory.append(None)
                continue
            if (g, u) not in held:
                held[g, u] = self._memory({"dirLen": 0, "dirPtr": int(g), "used": u}, empty)
            memory.append(held[g, u])
        return SmallMaps(
            ok=ok,
            used=used,
            slots=np.where(grouped, self.nslots, 0),
            tombstones=np.count_nonzero(ctrl == self.layout.const("ctrl_deleted"), axis=1),
            memory=memory,
        )

    # -- snapshots ---------------------------------------------------------------------------
    def snapshot(self, addr: int, *, max_slots: int | None = None) -> MapSnapshot:
        """Every group of the map; ``max_slots`` (a saved file's own slot count): refuse a
        map of more slots before reading them."""
        hdr = self.header(addr)
        warnings: list[str] = []
        d, bases = self._prepare(addr, hdr, warnings)
        tables = d.tables()
        if tables:
            where = [(t.index, 0, t.n_groups) for t in tables]
        else:
            where = [(-1, 0, 1)] if hdr["dirPtr"] else []
        if max_slots is not None and sum(n for *_, n in where) * self.nslots > max_slots:
            raise LayoutError(f"map at {addr:#x}: more slots than the snapshot may hold")
        rows = self._rows(where, bases)
        return self._make(addr, hdr, d, tables, rows, warnings=warnings, partial=False)

    def probe(
        self,
        addr: int,
        key: KeyValue,
        hash_of: Callable[[int], int],
        known: MapSnapshot,
        *,
        insert: bool = False,
    ) -> tuple[MapSnapshot, bool] | None:
        """What deleting ``key`` can touch (``hash_of(seed)`` is its hash); and whether it is
        there. The directory and table headers are read every time (exact tombstone and
        memory figures), so nothing of ``known`` is relied on. For an insert
        (``insert``): its whole table, since an insert may also clear tombstones anywhere
        in it (pruneTombstones); None (read the whole map) when the table has no growth
        left, since the insert may then grow or split it."""
        hdr = self.header(addr)
        warnings: list[str] = []
        d, bases = self._prepare(addr, hdr, warnings)
        if not len(d):
            rows = self._rows([(-1, 0, 1)] if hdr["dirPtr"] else [], bases)
            found = any(rows.key(int(p)) == key for p in np.flatnonzero(rows.ctrl < 0x80))
            snap = self._make(addr, hdr, d, [], rows, warnings=warnings, partial=False)
            return snap, found
        hash_ = hash_of(int(hdr[SEED_FIELD[self.family]]))
        di, h2 = _home(hdr, hash_)
        t = d.table(d.find(di))
        if insert:
            rows = self._rows([(t.index, 0, t.n_groups)], bases)
            found = any(rows.key(int(p)) == key for p in np.flatnonzero(rows.ctrl == h2))
            if t.growth_left == 0 and not found:
                return None  # table.rehash: grow or split
            return self._make(addr, hdr, d, [t], rows, warnings=warnings, partial=True), found
        mask = t.n_groups - 1
        offset = (hash_ >> 7) & mask
        parts: list[Rows] = []
        found = False
        for step in range(1, t.n_groups + 1):
            g = self._rows([(t.index, offset, 1)], bases)
            parts.append(g)
            hits = np.flatnonzero(g.ctrl == h2)
            if any(g.key(int(p)) == key for p in hits):
                found = True
                break
            if np.any(g.ctrl == self.empty_byte):
                break
            offset = (offset + step) & mask
        rows = Rows.concat(parts, classic=False)
        return self._make(addr, hdr, d, [t], rows, warnings=warnings, partial=True), found

    def reread(self, addr: int, prior: MapSnapshot, *, structural: bool = False) -> MapSnapshot:
        """The groups of ``prior`` (a probe) read again, with the header and the probe's
        table: a delete writes nothing else (table.Delete changes its own table, Map.Delete
        the header). The whole map if the directory or that table's groups changed.
        ``structural`` (after an insert): every table header is read again too, since an
        insert may split a table without changing the directory's length."""
        hdr = self.header(addr)
        if structural:
            warnings: list[str] = []
            d, bases = self._prepare(addr, hdr, warnings)
            if not prior.partial or _shape(hdr, d) != prior.shape:
                return self.snapshot(addr)
            tables = [d.table(d.find(t.index)) for t in prior.tables]
            where = [(t.index, 0, t.n_groups) for t in tables]
            rows = self._rows(where, bases)
            return self._make(addr, hdr, d, tables, rows, warnings=warnings, partial=True)
        t = self._same_table(hdr, prior)
        if t is None:
            return self.snapshot(addr)
        t0 = prior.tables[0]
        rows = self._rows(
            [(int(x), int(g), 1) for x, g in zip(prior.rows.table, prior.rows.index, strict=True)],
            {t.index: t.groups_addr},
        )
        used = int(hdr["used"])
        warnings = []
        if prior.count - used != t0.used - t.used:
            warnings.append(
                f"Map.used went {prior.count} -> {used} but table {t.index}'s used "
                f"{t0.used} -> {t.used}"
            )
        return dataclasses.replace(
            prior,
            addr=addr,
            header=hdr,
            count=used,
            tables=(t,),
            rows=rows,
            memory=self.live(prior.memory, used),
            tombstones=prior.tombstones - t0.tombstones + t.tombstones,
            warnings=tuple(warnings),
        )

    def _same_table(self, hdr: dict[str, Any], prior: MapSnapshot) -> Table | None:
        """The table of ``prior`` (a probe) read again, if the directory and the table's
        group array are those ``prior`` read (a delete changes neither); else None."""
        t0 = prior.tables[0] if prior.partial and len(prior.tables) == 1 else None
        if t0 is None or (hdr["dirPtr"], hdr["dirLen"]) != (
            prior.header["dirPtr"],
            prior.header["dirLen"],
        ):
            return None
        ts = self.layout.struct("table")
        th = np.frombuffer(self.mem.read(t0.addr, ts.size), dtype=ts.dtype)
        t = _Dir(np.array([t0.index], dtype=np.int64), th, [t0.addr]).table(0)
        return t if (t.groups_addr, t.n_groups) == (t0.groups_addr, t0.n_groups) else None

    def recapture(self, addr: int, prior: MapSnapshot) -> SparseMem | None:
        """Every byte ``reread`` reads after a delete, read raw (the header, the probe's
        table header and groups), so that it can run on them later, while the program
        runs; None when it would read the whole map instead."""
        if not prior.partial or len(prior.tables) != 1:
            return None
        gs = self.mt.group_size
        regions = [
            (addr, self.layout.struct("Map").size),
            (prior.tables[0].addr, self.layout.struct("table").size),
            *((a, gs) for a in prior.rows.addr.tolist()),
        ]
        out = SparseMem.of(regions, self.mem.read_many(regions))
        me = self.over(out)
        return out if me._same_table(me.header(addr), prior) is not None else None

    def capture(
        self, addr: int, hash_of: Callable[[int], int], known: MapSnapshot
    ) -> SparseMem | None:
        """Every byte ``probe`` can read for a delete, read raw (little decoding): the
        header, the directory, every table header and the whole group array of the key's
        table (or the small map's group), so that ``probe`` can run on them later, while
        the program runs the delete. None for a directory of more than 64 entries: the
        table headers are then cheaper to read and decode in bulk, at once."""
        hs = self.layout.struct("Map")
        raw_hdr = self.mem.read(addr, hs.size)
        hdr = hs.parse(raw_hdr)
        out = SparseMem({addr: raw_hdr})
        dir_len, dir_ptr = int(hdr["dirLen"]), int(hdr["dirPtr"])
        if dir_len == 0:
            if dir_ptr:
                out.add(dir_ptr, self.mem.read(dir_ptr, self.mt.group_size))
            return out
        if dir_len > 64:
            return None
        p = self.layout.ptr_size
        raw_dir = self.mem.read(dir_ptr, dir_len * p)
        out.add(dir_ptr, raw_dir)
        entries = np.frombuffer(raw_dir, dtype=self.layout.ptr_dtype)
        ts = self.layout.struct("table")
        taddrs = np.array(list(dict.fromkeys(entries.tolist())), dtype=np.uint64)
        raw_tables = self.mem.read_each(taddrs, ts.size)
        for i, a in enumerate(taddrs.tolist()):
            out.add(a, bytes(raw_tables[i * ts.size : (i + 1) * ts.size]))
        di, _ = _home(hdr, hash_of(int(hdr[SEED_FIELD[self.family]])))
        t = ts.parse(out.read(int(entries[min(di, dir_len - 1)]), ts.size))
        groups = int(t["groups"]["data"])
        n = int(t["groups"]["lengthMask"]) + 1
        if 0 < n <= MAX_GROUPS_PER_TABLE:
            out.add(groups, self.mem.read(groups, n * self.mt.group_size))
        return out

    def placed(self, snap: MapSnapshot, pos: int, hash_: int) -> bool:
        """Whether ``hash_`` is the hash of the key in slot ``pos`` of a whole snapshot, as
        far as its place tells: its h2 byte, and its table (any group of the table can be
        on its probe sequence)."""
        di, h2 = _home(snap.header, hash_)
        if int(snap.rows.ctrl[pos]) != h2:
            return False
        if not snap.tables:
            return True  # a small map: one group
        table = max((t for t in snap.tables if t.index <= di), key=lambda t: t.index)
        return table.index == int(snap.rows.table[pos // snap.rows.slots_per_row])

    # -- helpers -------------------------------------------------------------------------------
    def _prepare(
        self, addr: int, hdr: dict[str, Any], warnings: list[str]
    ) -> tuple[_Dir, dict[int, int]]:
        """The directory, and where each table's groups are (``_rows``' bases)."""
        d = self._directory(addr, hdr, warnings)
        bases = dict(zip(d.first.tolist(), d.th["groups.data"].tolist(), strict=True))
        bases[-1] = int(hdr["dirPtr"])  # a small map: its one group
        return d, bases

    def _make(
        self,
        addr: int,
        hdr: dict[str, Any],
        d: _Dir,
        tables: list[Table],
        rows: Rows,
        *,
        warnings: list[str],
        partial: bool,
    ) -> MapSnapshot:
        lay = self.layout
        used = int(hdr["used"])
        if len(d) and int(d.th["used"].sum()) != used:
            warnings.append("Map.used differs from the sum of table.used")
        deleted = lay.const("ctrl_deleted")
        if partial:
            tombstones = d.tombstones()
        else:
            full = int(np.count_nonzero(rows.ctrl < 0x80))
            if full != used:
                warnings.append(f"Map.used is {used} but {full} slots are full")
            tombstones = int(np.count_nonzero(rows.ctrl == deleted))
            if tables:
                per_table = np.add.reduceat(
                    (rows.ctrl < 0x80).reshape(-1, self.nslots).sum(axis=1),
                    np.cumsum([0] + [t.n_groups for t in tables[:-1]]),
                )
                for t, n in zip(tables, per_table.tolist(), strict=True):
                    if n != t.used:
                        warnings.append(f"table {t.index}: used is {t.used} but {n} slots are full")
        memory = self._memory(hdr, d)
        return MapSnapshot(
            impl="swiss",
            layout=lay.name,
            addr=addr,
            header=hdr,
            count=used,
            map_type=self.mt,
            tables=tuple(tables),
            rows=rows,
            states=self.states,
            memory=memory,
            tombstones=tombstones,
            warnings=tuple(warnings),
            shape=_shape(hdr, d),
            partial=partial,
            n_tables=len(d),
        )

    def _memory(self, hdr: dict[str, Any], d: _Dir) -> Memory:
        """Every allocation the map owns, once, as the allocator reserves it: the Map
        (new(Map)), the directory (make([]*table, dirLen)), each table (newTable: &table{})
        and its group array (newGroups: newarray), or a small map's one group; and each
        live entry's indirect key/elem (newobject). docs/memory-accounting.md cites them."""
        lay, mt, a = self.layout, self.mt, self.alloc
        p = lay.ptr_size
        header, table = lay.struct("Map").size, lay.struct("table").size
        dir_len = int(hdr["dirLen"])
        if len(d):  # the group arrays' lengths, and how many tables have each
            lengths, n = np.unique(
                d.th["groups.lengthMask"].astype(np.int64) + 1, return_counts=True
            )
            arrays = list(zip(lengths.tolist(), n.tolist(), strict=True))
        else:
            arrays = [(1, 1)] if hdr["dirPtr"] else []
        gs, gp = mt.group_size, mt.group_pointers
        memory = Memory(
            header=a.reserved(header, pointers=True),
            directory=a.reserved(dir_len * p, pointers=True),
            tables=len(d) * a.reserved(table, pointers=True),
            groups=sum(k * a.reserved(g * gs, pointers=gp) for g, k in arrays),
            indirect=0,
            live_entries=0,
            entry_bytes=mt.entry_bytes,
            structural=TypeSizes(
                header=header,
                directory=dir_len * p,
                tables=len(d) * table,
                groups=sum(k * g * gs for g, k in arrays),
            ),
            allocations=1 + (dir_len > 0) + len(d) + sum(k for _, k in arrays),
        )
        return self.live(memory, int(hdr["used"]))


def _home(hdr: dict[str, Any], hash_: int) -> tuple[int, int]:
    """The directory index (Map.directoryIndex) and the h2 byte of a hash; the probe
    sequence starts at group h1 & lengthMask, h1 = hash >> 7 (map.go)."""
    di = 0 if int(hdr["dirLen"]) <= 1 else hash_ >> (int(hdr["globalShift"]) & 63)
    return di, hash_ & 0x7F


class _Dir:
    """The distinct tables of a directory, columnar: ``first`` directory index of each, and
    their headers (a numpy structured array). Table objects are made only when asked."""

    def __init__(self, first: NDArray[np.int64], th: NDArray[Any], addrs: list[int]) -> None:
        self.first, self.th, self.addrs = first, th, addrs

    def __len__(self) -> int:
        return len(self.first)

    def find(self, dir_index: int) -> int:
        """The table directory entry ``dir_index`` points at: the last one whose first index
        is at or before it (a table's entries are contiguous)."""
        return int(np.searchsorted(self.first, dir_index, side="right")) - 1

    def table(self, i: int) -> Table:
        th = self.th[i]
        return Table(
            index=int(self.first[i]),
            addr=self.addrs[i],
            used=int(th["used"]),
            capacity=int(th["capacity"]),
            growth_left=int(th["growthLeft"]),
            local_depth=int(th["localDepth"]),
            groups_addr=int(th["groups.data"]),
            n_groups=int(th["groups.lengthMask"]) + 1,
        )

    def tables(self) -> list[Table]:
        return [self.table(i) for i in range(len(self))]

    def tombstones(self) -> int:
        """capacity*7/8 - used - growthLeft summed (table.go tombstones()), as Table does."""
        cap = self.th["capacity"].astype(np.int64)
        t = cap * 7 // 8 - self.th["used"].astype(np.int64) - self.th["growthLeft"]
        return int(t[cap > 8].sum())

    def key(self) -> bytes:
        """What changes when a table is added, split or grown."""
        return (
            self.first.tobytes()
            + self.th["groups.data"].tobytes()
            + self.th["groups.lengthMask"].tobytes()
        )


def _shape(hdr: dict[str, Any], d: _Dir) -> tuple[object, ...]:
    return ("swiss", int(hdr["dirLen"]), int(hdr["dirPtr"]) != 0, d.key())
