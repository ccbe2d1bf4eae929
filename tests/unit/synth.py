"""Synthetic swiss maps built with the layouts' own construct Structs (``build``), laid out
in SparseMem: the decoder tests need no Delve and no Go."""

from __future__ import annotations

from dataclasses import dataclass, field

from dlvsnap.kinds import Kind
from dlvsnap.layouts import Layout
from dlvsnap.memory import SparseMem

EMPTY = 0x80
DELETED = 0xFE


def type_fields(size: int, kind: int, align: int = 8) -> dict[str, int]:
    """An abi.Type (runtime._type) as a dict for the layout's construct struct."""
    return {
        "Size_": size,
        "PtrBytes": 0,
        "Hash": 0,
        "TFlag": 0,
        "Align_": align,
        "FieldAlign_": align,
        "Kind_": kind,
        "Equal": 0,
        "GCData": 0,
        "Str": 0,
        "PtrToThis": 0,
    }


@dataclass
class SwissMap:
    layout: Layout
    key_kind: int = Kind.INT
    key_size: int = 8
    elem_size: int = 8
    indirect_key: bool = False
    mem: SparseMem = field(default_factory=SparseMem)
    _next: int = 0x10000

    def alloc(self, data: bytes) -> int:
        addr = self._next
        self.mem.add(addr, data)
        self._next += (len(data) + 0xFFF) // 0x1000 * 0x1000 + 0x1000
        return addr

    @property
    def order(self) -> str:
        return "little" if self.layout.little_endian else "big"

    @property
    def slot_key_size(self) -> int:
        return self.layout.ptr_size if self.indirect_key else self.key_size

    @property
    def slot_size(self) -> int:
        a = min(8, self.layout.ptr_size)
        return (self.slot_key_size + self.elem_size + a - 1) // a * a

    @property
    def group_size(self) -> int:
        return 8 + 8 * self.slot_size

    def type_desc(self) -> int:
        t = self.layout.struct("Type").struct
        key = self.alloc(t.build(type_fields(self.key_size, self.key_kind)))
        elem = self.alloc(t.build(type_fields(self.elem_size, Kind.INT)))
        flags = 4 if self.indirect_key else 0
        mt = self.layout.struct("MapType").struct.build(
            {
                "Type": type_fields(8, 21),
                "Key": key,
                "Elem": elem,
                "Group": 0,
                "Hasher": 0,
                "GroupSize": self.group_size,
                "SlotSize": self.slot_size,
                "ElemOff": self.slot_key_size,
                "Flags": flags,
            }
        )
        return self.alloc(mt)

    def key_bytes(self, key: int | bytes) -> bytes:
        if isinstance(key, bytes):
            raw = key
        else:
            raw = key.to_bytes(self.key_size, self.order, signed=True)
        if self.indirect_key:
            return self.alloc(raw).to_bytes(self.layout.ptr_size, self.order)
        return raw

    def group(
        self, slots: dict[int, tuple[int, int | bytes]], deleted: tuple[int, ...] = ()
    ) -> bytes:
        """slots: index -> (ctrl byte, key). Indexes not given are empty (0x80)."""
        ctrl = [EMPTY] * 8
        body = bytearray(8 * self.slot_size)
        for i, (c, key) in slots.items():
            ctrl[i] = c
            kb = self.key_bytes(key)
            body[i * self.slot_size : i * self.slot_size + len(kb)] = kb
        for i in deleted:
            ctrl[i] = DELETED
        word = sum(b << (8 * i) for i, b in enumerate(ctrl))
        return word.to_bytes(8, self.order) + bytes(body)

    def header(
        self, used: int, dir_ptr: int, dir_len: int, depth: int = 0, seed: int = 0x5EED
    ) -> int:
        return self.alloc(
            self.layout.struct("Map").struct.build(
                {
                    "used": used,
                    "seed": seed,
                    "dirPtr": dir_ptr,
                    "dirLen": dir_len,
                    "globalDepth": depth,
                    "globalShift": (8 * self.layout.ptr_size - depth) & 0xFF,
                    "writing": 0,
                    "tombstonePossible": False,
                    "clearSeq": 0,
                }
            )
        )

    def table(
        self, groups: list[bytes], used: int, growth_left: int, index: int, local_depth: int = 0
    ) -> int:
        data = self.alloc(b"".join(groups))
        return self.alloc(
            self.layout.struct("table").struct.build(
                {
                    "used": used,
                    "capacity": 8 * len(groups),
                    "growthLeft": growth_left,
                    "localDepth": local_depth,
                    "index": index,
                    "groups": {"data": data, "lengthMask": len(groups) - 1},
                }
            )
        )

    def directory(self, tables: list[int]) -> int:
        p = self.layout.ptr_size
        return self.alloc(b"".join(t.to_bytes(p, self.order) for t in tables))
