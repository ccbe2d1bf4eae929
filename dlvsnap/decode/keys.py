"""Decode key bytes by reflect.Kind: integers, floats, bools and strings; the rest as bytes."""

from __future__ import annotations

import struct

from dlvsnap.layouts import ByteOrder
from dlvsnap.memory import MemoryReader
from dlvsnap.model import KeyType, KeyValue, RawKey

_INT_KINDS = {
    2: True,
    3: True,
    4: True,
    5: True,
    6: True,  # signed
    7: False,
    8: False,
    9: False,
    10: False,
    11: False,
    12: False,
}
KIND_STRING = 24
KIND_BOOL = 1
KIND_FLOAT32 = 13
KIND_FLOAT64 = 14

# Longest string key read in full; longer keys are cut (the JSON says so with "…").
MAX_STRING_KEY = 1 << 20


class KeyDecoder:
    """Turns a key's in-memory bytes into a Python value, reading through ``mem`` for
    strings and indirect keys."""

    def __init__(self, kt: KeyType, ptr_size: int, little_endian: bool, mem: MemoryReader):
        self.kt = kt
        self.ptr_size = ptr_size
        self.order: ByteOrder = "little" if little_endian else "big"
        self.fmt = "<" if little_endian else ">"
        self.mem = mem

    @property
    def slot_bytes(self) -> int:
        """Bytes the key takes in a slot (a pointer when stored indirectly)."""
        return self.ptr_size if self.kt.indirect else self.kt.size

    def from_slot(self, raw: bytes) -> KeyValue:
        """Decode a key as stored in a slot (follows the pointer of an indirect key)."""
        if self.kt.indirect:
            ptr = int.from_bytes(raw[: self.ptr_size], self.order)
            if ptr == 0:
                return None
            raw = self.mem.read(ptr, self.kt.size)
        return self.from_value(raw)

    def from_value(self, raw: bytes) -> KeyValue:
        """Decode the key's own bytes (``size`` bytes, never a pointer to them)."""
        kind, size = self.kt.kind, self.kt.size
        if kind in _INT_KINDS and len(raw) >= size and size in (1, 2, 4, 8):
            return int.from_bytes(raw[:size], self.order, signed=_INT_KINDS[kind])
        if kind == KIND_BOOL and size == 1:
            return raw[0] != 0
        if kind == KIND_FLOAT64 and size == 8:
            return float(struct.unpack(self.fmt + "d", raw[:8])[0])
        if kind == KIND_FLOAT32 and size == 4:
            return float(struct.unpack(self.fmt + "f", raw[:4])[0])
        if kind == KIND_STRING and size == 2 * self.ptr_size:
            p = self.ptr_size
            data = int.from_bytes(raw[:p], self.order)
            n = int.from_bytes(raw[p : 2 * p], self.order, signed=True)
            return self.string_at(data, n)
        return RawKey(bytes(raw[:size]))

    def string_at(self, data: int, n: int) -> KeyValue:
        if n == 0:
            return ""
        if data == 0 or n < 0:
            return None
        b = self.mem.read(data, min(n, MAX_STRING_KEY))
        try:
            s = b.decode("utf-8")
        except UnicodeDecodeError:
            return RawKey(b)
        return s if n <= MAX_STRING_KEY else s + "…"
