"""Read struct types from a Go binary's DWARF (with pyelftools): the ground truth that
layouts are checked against. This reads the file on disk, never the process."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elftools.common.exceptions import ELFError
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


def read_structs(
    path: str | Path, want: Callable[[str], bool] = _map_type_name
) -> dict[str, DwarfStruct]:
    """Every named struct type at the top level of a compile unit for which ``want`` holds."""
    out: dict[str, DwarfStruct] = {}
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            if not elf.has_dwarf_info():
                raise TargetError(f"{Path(path).name} has no DWARF debug info")
            dwarf = elf.get_dwarf_info()
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
    except (OSError, ELFError) as e:
        raise TargetError(f"cannot read DWARF of {path}: {e}") from e
    return out


DW_AT_GO_RUNTIME_TYPE = 0x2904  # Go's DWARF extension: offset of the type from runtime.types


def runtime_type_offset(path: str | Path, type_name: str) -> int | None:
    """Where the runtime type descriptor of the type named ``type_name`` (as DWARF and Delve
    name it: ``map[string]int``, ``main.Index``) is, as an offset from ``runtime.types``."""
    want = type_name.encode()
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            if not elf.has_dwarf_info():
                raise TargetError(f"{Path(path).name} has no DWARF debug info")
            for cu in elf.get_dwarf_info().iter_CUs():
                for die in cu.get_top_DIE().iter_children():
                    attrs: dict[Any, Any] = die.attributes  # unknown attributes by number
                    name = attrs.get("DW_AT_name")
                    if name is None or name.value != want:
                        continue
                    off = attrs.get(DW_AT_GO_RUNTIME_TYPE)
                    if off is not None:
                        return int(off.value)
    except (OSError, ELFError) as e:
        raise TargetError(f"cannot read DWARF of {path}: {e}") from e
    return None
