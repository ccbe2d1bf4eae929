"""Target memory read through Delve (ExamineMemory): a MemoryReader (dlvsnap.memory) that
works wherever Delve does, a remote server included, chunked to the server's limit."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from dlvsnap.delve.client import DelveClient
from dlvsnap.errors import DlvsnapError, MemoryReadError
from dlvsnap.memory import concat


class DelveMem:
    """ExamineMemory through Delve, chunked to the server's limit (works remotely)."""

    name = "delve"

    def __init__(self, client: DelveClient) -> None:
        self.client = client

    def read(self, addr: int, size: int) -> bytes:
        if size == 0:
            return b""
        try:
            data = self.client.read_memory(addr, size)
        except DlvsnapError as e:
            raise MemoryReadError(f"read {size} bytes at {addr:#x}: {e}") from e
        if len(data) != size:
            raise MemoryReadError(f"short read at {addr:#x}: {len(data)} of {size} bytes")
        return data

    def read_many(self, regions: Sequence[tuple[int, int]]) -> bytearray:
        return concat(self, regions)

    def read_each(self, addrs: NDArray[np.uint64], size: int) -> bytearray:
        return concat(self, [(int(a), size) for a in addrs])
