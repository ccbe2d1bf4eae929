"""Identify the target before choosing layouts: Go version, GOEXPERIMENTs, GOARCH,
pointer size, byte order (from the ELF file and its Go build info), and the map
implementation (from the binary's DWARF types: its shape, not its version string).

A ``Binary`` reads one executable once: its sections, build info and symbol table when it
is opened, its DWARF when asked. ``binary(path)`` keeps one per file (until the file
changes): symbols are looked up for every map type, hasher and load bias of a session.
"""

from __future__ import annotations

import functools
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dlvsnap import dwarf
from dlvsnap.errors import TargetError
from dlvsnap.goversion import split_version
from dlvsnap.model import GoType
from dlvsnap.toolchain import cache_dir

_MACHINES = {
    3: "386",
    40: "arm",
    62: "amd64",
    183: "arm64",
    243: "riscv64",
    8: "mips",
    21: "ppc64",
    22: "s390x",
    258: "loong64",
}
BUILDINFO_MAGIC = b"\xff Go buildinf:"


@dataclass(frozen=True)
class TargetInfo:
    path: str
    go_version: str  # "go1.26.8"
    experiments: tuple[str, ...]
    goarch: str
    ptr_size: int
    little_endian: bool
    map_impl: str  # "swiss" | "classic", from the DWARF types (IMPL_TYPES)
    # built with the compiler's optimisations (no -gcflags=all='-N -l' in its build
    # settings): locals and parameters of optimised or inlined code may be gone
    optimised: bool = False

    def describe(self) -> str:
        exp = f" X:{','.join(self.experiments)}" if self.experiments else ""
        return f"{self.go_version}{exp} {self.goarch} ({self.map_impl} maps)"


# The runtime's map header type of each implementation, as DWARF names it (the first one
# the binary has decides: Delve's pkg/proc/mapiter.go also goes by the structs present).
IMPL_TYPES = {"internal/runtime/maps.Map": "swiss", "runtime.hmap": "classic"}


@dataclass(frozen=True)
class _Section:
    name: str
    offset: int
    size: int


def _elf_sections(data: bytes) -> tuple[int, bool, int, dict[str, _Section]]:
    if data[:4] != b"\x7fELF":
        raise TargetError("not an ELF executable (dlvsnap supports Linux binaries)")
    is64 = data[4] == 2
    le = data[5] == 1
    e = "<" if le else ">"
    machine = struct.unpack_from(e + "H", data, 18)[0]
    if is64:
        shoff = struct.unpack_from(e + "Q", data, 0x28)[0]
        shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", data, 0x3A)
    else:
        shoff = struct.unpack_from(e + "I", data, 0x20)[0]
        shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", data, 0x2E)
    raw: list[tuple[int, int, int]] = []
    for i in range(shnum):
        base = shoff + i * shentsize
        if is64:
            name, _t, _f, _a, off, size = struct.unpack_from(e + "IIQQQQ", data, base)
        else:
            name, _t, _f, _a, off, size = struct.unpack_from(e + "IIIIII", data, base)
        raw.append((name, off, size))
    if not raw:
        return machine, le, 8 if is64 else 4, {}
    _, stroff, strsize = raw[shstrndx]
    strtab = data[stroff : stroff + strsize]
    sections: dict[str, _Section] = {}
    for name_off, off, size in raw:
        end = strtab.find(b"\0", name_off)
        name = strtab[name_off:end].decode(errors="replace")
        sections[name] = _Section(name, off, size)
    return machine, le, 8 if is64 else 4, sections


def parse_buildinfo(sec: bytes) -> tuple[str, str]:
    """(version, modinfo) from a Go >= 1.18 ``.go.buildinfo`` section (inline strings)."""
    if not sec.startswith(BUILDINFO_MAGIC) or len(sec) < 32:
        raise TargetError("no Go build info: not a Go binary?")
    if not sec[15] & 0x2:
        raise TargetError(
            "Go build info in the pre-1.18 format: Go releases before 1.18 are not supported"
        )
    n, pos = dwarf.uleb128(sec, 32)
    version = sec[pos : pos + n].decode()
    pos += n
    n, pos = dwarf.uleb128(sec, pos)
    modinfo = sec[pos : pos + n].decode(errors="replace")
    return version, modinfo


