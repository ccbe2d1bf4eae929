"""Memory readers: the only way decoders see the target.

``MemoryReader`` is a protocol with one method, ``read(addr, size) -> bytes``. Live readers
must only be used while Delve holds the target stopped.
"""

from __future__ import annotations

import os
from typing import Protocol

from dlvsnap.delve.client import DelveClient
from dlvsnap.errors import DlvsnapError, MemoryReadError


class MemoryReader(Protocol):
    name: str

    def read(self, addr: int, size: int) -> bytes: ...


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

    def close(self) -> None:
        os.close(self._fd)


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


class FakeMem:
    """Sparse memory for unit tests: segments of bytes at addresses."""

    name = "fake"

    def __init__(self, segments: dict[int, bytes] | None = None) -> None:
        self.segments: dict[int, bytes] = dict(segments or {})

    def add(self, addr: int, data: bytes) -> None:
        self.segments[addr] = data

    def read(self, addr: int, size: int) -> bytes:
        for base, data in self.segments.items():
            if base <= addr and addr + size <= base + len(data):
                return data[addr - base : addr - base + size]
        raise MemoryReadError(f"unmapped read of {size} bytes at {addr:#x}")


def choose_reader(client: DelveClient, pid: int, probe_addr: int, probe_size: int) -> MemoryReader:
    """/proc/PID/mem when it is readable and agrees with Delve on a probe; else Delve."""
    delve = DelveMem(client)
    try:
        proc = ProcMem(pid)
    except MemoryReadError:
        return delve
    try:
        same = proc.read(probe_addr, probe_size) == delve.read(probe_addr, probe_size)
    except MemoryReadError:
        same = False
    if not same:
        proc.close()
        return delve
    return proc
