"""Identify the target before choosing layouts: Go version, GOEXPERIMENTs, GOARCH,
pointer size, byte order (from the ELF file and its Go build info), and the map
implementation (from the binary's DWARF types, as Delve lists them).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlvsnap.delve.client import DelveClient
from dlvsnap.errors import TargetError
from dlvsnap.goversion import split_version

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
    map_impl: str = ""  # "swiss" | "classic", from DWARF types

    def describe(self) -> str:
        exp = f" X:{','.join(self.experiments)}" if self.experiments else ""
        return f"{self.go_version}{exp} {self.goarch} ({self.map_impl or '?'} maps)"


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


def _uvarint(b: bytes, pos: int) -> tuple[int, int]:
    x = shift = 0
    while True:
        c = b[pos]
        pos += 1
        x |= (c & 0x7F) << shift
        if c < 0x80:
            return x, pos
        shift += 7


def parse_buildinfo(sec: bytes) -> tuple[str, str]:
    """(version, modinfo) from a Go >= 1.18 ``.go.buildinfo`` section (inline strings)."""
    if not sec.startswith(BUILDINFO_MAGIC) or len(sec) < 32:
        raise TargetError("no Go build info: not a Go binary?")
    if not sec[15] & 0x2:
        raise TargetError(
            "Go build info in the pre-1.18 format: Go releases before 1.18 are not supported"
        )
    n, pos = _uvarint(sec, 32)
    version = sec[pos : pos + n].decode()
    pos += n
    n, pos = _uvarint(sec, pos)
    modinfo = sec[pos : pos + n].decode(errors="replace")
    return version, modinfo


def identify(path: str | Path) -> TargetInfo:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise TargetError(f"cannot read {p}: {e.strerror}") from e
    machine, le, ptr, sections = _elf_sections(data)
    bi = sections.get(".go.buildinfo")
    if bi is None:
        raise TargetError(f"{p.name}: no .go.buildinfo section: not a Go binary")
    version, modinfo = parse_buildinfo(data[bi.offset : bi.offset + bi.size])
    if ".debug_info" not in sections and ".zdebug_info" not in sections:
        raise TargetError(
            f"{p.name} has no DWARF debug info (built with -ldflags=-w or -s?): "
            "rebuild without them, for example with -gcflags=all='-N -l'"
        )
    experiments: list[str] = []
    goarch = _MACHINES.get(machine, f"machine{machine}")
    for line in modinfo.splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[0] == "build":
            k, _, v = parts[1].partition("=")
            if k == "GOEXPERIMENT" and v:
                experiments = [x for x in v.split(",") if x]
            elif k == "GOARCH":
                goarch = v
    ver, exp = split_version(version)
    experiments = experiments or list(exp)
    return TargetInfo(
        path=str(p),
        go_version=ver,
        experiments=tuple(experiments),
        goarch=goarch,
        ptr_size=ptr,
        little_endian=le,
    )


def detect_map_impl(client: DelveClient) -> str:
    """Swiss when DWARF has internal/runtime/maps.Map, classic when it has runtime.hmap."""
    types = set(client.list_types(r"^(internal/runtime/maps\.Map|runtime\.hmap)$"))
    if "internal/runtime/maps.Map" in types:
        return "swiss"
    if "runtime.hmap" in types:
        return "classic"
    raise TargetError("the binary's DWARF has neither internal/runtime/maps.Map nor runtime.hmap")


def elf_symbols(path: str | Path, names: Iterable[str]) -> dict[str, int]:
    """Addresses of these symbols in the binary's symbol table (those it has): each name is
    found in .strtab, then its entry among the .symtab entries, read as one numpy array."""
    try:
        data = Path(path).read_bytes()
        _, le, ptr, sections = _elf_sections(data)
    except (OSError, TargetError):
        return {}
    symtab, strtab = sections.get(".symtab"), sections.get(".strtab")
    if symtab is None or strtab is None:
        return {}
    e = "<" if le else ">"
    fields = (
        [
            ("name", e + "u4"),
            ("info", "u1"),
            ("other", "u1"),
            ("shndx", e + "u2"),
            ("value", e + "u8"),
            ("size", e + "u8"),
        ]
        if ptr == 8
        else [
            ("name", e + "u4"),
            ("value", e + "u4"),
            ("size", e + "u4"),
            ("info", "u1"),
            ("other", "u1"),
            ("shndx", e + "u2"),
        ]
    )
    dt = np.dtype(fields)
    syms = np.frombuffer(data, dtype=dt, count=symtab.size // dt.itemsize, offset=symtab.offset)
    strs = data[strtab.offset : strtab.offset + strtab.size]
    out: dict[str, int] = {}
    for name in names:
        at = strs.find(b"\0" + name.encode() + b"\0")
        if at < 0:
            continue
        hit = np.flatnonzero(syms["name"] == at + 1)
        if len(hit):
            out[name] = int(syms["value"][hit[0]])
    return out