class Binary:
    """One Go executable, read once. Raises TargetError for what is not an ELF Go binary
    with DWARF."""

    def __init__(self, path: str | Path) -> None:
        p = Path(path)
        self.path = str(p)
        try:
            data = p.read_bytes()
        except OSError as e:
            raise TargetError(f"cannot read {p}: {e.strerror}") from e
        self.machine, self.little_endian, self.ptr_size, sections = _elf_sections(data)
        bi = sections.get(".go.buildinfo")
        if bi is None:
            raise TargetError(f"{p.name}: no .go.buildinfo section: not a Go binary")
        self.version, self.modinfo = parse_buildinfo(data[bi.offset : bi.offset + bi.size])
        if ".debug_info" not in sections and ".zdebug_info" not in sections:
            raise TargetError(
                f"{p.name} has no DWARF debug info (built with -ldflags=-w or -s?): "
                "rebuild without them, for example with -gcflags=all='-N -l'"
            )
        # the symbol table and its names, kept (not the whole file)
        self._syms: NDArray[Any] | None = None
        self._strs = b""
        symtab, strtab = sections.get(".symtab"), sections.get(".strtab")
        if symtab is not None and strtab is not None:
            dt = _symbol_dtype(self.ptr_size, self.little_endian)
            self._syms = np.frombuffer(
                data, dtype=dt, count=symtab.size // dt.itemsize, offset=symtab.offset
            ).copy()
            self._strs = data[strtab.offset : strtab.offset + strtab.size]

    def symbols(self, names: Iterable[str]) -> dict[str, int]:
        """Addresses of these symbols in the symbol table (those it has): each name is
        found in .strtab, then its entry among the .symtab entries."""
        out: dict[str, int] = {}
        if self._syms is None:
            return out
        for name in names:
            at = self._strs.find(b"\0" + name.encode() + b"\0")
            if at < 0:
                continue
            hit = np.flatnonzero(self._syms["name"] == at + 1)
            if len(hit):
                out[name] = int(self._syms["value"][hit[0]])
        return out

    @functools.cached_property
    def map_impl(self) -> str:
        """ "swiss" or "classic": which runtime map header the DWARF has (IMPL_TYPES)."""
        present = dwarf.struct_types_present(self.path, IMPL_TYPES)
        impl = next((impl for name, impl in IMPL_TYPES.items() if name in present), None)
        if impl is None:
            raise TargetError(
                f"{Path(self.path).name}: its DWARF has neither internal/runtime/maps.Map "
                "nor runtime.hmap (no Go map runtime types)"
            )
        return impl

    @functools.cached_property
    def dwarf_structs(self) -> dict[str, dwarf.DwarfStruct]:
        """The runtime's and the linker's map struct types (dwarf.read_structs: a walk of
        every DIE, so done once per binary)."""
        return dwarf.read_structs(self.path)

    @functools.cached_property
    def type_index(self) -> dwarf.TypeIndex:
        """The DWARF's types by name and by runtime type (dwarf.read_type_index: a walk of
        every DIE, so done once per binary, when first asked; kept in the user's cache,
        $DLVSNAP_TYPES_CACHE=0 turns that off)."""
        off = os.environ.get("DLVSNAP_TYPES_CACHE") == "0"
        return dwarf.cached_type_index(self.path, None if off else cache_dir() / "types")

    def runtime_type_offset(self, type_name: str) -> int | None:
        """Where the runtime type of ``type_name`` is, as an offset from runtime.types."""
        return self.type_index.runtime_type_offset(type_name)

    def target_info(self, path: str) -> TargetInfo:
        """The target this binary is, named ``path`` (as the user or /proc gave it)."""
        experiments: list[str] = []
        goarch = _MACHINES.get(self.machine, f"machine{self.machine}")
        optimised = True
        for line in self.modinfo.splitlines():
            parts = line.split("\t")
            if len(parts) >= 2 and parts[0] == "build":
                k, _, v = parts[1].partition("=")
                if k == "-gcflags":
                    # -N -l for every package; "-N -l" alone is the main package's only
                    pattern, _, flags = v.strip('"').rpartition("=")
                    optimised = not (pattern == "all" and {"-N", "-l"} <= set(flags.split()))
                elif k == "GOEXPERIMENT" and v:
                    experiments = [x for x in v.split(",") if x]
                elif k == "GOARCH":
                    goarch = v
        ver, exp = split_version(self.version)
        return TargetInfo(
            path=path,
            go_version=ver,
            experiments=tuple(experiments or exp),
            goarch=goarch,
            ptr_size=self.ptr_size,
            little_endian=self.little_endian,
            map_impl=self.map_impl,
            optimised=optimised,
        )


