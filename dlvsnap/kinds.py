"""reflect.Kind: how Go numbers the kinds of types, in one place.

The same numbers appear in a type descriptor's ``Kind_`` byte (internal/abi/type.go, under
``KindMask``) and in Delve's ``Variable.kind`` (service/api, a reflect.Kind), so the
decoders and the Delve client both use this module; it imports nothing of dlvsnap.
"""

from __future__ import annotations

from enum import IntEnum


class Kind(IntEnum):
    """reflect.Kind (reflect/type.go; internal/abi.Kind since Go 1.21, same values)."""

    INVALID = 0
    BOOL = 1
    INT = 2
    INT8 = 3
    INT16 = 4
    INT32 = 5
    INT64 = 6
    UINT = 7
    UINT8 = 8
    UINT16 = 9
    UINT32 = 10
    UINT64 = 11
    UINTPTR = 12
    FLOAT32 = 13
    FLOAT64 = 14
    COMPLEX64 = 15
    COMPLEX128 = 16
    ARRAY = 17
    CHAN = 18
    FUNC = 19
    INTERFACE = 20
    MAP = 21
    POINTER = 22
    SLICE = 23
    STRING = 24
    STRUCT = 25
    UNSAFE_POINTER = 26

    @property
    def go_name(self) -> str:
        """As Go's reflect.Kind.String() prints it: ``int64``, ``unsafe.Pointer``."""
        return "unsafe.Pointer" if self is Kind.UNSAFE_POINTER else self.name.lower()


# abi.KindMask: the kind is the low 5 bits of a type descriptor's Kind_ byte (bit 5 was
# KindDirectIface before Go 1.26, bit 6 KindGCProg before 1.24).
KIND_MASK = 0x1F

# Integer kinds, and whether each is signed.
SIGNED: dict[int, bool] = {
    Kind.INT: True,
    Kind.INT8: True,
    Kind.INT16: True,
    Kind.INT32: True,
    Kind.INT64: True,
    Kind.UINT: False,
    Kind.UINT8: False,
    Kind.UINT16: False,
    Kind.UINT32: False,
    Kind.UINT64: False,
    Kind.UINTPTR: False,
}

# Key kinds whose hashing cannot panic: booleans, numbers, strings, pointers, channels.
# Hashing an interface panics when it holds a slice, map or func (runtime.typehash), and
# structs and arrays may hold interfaces.
HASH_CANNOT_PANIC = frozenset(
    [
        *(k for k in Kind if Kind.BOOL <= k <= Kind.COMPLEX128),
        Kind.CHAN,
        Kind.POINTER,
        Kind.STRING,
        Kind.UNSAFE_POINTER,
    ]
)


def kind_name(kind: int) -> str:
    """A kind number as Go names it; ``kind0``, ``kind99`` for what is no type's kind."""
    return Kind(kind).go_name if Kind.BOOL <= kind <= Kind.UNSAFE_POINTER else f"kind{kind}"
