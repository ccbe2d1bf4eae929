"""Read struct types from a Go binary's DWARF (with pyelftools): the ground truth that
layouts are checked against. This reads the file on disk, never the process."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.dwarf.dwarfinfo import DebugSectionDescriptor, DWARFInfo
from elftools.elf.elffile import ELFFile

from dlvsnap.errors import TargetError


@dataclass(frozen=True)
class DwarfMember:
    name: str
    offset: int
    size: int
    type_name: str


@dataclass(frozen=True)
class DwarfStruct:
    name: str
    size: int
    members: tuple[DwarfMember, ...]

    def member(self, name: str) -> DwarfMember | None:
        return next((m for m in self.members if m.name == name), None)


# The runtime's own structs and the linker's synthesised per-map-type ones.
MAP_TYPE_NAMES = re.compile(
    r"^(runtime\.(hmap|mapextra|maptype|_type)|internal/runtime/maps\.(Map|table|groupsReference)"
    r"|internal/abi\.(Type|MapType|SwissMapType|OldMapType)"
    r"|hash<.*>|bucket<.*>|map<.*>|table<.*>|groupReference<.*>|noalg\.map\.group\[.*)$"
)


def _name(die: Any) -> str:
    a = die.attributes.get("DW_AT_name")
    return a.value.decode(errors="replace") if a else ""


def _type_die(die: Any) -> Any:
    return die.get_DIE_from_attribute("DW_AT_type") if "DW_AT_type" in die.attributes else None


def _size(die: Any) -> int:
    seen = 0
    while die is not None and seen < 16:
        if "DW_AT_byte_size" in die.attributes:
            return int(die.attributes["DW_AT_byte_size"].value)
        if die.tag in ("DW_TAG_pointer_type",):
            return int(die.cu["address_size"])
        die = _type_die(die)
        seen += 1
    return -1


def _offset(die: Any) -> int:
    a = die.attributes.get("DW_AT_data_member_location")
    if a is None:
        return 0
    if isinstance(a.value, int):
        return a.value
    # a location expression: DW_OP_plus_uconst N
    v = list(a.value)
    if v and v[0] == 0x23:
        n = shift = 0
        for b in v[1:]:
            n |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
        return n
    return -1


def _map_type_name(name: str) -> bool:
    return MAP_TYPE_NAMES.match(name) is not None


@contextlib.contextmanager
def _dwarf_info(path: str | Path) -> Iterator[DWARFInfo]:
    """The binary's DWARF; a TargetError when it has none or the file cannot be read (also
    for what reading it in the ``with`` block raises)."""
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            if not elf.has_dwarf_info():
                raise TargetError(f"{Path(path).name} has no DWARF debug info")
            yield elf.get_dwarf_info()
    except (OSError, ELFError) as e:
        raise TargetError(f"cannot read DWARF of {path}: {e}") from e


def read_structs(
    path: str | Path, want: Callable[[str], bool] = _map_type_name
) -> dict[str, DwarfStruct]:
    """Every named struct type at the top level of a compile unit for which ``want`` holds."""
    out: dict[str, DwarfStruct] = {}
    with _dwarf_info(path) as dwarf:
        for cu in dwarf.iter_CUs():
            for die in cu.get_top_DIE().iter_children():
                if die.tag != "DW_TAG_structure_type":
                    continue
                name = _name(die)
                if not name or name in out or not want(name):
                    continue
                members = []
                for m in die.iter_children():
                    if m.tag != "DW_TAG_member":
                        continue
                    t = _type_die(m)
                    members.append(
                        DwarfMember(_name(m), _offset(m), _size(t), _name(t) if t else "")
                    )
                size = (
                    int(die.attributes["DW_AT_byte_size"].value)
                    if ("DW_AT_byte_size" in die.attributes)
                    else -1
                )
                out[name] = DwarfStruct(name, size, tuple(members))
    return out


DW_AT_GO_RUNTIME_TYPE = 0x2904  # Go's DWARF extension: offset of the type from runtime.types


def runtime_type_offset(path: str | Path, type_name: str) -> int | None:
    """Where the runtime type descriptor of the type named ``type_name`` (as DWARF and Delve
    name it: ``map[string]int``, ``main.Index``) is, as an offset from ``runtime.types``."""
    want = type_name.encode()
    with _dwarf_info(path) as dwarf:
        for cu in dwarf.iter_CUs():
            for die in cu.get_top_DIE().iter_children():
                attrs: dict[Any, Any] = die.attributes  # unknown attributes by number
                name = attrs.get("DW_AT_name")
                if name is None or name.value != want:
                    continue
                off = attrs.get(DW_AT_GO_RUNTIME_TYPE)
                if off is not None:
                    return int(off.value)
    return None


# DWARF numbers the fast path below reads (DWARF 4 and 5, section 7).
_DW_TAG_STRUCTURE_TYPE = 0x13
_DW_AT_NAME = 0x03
_DW_FORM_STRING = 0x08
_DW_FORM_IMPLICIT_CONST = 0x21


def uleb128(b: bytes, pos: int) -> tuple[int, int]:
    """An unsigned LEB128 at ``pos`` (DWARF's, and Go's uvarint in build info): the value
    and the position after it."""
    x = shift = 0
    while True:
        c = b[pos]
        pos += 1
        x |= (c & 0x7F) << shift
        if c < 0x80:
            return x, pos
        shift += 7


def _uleb_bytes(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _struct_name_codes(abbrev: bytes) -> list[int] | None:
    """The abbreviation codes of the struct types in one abbreviation table when each
    starts with its name as an inline string (DW_AT_name, DW_FORM_string first, as Go's
    linker writes every struct: cmd/internal/dwarf, DW_ABRV_STRUCTTYPE); None when a
    struct's abbreviation does not, and a name cannot be found by its bytes."""
    codes: list[int] = []
    pos = 0
    while pos < len(abbrev):
        code, pos = uleb128(abbrev, pos)
        if code == 0:  # the end of this table
            break
        tag, pos = uleb128(abbrev, pos)
        pos += 1  # DW_CHILDREN_yes/no
        first: tuple[int, int] | None = None
        while True:
            name, pos = uleb128(abbrev, pos)
            form, pos = uleb128(abbrev, pos)
            if form == _DW_FORM_IMPLICIT_CONST:
                _, pos = uleb128(abbrev, pos)  # an SLEB128: skipped the same way
            if (name, form) == (0, 0):
                break
            first = first or (name, form)
        if tag == _DW_TAG_STRUCTURE_TYPE:
            if first != (_DW_AT_NAME, _DW_FORM_STRING):
                return None
            codes.append(code)
    return codes