class DwarfTypes:
    """A TypeCatalog of a running binary: a runtime type's address, less where the
    process has runtime.types (``base()``), is the DW_AT_go_runtime_type of its DWARF
    type. The base and the binary's DWARF are found when a type is first asked for; a
    catalog that cannot find them knows no type (keys are then shown as bytes)."""

    def __init__(self, exe: Binary, base: Callable[[], int]) -> None:
        self.exe = exe
        self._base_of = base
        self._base: int | None = None
        self._broken = False

    def at(self, addr: int) -> GoType | None:
        if self._broken:
            return None
        try:
            if self._base is None:
                self._base = self._base_of()
            index = self.exe.type_index
        except TargetError:
            self._broken = True
            return None
        return index.go_type(addr - self._base) if addr >= self._base else None


def _symbol_dtype(ptr_size: int, little_endian: bool) -> np.dtype[Any]:
    """An Elf64_Sym or Elf32_Sym entry (their fields are in different orders)."""
    e = "<" if little_endian else ">"
    if ptr_size == 8:
        return np.dtype(
            [
                ("name", e + "u4"),
                ("info", "u1"),
                ("other", "u1"),
                ("shndx", e + "u2"),
                ("value", e + "u8"),
                ("size", e + "u8"),
            ]
        )
    return np.dtype(
        [
            ("name", e + "u4"),
            ("value", e + "u4"),
            ("size", e + "u4"),
            ("info", "u1"),
            ("other", "u1"),
            ("shndx", e + "u2"),
        ]
    )


@functools.lru_cache(maxsize=16)
def _binary_at(path: str, _stamp: tuple[int, int, int, int]) -> Binary:
    return Binary(path)


def binary(path: str | Path) -> Binary:
    """The Binary of the file at ``path``, read once while the file stays the same (a
    program rebuilt in place is read again: the key holds its inode, size and mtime)."""
    p = os.path.realpath(path)
    try:
        st = os.stat(p)
    except OSError as e:
        raise TargetError(f"cannot read {path}: {e.strerror}") from e
    return _binary_at(p, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))


def identify(path: str | Path) -> TargetInfo:
    """Everything dlvsnap needs to know of a target before it reads memory."""
    return binary(path).target_info(str(Path(path)))


def elf_symbols(path: str | Path, names: Iterable[str]) -> dict[str, int]:
    """Addresses of these symbols in the binary at ``path`` ({} for what is not a readable
    Go binary): Binary.symbols, read once per file."""
    try:
        return binary(path).symbols(names)
    except TargetError:
        return {}


@dataclass(frozen=True)
class ProcessId:
    """Which process a snapshot was taken in: its pid, and when it started (this boot's id
    and the start time in clock ticks, /proc/PID/stat field 22), so that a pid the kernel
    gave again to another process tells them apart. ``start`` is "" where /proc does not
    say (the process is gone, or not ours to read)."""

    pid: int
    start: str = ""

    def same(self, other: ProcessId) -> bool | None:
        """Whether both are one process (None: cannot tell)."""
        if self.pid != other.pid:
            return False
        if self.start and other.start:
            return self.start == other.start
        return None


def process_id(pid: int) -> ProcessId:
    """The process ``pid`` as it is now (see ProcessId)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
        # the command name (field 2) is in parentheses and may hold anything: count after it
        start = stat[stat.rindex(")") + 2 :].split()[19]
    except (OSError, ValueError, IndexError):
        return ProcessId(pid)
    return ProcessId(pid, f"{boot}:{start}")
