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

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dlvsnap.decode.base import BaseDecoder
from dlvsnap.errors import LayoutError
from dlvsnap.layouts import Layout
from dlvsnap.memory import MemoryReader
from dlvsnap.model import (
    DELETED,
    EMPTY,
    FULL,
    KeyValue,
    MapSnapshot,
    MapType,
    Memory,
    Rows,
    Table,
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

    def __init__(self, layout: Layout, mem: MemoryReader, map_type: MapType) -> None:
        super().__init__(layout, mem, map_type)
        self.nslots = layout.const("group_slots")
        self.empty_byte = layout.const("ctrl_empty")

    def byte_state(self, b: int) -> str:
        return ctrl_state(b, self.layout)

    # -- reading ---------------------------------------------------------------------------
    def header(self, addr: int) -> dict[str, Any]:
        hs = self.layout.struct("Map")
        return hs.parse(self.mem.read(addr, hs.size))

    def _tables(self, addr: int, hdr: dict[str, Any], warnings: list[str]) -> list[Table]:
        """Every distinct table of the directory, in directory order (table headers parsed
        in bulk)."""
        dir_len, dir_ptr = int(hdr["dirLen"]), int(hdr["dirPtr"])
        if dir_len == 0:
            return []
        if not 0 < dir_len <= MAX_DIR_LEN or dir_len & (dir_len - 1):
            raise LayoutError(f"map at {addr:#x}: dirLen {dir_len} is not a power of two")
        lay = self.layout
        ptr_t = np.dtype(f"{'<' if lay.little_endian else '>'}u{lay.ptr_size}")
        entries = np.frombuffer(self.mem.read(dir_ptr, dir_len * lay.ptr_size), dtype=ptr_t)
        _, first = np.unique(entries, return_index=True)
        first.sort()
        ts = lay.struct("table")
        taddrs = entries[first].tolist()
        raw = self.mem.read_many([(a, ts.size) for a in taddrs])
        th = np.frombuffer(raw, dtype=ts.dtype)
        out: list[Table] = []
        for i, taddr, used, cap, gl, depth, index, gaddr, mask in zip(
            first.tolist(),
            taddrs,
            th["used"].tolist(),
            th["capacity"].tolist(),
            th["growthLeft"].tolist(),
            th["localDepth"].tolist(),
            th["index"].tolist(),
            th["groups.data"].tolist(),
            th["groups.lengthMask"].tolist(),
            strict=True,
        ):
            n_groups = mask + 1
            if n_groups > MAX_GROUPS_PER_TABLE or n_groups & mask:
                raise LayoutError(
                    f"table at {taddr:#x}: lengthMask {mask} is not a power of two minus one "
                    f"of at most {MAX_GROUPS_PER_TABLE} groups"
                )
            if cap != n_groups * self.nslots:
                raise LayoutError(f"table at {taddr:#x}: capacity {cap} != {n_groups} groups x 8")
            if index != i:
                warnings.append(f"table at {taddr:#x} has index {index}, first seen at {i}")
            out.append(Table(i, taddr, used, cap, gl, depth, gaddr, n_groups))
        return out

    def _rows(self, where: list[tuple[int, int, int]]) -> Rows:
        """Read groups given as (table index, first group, group count), contiguous runs."""
        gs = self.mt.group_size
        raw = self.mem.read_many([(self._gaddr(t, g), n * gs) for t, g, n in where])
        groups = np.frombuffer(raw, dtype=np.uint8).reshape(-1, gs)
        table = np.repeat(
            np.array([t for t, _, _ in where], dtype=np.int32), [n for *_, n in where]
        )
        first = np.repeat(
            np.array([g for _, g, _ in where], dtype=np.int64), [n for *_, n in where]
        )
        run_start = np.repeat(np.cumsum([0] + [n for *_, n in where])[:-1], [n for *_, n in where])
        index = first + np.arange(len(table), dtype=np.int64) - run_start
        base = np.repeat(
            np.array([self._gaddr(t, g) for t, g, _ in where], dtype=np.uint64),
            [n for *_, n in where],
        )
        addr = base + (index - first).astype(np.uint64) * np.uint64(gs)
        return self._decode_rows(groups, table, index, addr)

    def _gaddr(self, table: int, group: int) -> int:
        base = self._small_group if table < 0 else self._group_base[table]
        return base + group * self.mt.group_size

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

    # -- snapshots ---------------------------------------------------------------------------
    def snapshot(self, addr: int) -> MapSnapshot:
        """Every group of the map."""
        hdr = self.header(addr)
        warnings: list[str] = []
        tables = self._prepare(addr, hdr, warnings)
        if tables:
            where = [(t.index, 0, t.n_groups) for t in tables]
        else:
            where = [(-1, 0, 1)] if hdr["dirPtr"] else []
        return self._make(addr, hdr, tables, self._rows(where), warnings=warnings, partial=False)

    def probe(
        self, addr: int, key: KeyValue, hash_of: Callable[[int], int], base: MapSnapshot
    ) -> tuple[MapSnapshot, bool]:
        """What deleting ``key`` can touch (``hash_of(seed)`` is its hash); and whether it is
        there. ``base`` is unused: the table headers are read every time."""
        hdr = self.header(addr)
        warnings: list[str] = []
        tables = self._prepare(addr, hdr, warnings)
        if not tables:
            rows = self._rows([(-1, 0, 1)] if hdr["dirPtr"] else [])
            found = bool(np.any(rows.ctrl < 0x80)) and any(
                rows.key(int(p)) == key for p in np.flatnonzero(rows.ctrl < 0x80)
            )
            return self._make(addr, hdr, tables, rows, warnings=warnings, partial=False), found
        hash_ = hash_of(int(hdr["seed"]))
        dir_len = int(hdr["dirLen"])
        di = 0 if dir_len == 1 else hash_ >> (int(hdr["globalShift"]) & 63)
        t = self._table_at(tables, di)
        h2 = hash_ & 0x7F
        mask = t.n_groups - 1
        offset = (hash_ >> 7) & mask
        parts: list[Rows] = []
        found = False
        for step in range(1, t.n_groups + 1):
            g = self._rows([(t.index, offset, 1)])
            parts.append(g)
            hits = np.flatnonzero(g.ctrl == h2)
            if any(g.key(int(p)) == key for p in hits):
                found = True
                break
            if np.any(g.ctrl == self.empty_byte):
                break
            offset = (offset + step) & mask
        rows = Rows.concat(parts, classic=False)
        return self._make(addr, hdr, tables, rows, warnings=warnings, partial=True), found

    def reread(self, addr: int, prior: MapSnapshot) -> MapSnapshot:
        """The groups of ``prior`` read again (the whole map if the tables changed)."""
        hdr = self.header(addr)
        warnings: list[str] = []
        tables = self._prepare(addr, hdr, warnings)
        if not prior.partial or _shape(hdr, tables) != prior.shape:
            return self.snapshot(addr)
        where = [
            (int(t), int(g), 1) for t, g in zip(prior.rows.table, prior.rows.index, strict=True)
        ]
        return self._make(addr, hdr, tables, self._rows(where), warnings=warnings, partial=True)

    # -- helpers -------------------------------------------------------------------------------
    def _prepare(self, addr: int, hdr: dict[str, Any], warnings: list[str]) -> list[Table]:
        tables = self._tables(addr, hdr, warnings)
        self._small_group = int(hdr["dirPtr"])
        self._group_base = {t.index: t.groups_addr for t in tables}
        return tables

    @staticmethod
    def _table_at(tables: list[Table], dir_index: int) -> Table:
        """The table directory entry ``dir_index`` points at: the last distinct table whose
        first index is at or before it (a table's entries are contiguous)."""
        best = tables[0]
        for t in tables:
            if t.index > dir_index:
                break
            best = t
        return best

    def _make(
        self,
        addr: int,
        hdr: dict[str, Any],
        tables: list[Table],
        rows: Rows,
        *,
        warnings: list[str],
        partial: bool,
    ) -> MapSnapshot:
        lay, mt = self.layout, self.mt
        used = int(hdr["used"])
        if tables and sum(t.used for t in tables) != used:
            warnings.append("Map.used differs from the sum of table.used")
        deleted = lay.const("ctrl_deleted")
        if partial:
            tombstones = sum(t.tombstones for t in tables)
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
        n_groups = sum(t.n_groups for t in tables) if tables else (1 if hdr["dirPtr"] else 0)
        memory = Memory(
            header=lay.struct("Map").size,
            directory=int(hdr["dirLen"]) * lay.ptr_size,
            tables=len(tables) * lay.struct("table").size,
            groups=n_groups * mt.group_size,
            indirect=used * mt.indirect_bytes,
            live_entries=used,
            entry_bytes=mt.entry_bytes,
        )
        return MapSnapshot(
            impl="swiss",
            layout=lay.name,
            addr=addr,
            header=hdr,
            count=used,
            map_type=mt,
            tables=tuple(tables),
            rows=rows,
            states=self.states,
            memory=memory,
            tombstones=tombstones,
            warnings=tuple(warnings),
            shape=_shape(hdr, tables),
            partial=partial,
        )


def _shape(hdr: dict[str, Any], tables: list[Table]) -> tuple[object, ...]:
    return (
        "swiss",
        int(hdr["dirLen"]),
        int(hdr["dirPtr"]) != 0,
        tuple((t.index, t.n_groups, t.groups_addr) for t in tables),
    )
