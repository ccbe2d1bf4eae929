"""Decode key bytes by reflect.Kind: integers, floats, bools and strings; the rest as bytes."""

from __future__ import annotations

import functools
import math
import struct
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dlvsnap.kinds import SIGNED, Kind
from dlvsnap.layouts import ByteOrder, pointer_dtype
from dlvsnap.memory import MemoryReader
from dlvsnap.model import KeyType, KeyValue, RawKey

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
        self.ptr_t = pointer_dtype(ptr_size, little_endian)
        self.mem = mem

    @property
    def slot_bytes(self) -> int:
        """Bytes the key takes in a slot (a pointer when stored indirectly)."""
        return self.ptr_size if self.kt.indirect else self.kt.size

    @functools.cached_property
    def _scalar(self) -> np.dtype[Any] | None:
        return self.scalar_dtype()

    def scalar_dtype(self) -> np.dtype[Any] | None:
        """The numpy type of a key stored by value as an integer, float or bool."""
        kind, size = self.kt.kind, self.kt.size
        if self.kt.indirect:
            return None
        if kind in SIGNED and size in (1, 2, 4, 8):
            return np.dtype(f"{self.fmt}{'i' if SIGNED[kind] else 'u'}{size}")
        if (kind, size) in ((Kind.FLOAT64, 8), (Kind.FLOAT32, 4)):
            return np.dtype(f"{self.fmt}f{size}")
        if kind == Kind.BOOL and size == 1:
            return np.dtype(np.bool_)
        return None

    def column(
        self,
        groups: NDArray[np.uint8],
        keys_off: int,
        stride: int,
        nslots: int,
        full: NDArray[np.bool_],
    ) -> NDArray[Any]:
        """The keys of every slot of ``groups`` (one group/bucket per row), in bulk: a numeric
        array for scalar keys; else an object array, decoded where ``full`` (strings and
        indirect keys read with one ``read_many``)."""
        n = groups.shape[0]
        dt = self._scalar
        if n == 0:
            return np.zeros(0, dtype=dt if dt is not None else object)
        if dt is not None:
            view: NDArray[Any] = np.ndarray(
                (n, nslots),
                dtype=np.uint8 if dt == np.bool_ else dt,
                buffer=groups,
                offset=keys_off,
                strides=(groups.strides[0], stride),
            )
            return view.reshape(-1).astype(dt)  # copies: the groups' bytes can go
        out: NDArray[Any] = np.full(n * nslots, None, dtype=object)
        positions = np.flatnonzero(full)
        if len(positions) == 0:
            return out
        width = self.slot_bytes
        rows, cols = np.divmod(positions, nslots)
        offs = cols * stride + keys_off
        raw = groups[rows[:, None], offs[:, None] + np.arange(width)]  # (k, width) bytes
        out[positions] = self.many_from_slots(raw)
        return out

    def many_from_slots(self, raw: NDArray[np.uint8]) -> list[KeyValue]:
        """Decode keys as stored in slots (one per row of ``raw``), reading the memory they
        point to (string data, indirect keys) with one ``read_many``."""
        p, ptr_t = self.ptr_size, self.ptr_t
        if self.kt.indirect:
            ptrs = raw[:, :p].copy().view(ptr_t).reshape(-1).tolist()
            return self._fetch(
                ptrs,
                [self.kt.size] * len(ptrs),
                lambda b, n: None if b is None else self.from_value(b),
            )
        if self.kt.kind == Kind.STRING and self.kt.size == 2 * p:
            hdr = raw[:, : 2 * p].copy().view(ptr_t).reshape(-1, 2)
            ptrs, lens = hdr[:, 0].tolist(), hdr[:, 1].astype(np.int64).tolist()
            return self._fetch(ptrs, lens, self._string)
        return [self.from_value(bytes(r)) for r in raw]

    def _fetch(self, ptrs: list[int], sizes: list[int], conv: Any) -> list[KeyValue]:
        want = [
            (a, min(n, MAX_STRING_KEY)) for a, n in zip(ptrs, sizes, strict=True) if a and n > 0
        ]
        data = self.mem.read_many(want)
        out: list[KeyValue] = []
        off = 0
        for a, n in zip(ptrs, sizes, strict=True):
            if a and n > 0:
                m = min(n, MAX_STRING_KEY)
                out.append(conv(bytes(data[off : off + m]), n))
                off += m
            else:
                out.append(conv(None, n))
        return out

    def _string(self, b: bytes | None, n: int) -> KeyValue:
        if n == 0:
            return ""
        if b is None:
            return None
        try:
            s = b.decode("utf-8")
        except UnicodeDecodeError:
            return RawKey(b)
        return s if n <= MAX_STRING_KEY else s + "…"

    def hash_input(self, key: KeyValue) -> bytes | None:
        """The bytes the runtime hashes for ``key``: its value bytes, or a string's
        contents; None when the decoded key cannot give them back."""
        kind, size = self.kt.kind, self.kt.size
        out: bytes | None = None
        if isinstance(key, RawKey):
            fits = len(key.data) < MAX_STRING_KEY if kind == Kind.STRING else len(key.data) == size
            out = key.data if fits else None
        elif isinstance(key, str):
            out = key.encode() if kind == Kind.STRING and not key.endswith("…") else None
        elif isinstance(key, bool):
            out = bytes([key]) if kind == Kind.BOOL else None
        elif isinstance(key, int) and kind in SIGNED:
            out = key.to_bytes(size, self.order, signed=SIGNED[kind])
        elif isinstance(key, float) and kind in (Kind.FLOAT32, Kind.FLOAT64):
            # a NaN hashes randomly (the runtime never finds it): None, read the whole map
            fmt = self.fmt + ("d" if size == 8 else "f")
            out = None if math.isnan(key) else struct.pack(fmt, key)
        return out

    def from_value(self, raw: bytes) -> KeyValue:
        """Decode the key's own bytes (``size`` bytes, never a pointer to them)."""
        kind, size = self.kt.kind, self.kt.size
        if kind in SIGNED and len(raw) >= size and size in (1, 2, 4, 8):
            return int.from_bytes(raw[:size], self.order, signed=SIGNED[kind])
        if kind == Kind.BOOL and size == 1:
            return raw[0] != 0
        if kind == Kind.FLOAT64 and size == 8:
            return float(struct.unpack(self.fmt + "d", raw[:8])[0])
        if kind == Kind.FLOAT32 and size == 4:
            return float(struct.unpack(self.fmt + "f", raw[:4])[0])
        if kind == Kind.STRING and size == 2 * self.ptr_size:
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
        return self._string(self.mem.read(data, min(n, MAX_STRING_KEY)), n)
