"""Memory readers: the only way decoders see the target.

``MemoryReader`` is a protocol: ``read(addr, size) -> bytes``, ``read_many(regions) ->
bytearray`` (the regions' bytes one after the other: one system call per 1,024 regions on
the /proc path) and ``read_each(addrs, size)``. Here: ProcMem (/proc/PID/mem, local),
SparseMem (bytes held: saved snapshots, tests), RecordingMem (keeps what it read). The
reader that goes through Delve, DelveMem, lives beside the client (dlvsnap.delve.memory),
so that nothing here, and nothing the decoders import, loads the JSON-RPC stack. Live
readers must only be used while Delve holds the target stopped.
"""

from __future__ import annotations

import bisect
import ctypes
import ctypes.util
import os
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from dlvsnap.errors import MemoryReadError


class MemoryReader(Protocol):
    name: str

    def read(self, addr: int, size: int) -> bytes: ...

    def read_many(self, regions: Sequence[tuple[int, int]]) -> bytearray: ...

    def read_each(self, addrs: NDArray[np.uint64], size: int) -> bytearray:
        """``size`` bytes at each address, one after the other."""
        ...


def concat(mem: MemoryReader, regions: Sequence[tuple[int, int]]) -> bytearray:
    """``read_many`` as one ``read`` per region, for readers with nothing faster."""
    out = bytearray(sum(size for _, size in regions))
    off = 0
    for addr, size in regions:
        out[off : off + size] = mem.read(addr, size)
        off += size
    return out


class _IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


_IOVEC_NP = np.dtype([("base", np.uint64), ("len", np.uint64)])  # struct iovec on 64-bit


_IOV_MAX = 1024
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_vm_readv = getattr(_libc, "process_vm_readv", None)
if _vm_readv is not None:
    _vm_readv.restype = ctypes.c_ssize_t


# read_each reads regions as spans when there are at least this many, and a span's gaps
# between regions are at most this many bytes (see ProcMem._read_spans)
_SPAN_MIN_REGIONS = 64
_SPAN_GAP = 4096


class ProcMem:
    """The local fast path: pread on /proc/PID/mem (the target must be stopped)."""

    name = "proc"

    def __init__(self, pid: int) -> None:
        self.pid = pid
        try:
            self._fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
        except OSError as e:
            raise MemoryReadError(f"cannot open /proc/{pid}/mem: {e.strerror}") from e

    def read(self, addr: int, size: int) -> bytes:
        if size == 0:
            return b""
        try:
            data = os.pread(self._fd, size, addr)
        except OSError as e:
            raise MemoryReadError(f"read {size} bytes at {addr:#x}: {e.strerror}") from e
        if len(data) != size:
            raise MemoryReadError(f"short read at {addr:#x}: {len(data)} of {size} bytes")
        return data

    def read_many(self, regions: Sequence[tuple[int, int]]) -> bytearray:
        """Scattered regions straight into one buffer with process_vm_readv (same permission
        as /proc/PID/mem), falling back to one pread per region."""
        total = sum(size for _, size in regions)
        if _vm_readv is None or len(regions) < 4 or total == 0:
            return concat(self, regions)
        out = bytearray(total)
        buf = (ctypes.c_char * total).from_buffer(out)
        base = ctypes.addressof(buf)
        off = 0
        for i in range(0, len(regions), _IOV_MAX):
            batch = regions[i : i + _IOV_MAX]
            local, remote = (_IOVec * len(batch))(), (_IOVec * len(batch))()
            want = 0
            for j, (addr, size) in enumerate(batch):
                local[j].base, local[j].len = base + off + want, size
                remote[j].base, remote[j].len = addr, size
                want += size
            got = _vm_readv(self.pid, local, len(batch), remote, len(batch), 0)
            if got != want:
                # an unreadable region (or no permission): find it the slow way
                out[off : off + want] = concat(self, batch)
            off += want
        del buf
        return out

    def read_each(self, addrs: NDArray[np.uint64], size: int) -> bytearray:
        """Like read_many with one size, its iovecs built by numpy (no Python loop)."""
        n = len(addrs)
        if _vm_readv is None or ctypes.sizeof(ctypes.c_void_p) != 8 or n < 4 or size == 0:
            return self.read_many([(int(a), size) for a in addrs])
        near = self._read_spans(addrs, size)
        if near is not None:
            return near
        out = bytearray(n * size)
        buf = (ctypes.c_char * len(out)).from_buffer(out)
        local, remote = np.empty(n, _IOVEC_NP), np.empty(n, _IOVEC_NP)
        local["base"] = ctypes.addressof(buf) + np.arange(n, dtype=np.uint64) * size
        local["len"] = remote["len"] = size
        remote["base"] = addrs
        for i in range(0, n, _IOV_MAX):
            k = min(_IOV_MAX, n - i)
            got = _vm_readv(
                self.pid,
                ctypes.c_void_p(local.ctypes.data + i * 16),
                k,
                ctypes.c_void_p(remote.ctypes.data + i * 16),
                k,
                0,
            )
            if got != k * size:
                part = [(int(a), size) for a in addrs[i : i + k]]
                out[i * size : (i + k) * size] = concat(self, part)
        del buf
        return out

    def _read_spans(self, addrs: NDArray[np.uint64], size: int) -> bytearray | None:
        """Many regions lying close together (a swiss map's table headers, allocated side by
        side: 2,044 of them in 20 pages at 1,000,000 entries) read as the few spans that
        hold them: the kernel then walks a handful of iovecs instead of one per region.
        None when that would not save much, or a span (gaps included) is not readable."""
        n = len(addrs)
        if n < _SPAN_MIN_REGIONS:
            return None
        order = np.argsort(addrs, kind="stable")
        a = addrs[order].astype(np.uint64)
        end = a + np.uint64(size)
        cut = np.flatnonzero(a[1:] > end[:-1] + np.uint64(_SPAN_GAP)) + 1
        first = np.concatenate(([0], cut))
        last = np.concatenate((cut, [n])) - 1
        start, length = a[first], end[last] - a[first]
        if len(first) * 4 > n or int(length.sum()) > 16 * n * size:
            return None
        try:
            raw = self.read_many(list(zip(start.tolist(), length.tolist(), strict=True)))
        except MemoryReadError:
            return None
        span_off = np.concatenate(([0], np.cumsum(length)[:-1])).astype(np.uint64)
        span = np.repeat(np.arange(len(first)), last - first + 1)
        at = np.empty(n, dtype=np.int64)  # each region's offset in raw, in the order asked
        at[order] = (span_off[span] + (a - start[span])).astype(np.int64)
        windows = np.lib.stride_tricks.sliding_window_view(np.frombuffer(raw, np.uint8), size)
        out = bytearray(n * size)
        np.frombuffer(out, np.uint8).reshape(n, size)[:] = windows[at]
        return out

    def close(self) -> None:
        os.close(self._fd)


