"""ProcMem's scattered reads on this test process's own memory (/proc/self/mem and
process_vm_readv on our own pid): every path returns the bytes at each address, in the
order asked."""

from __future__ import annotations

import os

import numpy as np

from dlvsnap.memory import ProcMem


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
