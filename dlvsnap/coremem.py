"""Memory of a process read straight from its ELF core file: a MemoryReader (memory.py).

What a core holds (docs/census-research.md, section 3):

* a Delve core (`dlvsnap dump`, Delve's `dump`): one PT_LOAD per readable mapping, complete
  (``p_filesz == p_memsz``), the notes and program headers at the **end** of the file (so
  ``e_phoff`` is read, never assumed), no NT_FILE;
* a kernel core (``GOTRACEBACK=crash``): the notes first, an NT_FILE note, and PT_LOADs that
  may hold only part of a mapping (``p_filesz < p_memsz``): the binary's text has its
  first page only, its read-only data none, a ``PROT_NONE`` reservation none.

The bytes a core does not hold come from the executable, in layers where a later layer
overrides an earlier one (as Delve's own core reader does): the NT_FILE entries that map
the executable, then the executable's own PT_LOADs, then the core's PT_LOADs with
``p_filesz > 0`` (only their first ``p_filesz`` bytes). Anything else (the rest of a
PT_LOAD, a hole between mappings) is unreadable: a read of it raises the MemoryReadError an
unmapped /proc/PID/mem read raises, it is never taken for zeros.

Both files are mmapped; the layers are flattened once into sorted, disjoint segments, each
a slice of one file. A read finds its segment by binary search and copies from the
mapping; one that crosses segments is put together from their pieces. ``read_each`` (many
same-size reads: a heap walk's 10^5 object headers) finds every segment at once with numpy
and copies the rows with one gather per file.
"""

from __future__ import annotations

import bisect
import contextlib
import heapq
import itertools
import mmap
import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dlvsnap.errors import MemoryReadError, TargetError

ET_EXEC, ET_DYN, ET_CORE = 2, 3, 4
PT_LOAD, PT_NOTE = 1, 4
PN_XNUM = 0xFFFF  # e_phnum when the count is in section 0's sh_info
NT_AUXV = 6
NT_FILE = 0x46494C45  # "FILE"
NT_DELVE_HEADER = 0x444C5645  # "DLVE": Delve's header note (its text names the entry point)
AT_ENTRY = 9

# read_each gathers rows with numpy from this many addresses up (fewer: one read each)
_GATHER_MIN = 16


@dataclass(frozen=True)
class Piece:
    """Bytes of the process at [start, end), at ``offset`` in the file ``source``."""

    start: int
    end: int
    source: int  # 0: the core, 1: the executable
    offset: int


@dataclass(frozen=True)
class _Elf:
    """What dlvsnap reads of an ELF file's header and program headers."""

    type: int
    little_endian: bool
    word: int  # 4 or 8
    entry: int
    loads: tuple[tuple[int, int, int, int], ...]  # (vaddr, offset, filesz, memsz)
    notes: tuple[tuple[int, int], ...]  # PT_NOTE (offset, filesz)


def _header(buf: Any, what: str) -> tuple[str, int, int, int, int, int, int]:
    """(byte order, word size, e_type, e_entry, e_phoff, e_phentsize, program header count)
    of the ELF file in ``buf``."""
    size = len(buf)
    if size < 52 or buf[:4] != b"\x7fELF":
        raise TargetError(f"{what}: not an ELF file")
    cls, data = buf[4], buf[5]
    if cls not in (1, 2) or data not in (1, 2):
        raise TargetError(f"{what}: not an ELF file (class {cls}, data {data})")
    e = "<" if data == 1 else ">"
    word = 8 if cls == 2 else 4
    if word == 8 and size < 64:
        raise TargetError(f"{what}: cut short in its ELF header")
    etype = struct.unpack_from(e + "H", buf, 16)[0]
    if word == 8:
        entry, phoff, shoff = struct.unpack_from(e + "QQQ", buf, 24)
        phentsize, phnum = struct.unpack_from(e + "HH", buf, 54)
    else:
        entry, phoff, shoff = struct.unpack_from(e + "III", buf, 24)
        phentsize, phnum = struct.unpack_from(e + "HH", buf, 42)
    if phnum == PN_XNUM:  # more than 65,534 program headers: section 0 holds the count
        info_at = shoff + (44 if word == 8 else 28)
        if shoff == 0 or info_at + 4 > size:
            raise TargetError(f"{what}: its program header count lies outside the file")
        phnum = struct.unpack_from(e + "I", buf, info_at)[0]
    return e, word, etype, entry, phoff, phentsize, phnum


