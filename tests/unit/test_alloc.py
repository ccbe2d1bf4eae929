"""dlvsnap.alloc: the size classes against the runtime's own sizeclasses.go (stored copies
in tests/data/), and allocations whose sizes were worked out by hand from the runtime's
source (docs/memory-accounting.md cites each rule)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dlvsnap.alloc import (
    CLASS_SIZES_GO1_19,
    MAX_SMALL_SIZE,
    PAGE_SIZE,
    Allocator,
    allocator_for,
    class_sizes,
    class_sizes_in,
)

DATA = Path(__file__).resolve().parent.parent / "data"
# sizeclasses.go as each release ships it: runtime/ in go1.22.10, internal/runtime/gc/ in
# go1.27.3 (the file moved in go1.25 and its names were exported)
SIZECLASSES = {(1, 22): "sizeclasses-go1.22.10.go", (1, 27): "sizeclasses-go1.27.3.go"}

GO1_21, GO1_22, GO1_27 = Allocator((1, 21)), Allocator((1, 22)), Allocator((1, 27))


def _array(text: str, *names: str) -> list[int]:
    m = re.search(rf"\b(?:{'|'.join(names)})\s*=\s*\[[^\]]+\]uint\d+\{{([^}}]*)\}}", text)
    assert m, names
    return [int(x) for x in m[1].split(",")]


def _const(text: str, *names: str) -> int:
    m = re.search(rf"^\s*(?:{'|'.join(names)})\s*=\s*(\d+)$", text, re.M)
    assert m, names
    return int(m[1])


@pytest.mark.parametrize("release", sorted(SIZECLASSES), ids=lambda r: f"go{r[0]}.{r[1]}")
def test_the_class_table_is_the_runtimes(release: tuple[int, int]) -> None:
    text = (DATA / SIZECLASSES[release]).read_text()
    assert class_sizes_in(text) == class_sizes(release) == CLASS_SIZES_GO1_19
    assert _const(text, "_MaxSmallSize", "MaxSmallSize") == MAX_SMALL_SIZE
    assert 1 << _const(text, "_PageShift", "PageShift") == PAGE_SIZE


@pytest.mark.parametrize("release", sorted(SIZECLASSES), ids=lambda r: f"go{r[0]}.{r[1]}")
def test_a_size_takes_the_class_the_runtimes_lookup_tables_give(release: tuple[int, int]) -> None:
    """Every small size, looked up as runtime.roundupsize does (size_to_class8 up to
    1016 bytes, size_to_class128 above; pointer-free, so no header and, from 16 bytes,
    not the tiny allocator) against the classes alone."""
    text = (DATA / SIZECLASSES[release]).read_text()
    sizes = _array(text, "class_to_size", "SizeClassToSize")
    by8 = _array(text, "size_to_class8", "SizeToSizeClass8")
    by128 = _array(text, "size_to_class128", "SizeToSizeClass128")
    a = Allocator(release)
    for n in range(16, a.max_small + 1):
        cls = by8[-(-n // 8)] if n <= 1024 - 8 else by128[-(-(n - 1024) // 128)]
        assert a.reserved(n, pointers=False) == sizes[cls], n
        assert a.usable(n, pointers=False) == sizes[cls], n


# (allocator, size, pointers, bytes reserved): worked out by hand from runtime/malloc.go
# (mallocgc), runtime/msize.go (roundupsize), runtime/mcache.go (allocLarge) and the class
# table (class_to_size), as the comments say.
HAND = [
    # 0 bytes: mallocgc returns &zerobase and allocates nothing
    (GO1_22, 0, True, 0),
    # pointer-free and < maxTinySize (16): the tiny allocator; counted as its 16-byte block
    (GO1_22, 8, False, 16),
    # with pointers the tiny allocator is not used: class 1 is 8 bytes
    (GO1_22, 8, True, 8),
    # an hmap or a swiss Map (48 bytes, pointers): class 5 is exactly 48
    (GO1_22, 48, True, 48),
    # a swiss group of map[int]int, 8 + 8*16 = 136 bytes: class 11 (144)
    (GO1_27, 136, False, 144),
    # 512 with pointers is not > minSizeForMallocHeader (8*64 = 512): heap bits in the
    # span, no header, class 26 (512)
    (GO1_22, 512, True, 512),
    # 513 with pointers: 513 + 8 = 521 -> class 27 (576)
    (GO1_22, 513, True, 576),
    # before go1.22 no header: 513 -> 576 as well, but 1024 stays 1024 ...
    (GO1_21, 1024, True, 1024),
    # ... where go1.22 adds 8: 1032 -> class 33 (1152)
    (GO1_22, 1024, True, 1152),
    # pointer-free: never a header
    (GO1_22, 1024, False, 1024),
    # a classic map[string]*T bucket array of 4 buckets, 4*208 = 832 + 8 = 840 -> 896
    (GO1_22, 832, True, 896),
    # a full swiss table's groups of map[int]int, 128*136 = 17408 -> class 60 (18432)
    (GO1_27, 17408, False, 18432),
    # the largest class, pointer-free: from go1.22, 32768 > maxSmallSize -
    # mallocHeaderSize (32760) goes to allocLarge: 4 pages = 32768 (the same bytes)
    (GO1_22, 32768, False, 32768),
    # 32760 with pointers: + 8 = 32768, class 67
    (GO1_22, 32760, True, 32768),
    # 32761 with pointers: large (no header in a large object): 4 pages
    (GO1_22, 32761, True, 32768),
    # go1.21: 32768 is small (size <= maxSmallSize), class 67
    (GO1_21, 32768, True, 32768),
    # one byte more: 5 pages
    (GO1_21, 32769, False, 40960),
    # classic map[int]int at B=14: (16384 + 1024) buckets * 144 = 2,506,752 = 306 pages
    (GO1_22, 2_506_752, False, 2_506_752),
    # and one byte more: 307 pages
    (GO1_22, 2_506_753, False, 307 * 8192),
]


@pytest.mark.parametrize(("a", "size", "pointers", "want"), HAND)
def test_hand_worked_allocations(a: Allocator, size: int, pointers: bool, want: int) -> None:
    assert a.reserved(size, pointers=pointers) == want


def test_32_bit_ports_put_the_header_past_128_bytes() -> None:
    """minSizeForMallocHeader is goarch.PtrSize * ptrBits: 4 * 32 = 128 on a 32-bit port;
    129 bytes with pointers + 8 = 137 -> class 11 (144); 137 + 8 = 145 -> class 12 (160)."""
    a = Allocator((1, 22), ptr_size=4)
    assert a.min_size_for_header == 128
    assert a.reserved(128, pointers=True) == 128
    assert a.reserved(129, pointers=True) == 144
    assert a.reserved(137, pointers=True) == 160  # 145 -> class 12 (160)
    assert Allocator((1, 21), ptr_size=4).reserved(137, pointers=True) == 144


def test_usable_is_roundupsize() -> None:
    """What makeBucketArray and growslice size their arrays to: the class less the header
    the allocation will carry."""
    assert GO1_22.usable(832, pointers=True) == 896 - 8
    assert GO1_21.usable(832, pointers=True) == 896
    assert GO1_22.usable(17408, pointers=False) == 18432
    assert GO1_22.usable(40000, pointers=True) == 40960  # large: pages, no header
    # never less than asked for
    for n in range(0, 70000, 7):
        assert GO1_22.usable(n, pointers=True) >= n


def test_a_release_is_read_as_layouts_carry_it() -> None:
    assert allocator_for("1.21", 8) == GO1_21
    assert allocator_for("1.26", 4) == Allocator((1, 26), 4)
    assert allocator_for("", 8).headers  # no release: the newest rules
    with pytest.raises(ValueError):
        GO1_22.reserved(-1, pointers=False)
    with pytest.raises(ValueError, match="no class_to_size"):
        class_sizes_in("package runtime\n")
