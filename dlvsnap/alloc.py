"""What the Go runtime's allocator takes from the heap for one allocation: size classes,
malloc headers, pages. Pure data and arithmetic: no Delve, no I/O.

For ``mallocgc(size, typ)`` (what ``new``, ``newobject``, ``newarray``, ``make`` and
``append`` call), as docs/memory-accounting.md ("The allocator") cites it release by
release:

* 0 bytes take nothing (``runtime.zerobase``);
* a pointer-free object under 16 bytes goes to the tiny allocator, which packs such objects
  into shared 16-byte blocks (``reserved`` counts one block: an upper bound);
* an object of up to 32 KiB (from Go 1.22: 32 KiB - 8) takes the smallest size class that
  holds it; from Go 1.22, an object with pointers larger than ptr_size * ptr_bits bytes
  (512 on 64-bit ports, 128 on 32-bit ones) first gets an 8-byte malloc header;
* a larger one takes whole 8 KiB pages (its type is kept in its span: no header).

MemStats.HeapAlloc counts exactly these figures (class sizes and pages, mstats.go).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from dlvsnap.goversion import Release, release_of

# runtime/sizeclasses.go `class_to_size` (internal/runtime/gc `SizeClassToSize` from Go
# 1.25), class 0 (large objects) included so that the tuple equals the Go array. The same
# 68 classes in every release from go1.19 to go1.27 (compared file by file:
# docs/memory-accounting.md); tests/unit/test_alloc.py parses stored copies of the file.
CLASS_SIZES_GO1_19 = (
    *(0, 8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256),
    *(288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280),
    *(1408, 1536, 1792, 2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528),
    *(6784, 6912, 8192, 9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072),
    *(20480, 21760, 24576, 27264, 28672, 32768),
)

# (first release, class sizes), oldest first: a release uses the last entry at or before
# it (a release newer than the last checked one uses the newest table). A release that
# changes the classes is a new entry.
SIZE_CLASSES: tuple[tuple[Release, tuple[int, ...]], ...] = (((1, 19), CLASS_SIZES_GO1_19),)

PAGE_SIZE = 8192  # _PageSize: 1 << _PageShift (13)
MAX_SMALL_SIZE = 32768  # _MaxSmallSize (gc.MaxSmallSize)
TINY_SIZE = 16  # maxTinySize (_TinySize)
MALLOC_HEADER_SIZE = 8  # mallocHeaderSize (gc.MallocHeaderSize), on every port
# Go 1.22 put a small object's type in an 8-byte header inside the object instead of a
# heap bitmap (GOEXPERIMENT=allocheaders, on by default in go1.22; its off switch,
# noallocheaders, was removed in go1.23).
MALLOC_HEADERS_SINCE: Release = (1, 22)
NEWEST: Release = (1, 27)  # the newest release these rules were checked against


def class_sizes(release: Release) -> tuple[int, ...]:
    """The size classes (``class_to_size``) of a Go release."""
    table = SIZE_CLASSES[0][1]
    for first, sizes in SIZE_CLASSES:
        if release >= first:
            table = sizes
    return table


@dataclass(frozen=True)
class Allocator:
    """The allocator of one Go release on one port (pointer size)."""

    release: Release
    ptr_size: int = 8

    @property
    def headers(self) -> bool:
        """Whether objects with pointers past ``min_size_for_header`` carry a malloc header."""
        return self.release >= MALLOC_HEADERS_SINCE

    @property
    def min_size_for_header(self) -> int:
        """minSizeForMallocHeader: goarch.PtrSize * ptrBits (an exclusive minimum)."""
        return self.ptr_size * 8 * self.ptr_size

    @property
    def max_small(self) -> int:
        """The largest allocation served from a size class (mallocgc's test)."""
        return MAX_SMALL_SIZE - MALLOC_HEADER_SIZE if self.headers else MAX_SMALL_SIZE

    def _header(self, size: int, pointers: bool) -> int:
        return (
            MALLOC_HEADER_SIZE
            if pointers and self.headers and size > self.min_size_for_header
            else 0
        )

    def _class(self, size: int) -> int:
        sizes = class_sizes(self.release)
        return sizes[bisect.bisect_left(sizes, size)]

    def reserved(self, size: int, *, pointers: bool) -> int:
        """Bytes of heap that ``mallocgc(size)`` takes, the malloc header included, as
        MemStats.HeapAlloc counts them; ``pointers``: the type has pointers (is scanned)."""
        if size < 0:
            raise ValueError(f"an allocation of {size} bytes")
        if size == 0:
            return 0
        if size > self.max_small:
            return _pages(size)
        if not pointers and size < TINY_SIZE:
            return TINY_SIZE
        return self._class(size + self._header(size, pointers))

    def usable(self, size: int, *, pointers: bool) -> int:
        """roundupsize: the bytes an allocation of ``size`` bytes can use (its class, less
        the malloc header; whole pages when large), to which makeBucketArray and growslice
        round up their arrays."""
        if size <= self.max_small:
            extra = self._header(size, pointers)
            return self._class(size + extra) - extra
        return _pages(size)


def _pages(size: int) -> int:
    return -(-size // PAGE_SIZE) * PAGE_SIZE


def allocator_for(release: str, ptr_size: int) -> Allocator:
    """The allocator of a release as layouts carry it (``1.26``); an empty release (a
    layout loaded without one) is taken as the newest checked release."""
    return Allocator(release_of(release) if release else NEWEST, ptr_size)


_CLASS_TO_SIZE = re.compile(r"\b(?:class_to_size|SizeClassToSize)\s*=\s*\[\w+\]uint16\{([^}]*)\}")


def class_sizes_in(go_source: str) -> tuple[int, ...]:
    """The ``class_to_size`` array of a sizeclasses.go (runtime/ up to Go 1.24,
    internal/runtime/gc/ from 1.25): to check a release's classes against SIZE_CLASSES."""
    m = _CLASS_TO_SIZE.search(go_source)
    if m is None:
        raise ValueError("no class_to_size / SizeClassToSize array in this text")
    return tuple(int(x) for x in m[1].split(","))
