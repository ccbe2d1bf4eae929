"""Decode a swiss-table map (Go 1.24+, internal/runtime/maps) into a MapSnapshot.

Small maps (dirLen 0: dirPtr is one group, or nil), and table maps (dirPtr is an array of
dirLen table pointers; a table with localDepth d appears 2^(globalDepth-d) times).
"""

from __future__ import annotations

from dlvsnap.decode.base import BaseDecoder
from dlvsnap.errors import LayoutError
from dlvsnap.layouts import Layout
from dlvsnap.memory import MemoryReader
from dlvsnap.model import (
    DELETED,
    EMPTY,
    FULL,
    MapSnapshot,
    MapType,
    Memory,
    Slot,
    SlotLoc,
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

    def byte_state(self, b: int) -> str:
        return ctrl_state(b, self.layout)

    def snapshot(self, addr: int) -> MapSnapshot:
        lay = self.layout
        hdr_struct = lay.struct("Map")
        hdr = hdr_struct.parse(self.mem.read(addr, hdr_struct.size))
        dir_len = int(hdr["dirLen"])
        dir_ptr = int(hdr["dirPtr"])
        slots: list[Slot] = []
        tables: list[Table] = []
        warnings: list[str] = []
        n_groups_total = 0
        if dir_len == 0:
            if dir_ptr:
                raw = self.mem.read(dir_ptr, self.mt.group_size)
                slots.extend(self._group_slots(raw, -1, 0))
                n_groups_total = 1
        else:
            if not 0 < dir_len <= MAX_DIR_LEN or dir_len & (dir_len - 1):
                raise LayoutError(f"map at {addr:#x}: dirLen {dir_len} is not a power of two")
            p = lay.ptr_size
            raw_dir = self.mem.read(dir_ptr, dir_len * p)
            seen: set[int] = set()
            for i in range(dir_len):
                taddr = int.from_bytes(raw_dir[i * p : (i + 1) * p], self.layout.order)
                if taddr in seen:
                    continue
                seen.add(taddr)
                table, tslots = self._table(taddr, i, warnings)
                tables.append(table)
                slots.extend(tslots)
                n_groups_total += table.n_groups
        used = int(hdr["used"])
        full = sum(1 for s in slots if s.state == FULL)
        if full != used:
            warnings.append(f"Map.used is {used} but {full} slots are full")
        if tables and sum(t.used for t in tables) != used:
            warnings.append("Map.used differs from the sum of table.used")
        mt = self.mt
        memory = Memory(
            header=hdr_struct.size,
            directory=dir_len * lay.ptr_size,
            tables=len(tables) * lay.struct("table").size,
            groups=n_groups_total * mt.group_size,
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
            slots=tuple(slots),
            memory=memory,
            warnings=tuple(warnings),
            shape=("swiss", dir_len, bool(dir_ptr), tuple((t.index, t.n_groups) for t in tables)),
        )

    def _table(self, taddr: int, dir_index: int, warnings: list[str]) -> tuple[Table, list[Slot]]:
        ts = self.layout.struct("table")
        t = ts.parse(self.mem.read(taddr, ts.size))
        length_mask = int(t["groups"]["lengthMask"])
        n_groups = length_mask + 1
        if n_groups > MAX_GROUPS_PER_TABLE or n_groups & length_mask:
            raise LayoutError(
                f"table at {taddr:#x}: lengthMask {length_mask} is not a power of two minus one "
                f"of at most {MAX_GROUPS_PER_TABLE} groups"
            )
        index = int(t["index"])
        if index != dir_index:
            warnings.append(f"table at {taddr:#x} has index {index}, first seen at {dir_index}")
        if int(t["capacity"]) != n_groups * self.nslots:
            raise LayoutError(
                f"table at {taddr:#x}: capacity {t['capacity']} != {n_groups} groups x 8"
            )
        gaddr = int(t["groups"]["data"])
        raw = self.mem.read(gaddr, n_groups * self.mt.group_size)
        gs = self.mt.group_size
        slots: list[Slot] = []
        for g in range(n_groups):
            slots.extend(self._group_slots(raw[g * gs : (g + 1) * gs], dir_index, g))
        full = sum(1 for s in slots if s.state == FULL)
        if full != int(t["used"]):
            warnings.append(f"table {dir_index}: used is {t['used']} but {full} slots are full")
        table = Table(
            index=dir_index,
            addr=taddr,
            used=int(t["used"]),
            capacity=int(t["capacity"]),
            growth_left=int(t["growthLeft"]),
            local_depth=int(t["localDepth"]),
            groups_addr=gaddr,
            n_groups=n_groups,
        )
        return table, slots

    def _group_slots(self, raw: bytes, table: int, group: int) -> list[Slot]:
        ctrl = int.from_bytes(raw[:8], self.layout.order)
        out: list[Slot] = []
        for i in range(self.nslots):
            b = (ctrl >> (8 * i)) & 0xFF
            state = self.states[b]
            key = self.slot_key(raw, i) if state == FULL else None
            out.append(Slot(SlotLoc(table, group, i), b, state, key))
        return out