def _parse_elf(buf: Any, what: str) -> _Elf:
    """The header and program headers of the ELF file in ``buf`` (TargetError when it is
    not one, or its headers lie outside it)."""
    e, word, etype, entry, phoff, phentsize, phnum = _header(buf, what)
    ph = "IIQQQQQQ" if word == 8 else "IIIIIIII"
    if phnum and (phentsize < struct.calcsize(e + ph) or phoff + phnum * phentsize > len(buf)):
        raise TargetError(
            f"{what}: its {phnum} program headers (at offset {phoff:#x}) lie outside the file "
            f"of {len(buf):,} bytes: cut short?"
        )
    loads: list[tuple[int, int, int, int]] = []
    notes: list[tuple[int, int]] = []
    for i in range(phnum):
        f = struct.unpack_from(e + ph, buf, phoff + i * phentsize)
        if word == 8:
            ptype, _flags, off, vaddr, _paddr, filesz, memsz, _align = f
        else:
            ptype, off, vaddr, _paddr, filesz, memsz, _flags, _align = f
        if ptype == PT_LOAD:
            loads.append((vaddr, off, filesz, memsz))
        elif ptype == PT_NOTE:
            notes.append((off, filesz))
    return _Elf(etype, e == "<", word, entry, tuple(loads), tuple(notes))


def _notes(buf: Any, elf: _Elf) -> Iterator[tuple[bytes, int, bytes]]:
    """(name, type, desc) of each note in the PT_NOTE segments (what lies in the file)."""
    e = "<" if elf.little_endian else ">"
    for off, filesz in elf.notes:
        pos, end = off, min(off + filesz, len(buf))
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from(e + "III", buf, pos)
            pos += 12
            name = bytes(buf[pos : min(pos + namesz, end)]).rstrip(b"\0")
            pos += (namesz + 3) & ~3
            if pos + descsz > end:
                return
            desc = bytes(buf[pos : pos + descsz])
            pos += (descsz + 3) & ~3
            yield name, ntype, desc


def _nt_file(desc: bytes, elf: _Elf) -> list[tuple[int, int, int, str]]:
    """An NT_FILE note's entries: (start, end, file offset in bytes, file name)."""
    e = "<" if elf.little_endian else ">"
    w = "Q" if elf.word == 8 else "I"
    n = elf.word
    if len(desc) < 2 * n:
        return []
    count, page = struct.unpack_from(e + w + w, desc, 0)
    if 2 * n + count * 3 * n > len(desc):
        return []
    names = desc[2 * n + count * 3 * n :].split(b"\0")
    out = []
    for i in range(count):
        start, end, ofs = struct.unpack_from(e + w * 3, desc, 2 * n + i * 3 * n)
        name = names[i].decode(errors="replace") if i < len(names) else ""
        out.append((start, end, ofs * page, name))
    return out


def _entry_point(buf: Any, elf: _Elf) -> int | None:
    """The program's entry point as the core records it: NT_AUXV's AT_ENTRY (kernel and
    Delve cores on linux/amd64), else the ``Entry Point:`` line of Delve's header note."""
    e = "<" if elf.little_endian else ">"
    w = "Q" if elf.word == 8 else "I"
    for name, ntype, desc in _notes(buf, elf):
        if ntype == NT_AUXV and name in (b"CORE", b""):  # Delve names no note
            for i in range(0, len(desc) - 2 * elf.word + 1, 2 * elf.word):
                key, value = struct.unpack_from(e + w + w, desc, i)
                if key == AT_ENTRY:
                    return int(value)
        if ntype == NT_DELVE_HEADER:
            for line in desc.decode(errors="replace").splitlines():
                if line.startswith("Entry Point:"):
                    with contextlib.suppress(ValueError):
                        return int(line.split(":", 1)[1].strip(), 0)
    return None


