"""ProcMem's scattered reads on this test process's own memory (/proc/self/mem and
process_vm_readv on our own pid): every path returns the bytes at each address, in the
order asked."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from dlvsnap.errors import MemoryReadError
from dlvsnap.memory import ProcMem, SparseMem


def _memory() -> tuple[np.ndarray, int]:
    rng = np.random.default_rng(7)
    buf = rng.integers(0, 256, size=1 << 20, dtype=np.uint8)
    return buf, int(buf.ctypes.data)


def test_read_each_as_spans_and_one_by_one_agree_with_the_bytes() -> None:
    buf, base = _memory()
    rng = np.random.default_rng(3)
    # three clusters of close regions, far apart, shuffled: read as three spans
    offs = np.concatenate(
        [c + rng.choice(60_000, 200, replace=False) for c in (0, 400_000, 900_000)]
    )
    offs = rng.permutation(offs)
    addrs = (base + offs).astype(np.uint64)
    mem = ProcMem(os.getpid())
    try:
        assert mem._read_spans(addrs, 24) is not None
        got = mem.read_each(addrs, 24)
        want = b"".join(buf[o : o + 24].tobytes() for o in offs.tolist())
        assert got == want
        # few, far apart regions: one iovec each
        far = (base + np.array([0, 300_000, 700_000, 1_000_000])).astype(np.uint64)
        assert mem._read_spans(far, 16) is None
        assert mem.read_each(far, 16) == b"".join(
            buf[o : o + 16].tobytes() for o in (0, 300_000, 700_000, 1_000_000)
        )
    finally:
        mem.close()


def test_spread_out_regions_are_not_read_as_spans() -> None:
    buf, base = _memory()
    # 128 regions, one every 8 KiB: spans would be no fewer than the regions
    offs = np.arange(128) * 8192
    addrs = (base + offs).astype(np.uint64)
    mem = ProcMem(os.getpid())
    try:
        assert mem._read_spans(addrs, 8) is None
        assert mem.read_each(addrs, 8) == b"".join(buf[o : o + 8].tobytes() for o in offs)
    finally:
        mem.close()


def test_sparse_mem_indexes_many_segments_in_any_order_quickly() -> None:
    """300,000 segments added in descending order (as a hostile snapshot file lists its
    regions) are indexed once, not inserted one by one into a sorted list (quadratic: 18 s)."""
    n = 300_000
    t = time.perf_counter()
    mem = SparseMem()
    for i in reversed(range(n)):
        mem.add(64 * i, bytes([i & 0xFF]) * 16)
    assert mem.read(64 * 12_345 + 3, 4) == bytes([12_345 & 0xFF]) * 4
    assert mem.read_many([(64 * i, 1) for i in range(0, n, 1000)]) == bytes(
        i & 0xFF for i in range(0, n, 1000)
    )
    assert time.perf_counter() - t < 5


def test_sparse_mem_reads_inside_any_covering_segment() -> None:
    mem = SparseMem({100: bytes(range(50)), 110: b"\xaa" * 4, 300: b"x"})
    assert mem.read(105, 10) == bytes(range(5, 15))  # the segment at 110 is too short
    assert mem.read(110, 4) == b"\xaa" * 4  # the nearest segment is preferred
    assert mem.read(300, 1) == b"x"
    for addr, size in [(99, 2), (140, 20), (150, 1), (301, 1), (0, 1)]:
        with pytest.raises(MemoryReadError, match="unmapped read"):
            mem.read(addr, size)
    mem.add(140, bytes(20))  # added after reads
    assert mem.read(145, 10) == bytes(10)


def test_sparse_mem_read_limit_refuses_before_allocating() -> None:
    """A saved snapshot's keys may all point at one big region: what is handed out is
    capped, and a read_many over the cap is refused before its buffer exists."""
    mem = SparseMem({0: bytes(1 << 20)}, read_limit=3 << 20)
    mem.read(0, 1 << 20)
    mem.read_many([(0, 1 << 20)])
    with pytest.raises(MemoryReadError, match="more than 3,145,728 bytes"):
        mem.read_many([(0, 1 << 20)] * 1_000_000)
    with pytest.raises(MemoryReadError, match="more than 3,145,728 bytes"):
        mem.read_each(np.zeros(1_000_000, dtype=np.uint64), 1 << 20)