def _section_bytes(sec: DebugSectionDescriptor) -> bytes:
    """A DWARF section's bytes, decompressed (pyelftools holds them in a stream)."""
    sec.stream.seek(0)
    return sec.stream.read(sec.size)


def struct_types_present(path: str | Path, names: Collection[str]) -> set[str]:
    """Which of these struct types the binary's DWARF has, in milliseconds.

    Walking every DIE (``read_structs``) takes 0.5 s for a 2 MB Go binary, and grows with
    it: Go's DIEs carry no DW_AT_sibling, so a walk decodes every function's children too.
    A Go struct DIE is its abbreviation code and then its name, inline: those bytes are
    searched for in .debug_info. Where the DWARF is not laid out that way (several
    abbreviation tables, a struct abbreviation that does not start with an inline name),
    the DIEs are walked."""
    with _dwarf_info(path) as dwarf:
        tables = {cu["debug_abbrev_offset"] for cu in dwarf.iter_CUs()}
        if len(tables) == 1 and dwarf.debug_abbrev_sec and dwarf.debug_info_sec:
            abbrev = _section_bytes(dwarf.debug_abbrev_sec)
            codes = _struct_name_codes(abbrev[tables.pop() :])
            if codes:
                info = _section_bytes(dwarf.debug_info_sec)
                return {
                    n
                    for n in names
                    if any(_uleb_bytes(c) + n.encode() + b"\0" in info for c in codes)
                }
    return set(read_structs(path, lambda n: n in names))