def flatten(layers: Sequence[Sequence[Piece]]) -> list[Piece]:
    """Disjoint pieces, sorted, where a later layer (and within a layer, a later piece)
    overrides what it overlaps; adjacent pieces that continue each other in one file are
    joined. O(n log n) over the pieces' boundaries."""
    ranked = [(p, r) for r, p in enumerate(p for layer in layers for p in layer if p.end > p.start)]
    bounds = sorted({b for p, _ in ranked for b in (p.start, p.end)})
    starts = sorted(ranked, key=lambda pr: pr[0].start)
    out: list[Piece] = []
    active: list[tuple[int, Piece]] = []  # a max-heap by rank (lazy: ended pieces popped late)
    k = 0
    for lo, hi in itertools.pairwise(bounds):
        while k < len(starts) and starts[k][0].start <= lo:
            p, r = starts[k]
            heapq.heappush(active, (-r, p))
            k += 1
        while active and active[0][1].end <= lo:
            heapq.heappop(active)
        if not active:
            continue
        p = active[0][1]
        off = p.offset + (lo - p.start)
        last = out[-1] if out else None
        if (
            last is not None
            and last.end == lo
            and last.source == p.source
            and last.offset + (last.end - last.start) == off
        ):
            out[-1] = Piece(last.start, hi, p.source, last.offset)
        else:
            out.append(Piece(lo, hi, p.source, off))
    return out