class SparseMem:
    """Memory as segments of bytes at addresses: unit tests, and saved snapshots decoded
    offline (snapfile.py).

    Segments may come in any order and overlap. They are indexed when first read after an
    addition: sorted by start (O(n log n)), with, for each start, the segment reaching
    furthest among those starting at or before it, so that a read finds a covering
    segment, or knows there is none, with one binary search. ``read_limit`` caps the bytes
    handed out over the reader's life (a saved snapshot's keys may all point at one big
    region): a read past it is refused before anything is allocated."""

    name = "sparse"

    def __init__(
        self, segments: dict[int, bytes] | None = None, *, read_limit: int | None = None
    ) -> None:
        self.segments: dict[int, bytes] = {}
        self.read_limit = read_limit
        self.handed_out = 0
        self._starts: list[int] = []
        self._reach: list[int] = []  # for starts[i]: the start of the furthest-reaching segment
        self._ends: list[int] = []  # ... and where it ends
        self._indexed = True
        for addr, data in (segments or {}).items():
            self.add(addr, data)

    def add(self, addr: int, data: bytes | bytearray) -> None:
        if self._indexed and (not self._starts or addr > self._starts[-1]):
            end = addr + len(data)  # in order (the usual case): extend the index
            if self._ends and self._ends[-1] >= end:
                self._reach.append(self._reach[-1])
                self._ends.append(self._ends[-1])
            else:
                self._reach.append(addr)
                self._ends.append(end)
            self._starts.append(addr)
        elif addr not in self.segments or len(self.segments[addr]) != len(data):
            self._indexed = False
        self.segments[addr] = bytes(data)

    def _index(self) -> None:
        self._starts = sorted(self.segments)
        self._reach, self._ends = [], []
        best, end = 0, -1
        for start in self._starts:
            e = start + len(self.segments[start])
            if e > end:
                best, end = start, e
            self._reach.append(best)
            self._ends.append(end)
        self._indexed = True

    @classmethod
    def of(cls, regions: Sequence[tuple[int, int]], data: bytes | bytearray) -> SparseMem:
        """The regions, read into ``data`` one after the other (by ``read_many``)."""
        out, off = cls(), 0
        for addr, size in regions:
            out.add(addr, data[off : off + size])
            off += size
        return out

    def _check(self, size: int) -> None:
        """Refuse a read that would hand out more than ``read_limit`` bytes in all."""
        if self.read_limit is not None and self.handed_out + size > self.read_limit:
            raise MemoryReadError(
                f"the reads ask for more than {self.read_limit:,} bytes "
                f"({sum(map(len, self.segments.values())):,} held)"
            )

    def read(self, addr: int, size: int) -> bytes:
        if not self._indexed:
            self._index()
        self._check(size)
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0:
            # the nearest segment starting at or before addr, else the one reaching furthest
            for base in (self._starts[i], self._reach[i]):
                data = self.segments[base]
                if addr + size <= base + len(data):
                    self.handed_out += size
                    return data[addr - base : addr - base + size]
        raise MemoryReadError(f"unmapped read of {size} bytes at {addr:#x}")

    def read_many(self, regions: Sequence[tuple[int, int]]) -> bytearray:
        self._check(sum(size for _, size in regions))  # before _concat allocates
        return concat(self, regions)

    def read_each(self, addrs: NDArray[np.uint64], size: int) -> bytearray:
        self._check(len(addrs) * size)
        return concat(self, [(int(a), size) for a in addrs])


class RecordingMem:
    """Reads through another reader and keeps every region read (to save a snapshot with
    the bytes it was decoded from, or to replay the reads raw in scripts/bench)."""

    def __init__(self, inner: MemoryReader) -> None:
        self.inner = inner
        self.name = inner.name
        self.regions: dict[int, bytes] = {}

    def _keep(self, regions: Sequence[tuple[int, int]], data: bytes | bytearray) -> None:
        off = 0
        for addr, size in regions:
            if len(self.regions.get(addr, b"")) < size:
                self.regions[addr] = bytes(data[off : off + size])
            off += size

    def read(self, addr: int, size: int) -> bytes:
        data = self.inner.read(addr, size)
        self._keep([(addr, size)], data)
        return data

    def read_many(self, regions: Sequence[tuple[int, int]]) -> bytearray:
        data = self.inner.read_many(regions)
        self._keep(regions, data)
        return data

    def read_each(self, addrs: NDArray[np.uint64], size: int) -> bytearray:
        data = self.inner.read_each(addrs, size)
        self._keep([(int(a), size) for a in addrs], data)
        return data
