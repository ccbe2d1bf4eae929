"""Decode key bytes: integers, floats, bools and strings by reflect.Kind; structs, arrays,
pointers and interfaces by the key's Go type from the binary's DWARF (KeyType.go), an
interface's dynamic type found by its runtime type's address (a TypeCatalog). Without a
type description a key is its bytes (RawKey).

What a key holds comes from the debugged program: its decoding is bounded. Pointers are
never followed (they are addresses, as %#v prints them); arrays are decoded up to
MAX_ARRAY_ELEMS elements; a key decodes at most MAX_KEY_VALUES values, MAX_STRING_KEY bytes
of strings, and MAX_KEY_DEPTH levels of structs, arrays and interfaces."""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dlvsnap.decode.types import DESCRIBED_KINDS
from dlvsnap.errors import MemoryReadError
from dlvsnap.kinds import SIGNED, Kind
from dlvsnap.layouts import ByteOrder, pointer_dtype
from dlvsnap.memory import MemoryReader
from dlvsnap.model import (
    MAX_ARRAY_ELEMS,
    ArrayKey,
    GoType,
    IfaceKey,
    KeyType,
    KeyValue,
    PointerKey,
    RawKey,
    StructKey,
    TypeCatalog,
)

# Longest string key read in full; longer keys are cut (the JSON says so with "…").
MAX_STRING_KEY = 1 << 20
MAX_KEY_VALUES = 1024  # values (fields, elements, ...) one key decodes to
MAX_KEY_DEPTH = 6  # structs, arrays and interfaces nested (JSON stays within its 32 levels)
_POINTERS = frozenset([Kind.POINTER, Kind.UNSAFE_POINTER, Kind.CHAN, Kind.MAP, Kind.FUNC])


class _Budget:
    """What one key may still decode: values, and bytes of strings."""

    def __init__(self) -> None:
        self.values = MAX_KEY_VALUES
        self.string_bytes = MAX_STRING_KEY