class CoreMem:
    """A process's memory from its ELF core file ``core_path`` and the executable
    ``binary_path`` it ran (see the module docstring). TargetError when the core is not an
    ELF core file, or was not dumped from that executable."""

    name = "core"

    def __init__(self, core_path: str | Path, binary_path: str | Path | None = None) -> None:
        self.path = str(core_path)
        self._maps: list[mmap.mmap] = []
        self._arrays: list[NDArray[np.uint8]] = []
        self._views: list[memoryview] = []
        try:
            core = self._open(core_path, "core file")
            elf = _parse_elf(core, f"core file {core_path}")
            if elf.type != ET_CORE:
                raise TargetError(f"{core_path}: an ELF file, not a core file (type {elf.type})")
            self.little_endian = elf.little_endian
            self.ptr_size = elf.word
            self.entry = _entry_point(core, elf)
            core_loads = [
                Piece(vaddr, vaddr + min(filesz, max(len(core) - off, 0)), 0, off)
                for vaddr, off, filesz, _ in elf.loads
                if filesz > 0
            ]
            # bytes a PT_LOAD says it holds past the end of the file: a core cut short
            self.cut_short = any(off + filesz > len(core) for _, off, filesz, _ in elf.loads)
            layers: list[list[Piece]] = [[], [], core_loads]
            if binary_path is not None:
                layers[0], layers[1] = self._binary_layers(core, elf, binary_path)
            self.segments = flatten(layers)
        except BaseException:
            self.close()
            raise
        self._starts = [p.start for p in self.segments]
        self._ends = [p.end for p in self.segments]
        self._np_starts = np.array(self._starts, dtype=np.uint64)
        self._np_lens = np.array([p.end - p.start for p in self.segments], dtype=np.uint64)
        self._np_offs = np.array([p.offset for p in self.segments], dtype=np.uint64)
        self._np_src = np.array([p.source for p in self.segments], dtype=np.int64)

    def _open(self, path: str | Path, what: str) -> mmap.mmap:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as e:
            raise TargetError(f"cannot read the {what} {path}: {e.strerror}") from None
        try:
            if os.fstat(fd).st_size == 0:
                raise TargetError(f"{path}: an empty file, not a {what}")
            mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        except OSError as e:
            raise TargetError(f"cannot map the {what} {path}: {e.strerror}") from None
        finally:
            os.close(fd)
        self._maps.append(mm)
        self._arrays.append(np.frombuffer(mm, dtype=np.uint8))
        self._views.append(memoryview(mm))
        return mm

    def _binary_layers(
        self, core: mmap.mmap, elf: _Elf, binary_path: str | Path
    ) -> tuple[list[Piece], list[Piece]]:
        """The executable's layers: its NT_FILE mappings, and its own PT_LOADs (for a
        position-dependent executable only: a PIE's addresses are relative)."""
        exe = self._open(binary_path, "executable")
        belf = _parse_elf(exe, f"executable {binary_path}")
        if belf.type not in (ET_EXEC, ET_DYN):
            raise TargetError(f"{binary_path}: not an executable (ELF type {belf.type})")
        if (belf.word, belf.little_endian) != (elf.word, elf.little_endian):
            raise TargetError(f"{self.path} and {binary_path} are of different architectures")
        if belf.type == ET_EXEC and self.entry is not None and self.entry != belf.entry:
            raise TargetError(
                f"{self.path} was not dumped from {binary_path}: the core's entry point is "
                f"{self.entry:#x}, the executable's {belf.entry:#x}"
            )
        size = len(exe)
        real = os.path.realpath(binary_path)
        files = []
        for name, ntype, desc in _notes(core, elf):
            if ntype == NT_FILE and name in (b"CORE", b""):
                for start, end, ofs, mapped in _nt_file(desc, elf):
                    fname = mapped.removesuffix(" (deleted)")
                    if fname != real and Path(fname).name != Path(binary_path).name:
                        continue  # another file (a shared library): not ours to read
                    have = min(end - start, max(size - ofs, 0))
                    files.append(Piece(start, start + have, 1, ofs))
        loads = []
        if belf.type == ET_EXEC:
            for vaddr, off, filesz, _ in belf.loads:
                have = min(filesz, max(size - off, 0))
                if have > 0:
                    loads.append(Piece(vaddr, vaddr + have, 1, off))
        return files, loads

    # -- the MemoryReader protocol -------------------------------------------------------------
    def read(self, addr: int, size: int) -> bytes:
        if size <= 0:
            return b""
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and addr + size <= self._ends[i]:
            p = self.segments[i]
            at = p.offset + addr - p.start
            return self._maps[p.source][at : at + size]
        out = bytearray(size)
        self._gather(addr, size, memoryview(out))
        return bytes(out)

    def _gather(self, addr: int, size: int, into: memoryview) -> None:
        """``size`` bytes at ``addr`` into ``into``, from the segments that follow each
        other there (MemoryReadError at the first byte none holds)."""
        i = bisect.bisect_right(self._starts, addr) - 1
        done = 0
        while done < size:
            at = addr + done
            if i < 0 or i >= len(self.segments) or not self._starts[i] <= at < self._ends[i]:
                cut = " (the file is cut short)" if self.cut_short else ""
                raise MemoryReadError(
                    f"read {size} bytes at {addr:#x}: {at:#x} is not in the core file{cut}"
                )
            p = self.segments[i]
            n = min(size - done, p.end - at)
            src = p.offset + at - p.start
            into[done : done + n] = self._views[p.source][src : src + n]
            done += n
            i += 1

    def read_many(self, regions: Sequence[tuple[int, int]]) -> bytearray:
        total = sum(size for _, size in regions)
        out = bytearray(total)
        view = memoryview(out)
        starts, ends, segs, views = self._starts, self._ends, self.segments, self._views
        off = 0
        for addr, size in regions:
            if size > 0:
                i = bisect.bisect_right(starts, addr) - 1
                if i >= 0 and addr + size <= ends[i]:
                    p = segs[i]
                    at = p.offset + addr - p.start
                    view[off : off + size] = views[p.source][at : at + size]
                else:
                    self._gather(addr, size, view[off : off + size])
            off += size
        return out

    def read_each(self, addrs: NDArray[np.uint64], size: int) -> bytearray:
        """``size`` bytes at each address, one after the other: the segments found with
        one searchsorted, the rows copied with one gather per file; an address whose bytes
        cross segments (or lie in none) is read alone."""
        n = len(addrs)
        out = bytearray(n * size)
        if n == 0 or size <= 0:
            return out
        if n < _GATHER_MIN:
            view = memoryview(out)
            for k, a in enumerate(np.asarray(addrs).tolist()):
                view[k * size : (k + 1) * size] = self.read(int(a), size)
            return out
        a = np.asarray(addrs).astype(np.uint64, copy=False)
        idx = np.searchsorted(self._np_starts, a, side="right").astype(np.int64) - 1
        found = idx >= 0
        seg = np.where(found, idx, 0)
        into = a - self._np_starts[seg]  # wraps where not found: masked below
        lens = self._np_lens[seg]
        fits = found & (lens >= np.uint64(size)) & (into <= lens - np.uint64(size))
        rows = np.frombuffer(out, dtype=np.uint8).reshape(n, size)
        src = self._np_src[seg]
        at = self._np_offs[seg] + into
        for s, arr in enumerate(self._arrays):
            mask = fits & (src == s)
            if not mask.any() or len(arr) < size:
                continue
            windows = np.lib.stride_tricks.sliding_window_view(arr, size)
            rows[mask] = windows[at[mask].astype(np.int64)]
            del windows
        del rows
        if not fits.all():
            view = memoryview(out)
            for k in np.flatnonzero(~fits).tolist():
                self._gather(int(a[k]), size, view[k * size : (k + 1) * size])
        return out

    def close(self) -> None:
        """Unmap both files (idempotent)."""
        for v in self._views:
            v.release()
        self._views, self._arrays = [], []
        for mm in self._maps:
            with contextlib.suppress(BufferError):  # a view someone still holds
                mm.close()
        self._maps = []

    def __enter__(self) -> CoreMem:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
