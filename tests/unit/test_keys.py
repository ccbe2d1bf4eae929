from __future__ import annotations

import math
import struct

import pytest

from dlvsnap.decode.keys import KeyDecoder
from dlvsnap.memory import SparseMem
from dlvsnap.model import KeyType, RawKey, key_to_json, key_to_text


def dec(kind: int, size: int, le: bool = True, mem: SparseMem | None = None) -> KeyDecoder:
    return KeyDecoder(KeyType(kind, size, False), 8, le, mem or SparseMem())


@pytest.mark.parametrize(
    ("kind", "size", "raw", "want"),
    [
        (2, 8, (-5).to_bytes(8, "little", signed=True), -5),  # int
        (5, 4, (-7).to_bytes(4, "little", signed=True), -7),  # int32
        (10, 4, (0xFFFFFFFF).to_bytes(4, "little"), 0xFFFFFFFF),  # uint32
        (8, 1, b"\xff", 255),  # uint8
        (1, 1, b"\x01", True),  # bool
        (14, 8, struct.pack("<d", 1.5), 1.5),  # float64
        (13, 4, struct.pack("<f", -0.25), -0.25),  # float32
        (25, 3, b"abc", RawKey(b"abc")),  # struct: bytes
    ],
)
def test_scalar_kinds(kind: int, size: int, raw: bytes, want: object) -> None:
    assert dec(kind, size).from_value(raw) == want


def test_big_endian_int() -> None:
    assert dec(6, 8, le=False).from_value((258).to_bytes(8, "big")) == 258


def test_json_and_text_forms() -> None:
    assert key_to_json(RawKey(b"\x01\x02")) == {"hex": "0102"}
    assert key_to_json(float("-inf")) == {"float": "-inf"}
    assert key_to_json(math.pi) == math.pi
    assert key_to_text("x" * 50).endswith("…")
    assert key_to_text(True) == "true"