class KeyDecoder:
    """Turns a key's in-memory bytes into a Python value, reading through ``mem`` for
    strings and indirect keys."""

    def __init__(
        self,
        kt: KeyType,
        ptr_size: int,
        little_endian: bool,
        mem: MemoryReader,
        types: TypeCatalog | None = None,
    ):
        self.kt = kt
        self.types = types  # interfaces' dynamic types
        self._strings: dict[tuple[int, int], bytes] = {}  # string data read ahead
        self.ptr_size = ptr_size
        self.order: ByteOrder = "little" if little_endian else "big"
        self.fmt = "<" if little_endian else ">"
        self.ptr_t = pointer_dtype(ptr_size, little_endian)
        self.mem = mem
        # False: leave keys that are not scalars undecoded (None), reading nothing for
        # them (a census needs a map's keys only to name the maps its values lead to)
        self.decode = True

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
        if len(positions) == 0 or not self.decode:
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
            blobs = self._fetch(ptrs, [self.kt.size] * len(ptrs), lambda b, n: b)
            decoded = iter(self.many_from_values([b for b in blobs if isinstance(b, bytes)]))
            return [next(decoded) if isinstance(b, bytes) else None for b in blobs]
        if self.kt.kind == Kind.STRING and self.kt.size == 2 * p:
            hdr = raw[:, : 2 * p].copy().view(ptr_t).reshape(-1, 2)
            ptrs, lens = hdr[:, 0].tolist(), hdr[:, 1].astype(np.int64).tolist()
            return self._fetch(ptrs, lens, self._string)
        return self.many_from_values([bytes(r) for r in raw])

    def many_from_values(self, blobs: list[bytes]) -> list[KeyValue]:
        """``from_value`` of each key, the strings inside them (struct fields, array
        elements) read with one ``read_many``."""
        offsets = self._string_offsets()
        if not offsets:
            return [self.from_value(b) for b in blobs]
        p = self.ptr_size
        want: set[tuple[int, int]] = set()
        for b in blobs:
            for off in offsets:
                data = int.from_bytes(b[off : off + p], self.order)
                n = int.from_bytes(b[off + p : off + 2 * p], self.order, signed=True)
                if data and n > 0:
                    want.add((data, min(n, MAX_STRING_KEY)))
        regions = sorted(want)
        try:
            got = self.mem.read_many(regions)
        except MemoryReadError:
            got = None  # one is unreadable: each read on its own, when decoded
        if got is not None:
            at = 0
            for a, n in regions:
                self._strings[(a, n)] = bytes(got[at : at + n])
                at += n
        try:
            return [self.from_value(b) for b in blobs]
        finally:
            self._strings = {}

    def _string_offsets(self) -> list[int]:
        """Where string headers are in a key's bytes (in structs and arrays, up to 64)."""
        go = self.kt.go
        if go is None or self.kt.kind not in (Kind.STRUCT, Kind.ARRAY) or self.kt.indirect:
            return []
        out: list[int] = []
        todo: list[tuple[GoType, int, int]] = [(go, 0, 0)]
        while todo and len(out) < 64:
            t, base, depth = todo.pop()
            if depth > MAX_KEY_DEPTH:
                continue
            if t.kind == Kind.STRING and t.size == 2 * self.ptr_size:
                out.append(base)
            elif t.kind == Kind.STRUCT:
                todo += [(f.type, base + f.offset, depth + 1) for f in reversed(t.fields)]
            elif t.kind == Kind.ARRAY and t.elem is not None:
                n = min(t.length, MAX_ARRAY_ELEMS)
                todo += [(t.elem, base + i * t.elem.size, depth + 1) for i in reversed(range(n))]
        return out

    def _fetch(self, ptrs: list[int], sizes: list[int], conv: Any) -> list[Any]:
        want = [
            (a, min(n, MAX_STRING_KEY)) for a, n in zip(ptrs, sizes, strict=True) if a and n > 0
        ]
        data = self.mem.read_many(want)
        out: list[Any] = []
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
        return self._hash_input(key, self.kt.kind, self.kt.size, self.kt.go)

    def _hash_input(self, key: KeyValue, kind: int, size: int, go: GoType | None) -> bytes | None:
        out: bytes | None = None
        if isinstance(key, StructKey | ArrayKey):
            # a struct of one field and an array of one element hash as that field or
            # element (cmd/compile's AlgType: a struct{s string} key hashes with strhash);
            # any other hashes its bytes, with memhash, or with a hasher dlvsnap refuses
            inner = _only_part(key)
            if inner is not None:
                return self._hash_input(inner[0], inner[1].kind, inner[1].size, inner[1])
            out = key.raw if len(key.raw) == size else None
        elif isinstance(key, PointerKey):
            out = key.addr.to_bytes(self.ptr_size, self.order) if size == self.ptr_size else None
        elif isinstance(key, IfaceKey):
            out = None  # interhash/nilinterhash: hashed by the dynamic type, not implemented
        elif isinstance(key, RawKey):
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
        go = self.kt.go
        if kind in DESCRIBED_KINDS and go is not None and go.kind == kind and len(raw) >= size:
            return self._value(raw[:size], go, 0, _Budget())
        return self._plain(raw, kind, size)

    def _plain(self, raw: bytes, kind: int, size: int) -> KeyValue:
        if kind in SIGNED and len(raw) >= size and size in (1, 2, 4, 8):
            return int.from_bytes(raw[:size], self.order, signed=SIGNED[kind])
        if kind == Kind.BOOL and size == 1 and raw:
            return raw[0] != 0
        if kind == Kind.FLOAT64 and size == 8 and len(raw) >= 8:
            return float(struct.unpack(self.fmt + "d", raw[:8])[0])
        if kind == Kind.FLOAT32 and size == 4 and len(raw) >= 4:
            return float(struct.unpack(self.fmt + "f", raw[:4])[0])
        if kind == Kind.STRING and size == 2 * self.ptr_size and len(raw) >= size:
            p = self.ptr_size
            data = int.from_bytes(raw[:p], self.order)
            n = int.from_bytes(raw[p : 2 * p], self.order, signed=True)
            return self.string_at(data, n)
        return RawKey(bytes(raw[:size]))

    def _value(self, raw: bytes, t: GoType, depth: int, budget: _Budget) -> KeyValue:
        """A value of type ``t`` from its bytes ``raw`` (``t.size`` of them)."""
        budget.values -= 1
        if budget.values < 0:
            return None
        if depth > MAX_KEY_DEPTH or len(raw) < t.size:
            return RawKey(bytes(raw[: t.size]))
        p = self.ptr_size
        if t.kind in _POINTERS and t.size == p:
            return PointerKey(t, int.from_bytes(raw[:p], self.order))
        parts: dict[int, Callable[[bytes, GoType, int, _Budget], KeyValue]] = {
            Kind.STRUCT: self._struct,
            Kind.ARRAY: self._array,
            Kind.INTERFACE: self._iface,
            Kind.STRING: self._string_field,
        }
        part = parts.get(t.kind)
        if part is None or (t.kind in (Kind.INTERFACE, Kind.STRING) and t.size != 2 * p):
            return self._plain(raw, t.kind, t.size)
        return part(raw, t, depth, budget)

    def _struct(self, raw: bytes, t: GoType, depth: int, budget: _Budget) -> KeyValue:
        values = tuple(
            self._value(raw[f.offset : f.offset + f.type.size], f.type, depth + 1, budget)
            for f in t.fields
        )
        return StructKey(t, values, bytes(raw[: t.size]))

    def _array(self, raw: bytes, t: GoType, depth: int, budget: _Budget) -> KeyValue:
        e = t.elem
        if e is None:
            return RawKey(bytes(raw[: t.size]))
        if e.kind == Kind.UINT8 and e.size == 1:  # its bytes, all of them
            return ArrayKey(t, (), bytes(raw[: t.length]), bytes(raw[: t.size]))
        elems = tuple(
            self._value(raw[i * e.size : (i + 1) * e.size], e, depth + 1, budget)
            for i in range(min(t.length, MAX_ARRAY_ELEMS))
        )
        return ArrayKey(t, elems, None, bytes(raw[: t.size]))

    def _string_field(self, raw: bytes, t: GoType, depth: int, budget: _Budget) -> KeyValue:
        """A string inside a key, read within what the key may still read."""
        p = self.ptr_size
        data = int.from_bytes(raw[:p], self.order)
        n = int.from_bytes(raw[p : 2 * p], self.order, signed=True)
        want = min(n, budget.string_bytes)
        budget.string_bytes -= max(0, want)
        try:
            s = self.string_at(data, want)
        except MemoryReadError:
            return None
        return s + "…" if isinstance(s, str) and want < n else s

    def _iface(self, raw: bytes, t: GoType, depth: int, budget: _Budget) -> KeyValue:
        """An interface's dynamic value: the type word is the dynamic type (interface {})
        or an itab whose Type field, after its Inter field, is (abi.ITab, runtime.itab
        since Go 1.0); the data word holds the value when it is pointer-shaped, else points
        to it."""
        p = self.ptr_size
        word, data = int.from_bytes(raw[:p], self.order), raw[p : 2 * p]
        if word == 0:
            return IfaceKey(t, None, None)
        try:
            typ = int.from_bytes(self.mem.read(word + p, p), self.order) if t.methods else word
        except MemoryReadError:
            return IfaceKey(t, None, RawKey(bytes(data)), word)
        dyn = self.types.at(typ) if self.types is not None and typ else None
        if dyn is None:
            return IfaceKey(t, None, RawKey(bytes(data)), typ or word)
        if dyn.direct_iface:
            value = self._value(bytes(data), dyn, depth + 1, budget)
        else:
            try:
                addr = int.from_bytes(data, self.order)
                body = self.mem.read(addr, dyn.size) if dyn.size > 0 else b""
            except MemoryReadError:
                return IfaceKey(t, dyn, None)
            value = self._value(body, dyn, depth + 1, budget)
        return IfaceKey(t, dyn, value)

    def string_at(self, data: int, n: int) -> KeyValue:
        if n == 0:
            return ""
        if data == 0 or n < 0:
            return None
        m = min(n, MAX_STRING_KEY)
        b = self._strings.get((data, m))
        return self._string(self.mem.read(data, m) if b is None else b, n)


def _only_part(key: StructKey | ArrayKey) -> tuple[KeyValue, GoType] | None:
    """The one field of a struct of one (named) field, the one element of an array of one."""
    t = key.go
    if isinstance(key, StructKey) and len(t.fields) == 1 and t.fields[0].name != "_":
        return key.values[0], t.fields[0].type
    if isinstance(key, ArrayKey) and t.length == 1 and key.elems and t.elem is not None:
        return key.elems[0], t.elem
    return None
