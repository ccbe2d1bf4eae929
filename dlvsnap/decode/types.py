"""Decode a map's type descriptor (the ``t`` argument of every runtime map function).

swiss 1.24-1.26: abi.SwissMapType / abi.MapType {GroupSize, SlotSize, ElemOff, Flags};
swiss 1.27: abi.MapType {GroupSize, KeysOff, KeyStride, ElemsOff, ElemStride, Flags};
classic: runtime.maptype / abi.MapType / abi.OldMapType {KeySize, ValueSize, BucketSize,
Flags}. All are turned into one model.MapType that says where slot i's key and elem are.
"""

from __future__ import annotations

from typing import Any

from dlvsnap.errors import LayoutError
from dlvsnap.kinds import KIND_MASK, Kind
from dlvsnap.layouts import Layout
from dlvsnap.memory import MemoryReader
from dlvsnap.model import GoType, KeyType, MapType, TypeCatalog

# Key kinds decoded with a description of their type (the others by kind and size alone).
DESCRIBED_KINDS = frozenset(
    [Kind.STRUCT, Kind.ARRAY, Kind.INTERFACE, Kind.POINTER, Kind.UNSAFE_POINTER, Kind.CHAN]
)


def decode_type(
    layout: Layout,
    mem: MemoryReader,
    addr: int,
    indirect: bool,
    types: TypeCatalog | None = None,
) -> KeyType:
    """The type descriptor at ``addr``: its kind and size, and for the kinds that need one
    (structs, arrays, pointers, interfaces) its description from ``types``, if it has one."""
    ts = layout.struct("Type")
    t = ts.parse(mem.read(addr, ts.size))
    kind, size = t["Kind_"] & KIND_MASK, int(t["Size_"])
    go = types.at(addr) if types is not None and kind in DESCRIBED_KINDS else None
    if go is not None and (go.kind != kind or go.size != size):
        go = None  # not this type: a wrong offset or base (the key is shown as its bytes)
    pointers = int(t["PtrBytes"]) != 0
    return KeyType(kind=kind, size=size, indirect=indirect, go=go, pointers=pointers)


def decode_map_type(
    layout: Layout, mem: MemoryReader, addr: int, types: TypeCatalog | None = None
) -> MapType:
    """The map type descriptor at ``addr``; ``types`` describes its key type when it is not
    a number, a bool or a string."""
    mts = layout.struct("MapType")
    mt = mts.parse(mem.read(addr, mts.size))
    flags = int(mt["Flags"])
    indirect_key = bool(flags & layout.const("flag_indirect_key"))
    key = decode_type(layout, mem, mt["Key"], indirect_key, types)
    elem = decode_type(layout, mem, mt["Elem"], bool(flags & layout.const("flag_indirect_elem")))
    place = _classic_places(layout, mt) if layout.family == "classic" else _swiss_places(layout, mt)
    out = MapType(addr, key, elem, *place, flags, hasher=int(mt["Hasher"]))
    _check(layout, out)
    return out


_Places = tuple[int, int, int, int, int]  # group size, keys off, key stride, elems off, stride


def _swiss_places(layout: Layout, mt: dict[str, Any]) -> _Places:
    if "KeysOff" in mt:  # go1.27+: both group layouts described by offsets and strides
        keys_off, key_stride = int(mt["KeysOff"]), int(mt["KeyStride"])
        elems_off, elem_stride = int(mt["ElemsOff"]), int(mt["ElemStride"])
    else:  # go1.24-1.26: interleaved slots {key, elem} after the ctrl word
        slot = int(mt["SlotSize"])
        keys_off, key_stride = layout.const("group_slots_offset"), slot
        elems_off, elem_stride = keys_off + int(mt["ElemOff"]), slot
    return int(mt["GroupSize"]), keys_off, key_stride, elems_off, elem_stride


def _classic_places(layout: Layout, mt: dict[str, Any]) -> _Places:
    # bucket: tophash [8]uint8, keys [8]K', elems [8]V', overflow pointer (last word)
    ks, vs = int(mt["KeySize"]), int(mt["ValueSize"])
    keys_off = layout.const("data_offset")
    return int(mt["BucketSize"]), keys_off, ks, keys_off + layout.const("bucket_slots") * ks, vs


def _check(layout: Layout, mt: MapType) -> None:
    """The descriptor must describe slots that fit in the group/bucket: else wrong layout."""
    n = 8
    p = layout.ptr_size
    kbytes = p if mt.key.indirect else mt.key.size
    ebytes = p if mt.elem.indirect else mt.elem.size
    tail = p if layout.family == "classic" else 0  # the overflow pointer
    ok = (
        mt.keys_off >= 8
        and mt.keys_off + (n - 1) * mt.key_stride + kbytes <= mt.group_size - tail
        and mt.elems_off + (n - 1) * mt.elem_stride + ebytes <= mt.group_size - tail
        and mt.key_stride >= kbytes
        and mt.group_size < 1 << 20
    )
    if not ok:
        raise LayoutError(
            f"map type at {mt.addr:#x}: keys at {mt.keys_off}+i*{mt.key_stride} and elems at "
            f"{mt.elems_off}+i*{mt.elem_stride} do not fit a {mt.group_size}-byte group "
            f"under layout {layout.name}: wrong layout for this binary?"
        )


class KnownTypes:
    """A TypeCatalog of the types it was given (a snapshot file's ``types``)."""

    def __init__(self, types: dict[int, GoType]) -> None:
        self.types = types

    def at(self, addr: int) -> GoType | None:
        return self.types.get(addr)


class RecordingTypes:
    """A TypeCatalog that keeps what it answered (to save a snapshot with the types it was
    decoded with, as RecordingMem keeps the bytes)."""

    def __init__(self, inner: TypeCatalog) -> None:
        self.inner = inner
        self.seen: dict[int, GoType] = {}

    def at(self, addr: int) -> GoType | None:
        got = self.inner.at(addr)
        if got is not None:
            self.seen[addr] = got
        return got
