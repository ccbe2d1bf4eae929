"""Read struct types from a Go binary's DWARF (with pyelftools): the ground truth that
layouts are checked against. This reads the file on disk, never the process."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import marshal
import os
import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.dwarf.dwarfinfo import DebugSectionDescriptor, DWARFInfo
from elftools.elf.elffile import ELFFile

from dlvsnap.errors import TargetError
from dlvsnap.kinds import Kind
from dlvsnap.model import GoField, GoType


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


DW_AT_GO_KIND = 0x2900  # Go's DWARF extensions: the type's reflect.Kind,
DW_AT_GO_KEY = 0x2901  # a map's key type,
DW_AT_GO_ELEM = 0x2902  # a map's, slice's or chan's element type,
DW_AT_GO_RUNTIME_TYPE = 0x2904  # and the offset of its runtime type from runtime.types
_DW_OP_ADDR = 0x03
_REF_FORMS_CU = (
    "DW_FORM_ref1",
    "DW_FORM_ref2",
    "DW_FORM_ref4",
    "DW_FORM_ref8",
    "DW_FORM_ref_udata",
)
# A key type is described this deep (a struct in an array in a struct...) and with this many
# parts at most; deeper or larger parts are left undescribed (shown as bytes).
MAX_TYPE_DEPTH = 6
MAX_TYPE_PARTS = 1024


@dataclass(frozen=True)
class TypeDie:
    """What a type DIE says: enough to describe a Go type (GoType) without the file."""

    tag: str
    name: str
    size: int
    kind: int  # DW_AT_go_kind, or -1
    target: int  # DW_AT_type, as a .debug_info offset, or -1
    count: int  # arrays: the element count
    members: tuple[tuple[str, int, int], ...]  # structs: name, offset, type DIE
    elem: int = -1  # maps, slices, chans: DW_AT_go_elem (a DIE offset), or -1
    key: int = -1  # maps: DW_AT_go_key


@dataclass(frozen=True)
class GlobalVar:
    """A package variable: its name as Delve spells it (``main.srv``), where the binary
    puts it (add the load bias for the process's address) and its type DIE."""

    name: str
    addr: int
    type: int


def _ref(die: Any, attr: Any) -> int:
    """A reference attribute as an offset in .debug_info (CU-relative forms made absolute)."""
    return int(attr.value) + (die.cu.cu_offset if attr.form in _REF_FORMS_CU else 0)


class TypeIndex:
    """The binary's type DIEs that describe Go types, read in one walk: by name, by their
    runtime type (DW_AT_go_runtime_type, an offset from runtime.types), and as GoTypes."""

    def __init__(
        self,
        dies: dict[int, TypeDie],
        by_runtime: dict[int, int],
        ptr_size: int,
        variables: tuple[GlobalVar, ...] = (),
    ):
        self.dies = dies
        self.by_runtime = by_runtime  # runtime type offset -> DIE offset
        self.by_name: dict[str, int] = {}  # name -> runtime type offset (the first DIE's)
        self.runtime_of: dict[int, int] = {}  # DIE offset -> runtime type offset
        for off, die_off in by_runtime.items():
            self.by_name.setdefault(dies[die_off].name, off)
            self.runtime_of.setdefault(die_off, off)
        self.die_by_name: dict[str, int] = {}  # name -> DIE offset (the first named so)
        for die_off, d in dies.items():
            if d.name:
                self.die_by_name.setdefault(d.name, die_off)
        self.variables = variables  # package variables with a static address
        self.ptr_size = ptr_size
        self._described: dict[int, GoType | None] = {}

    def runtime_type_offset(self, type_name: str) -> int | None:
        """Where the runtime type of the type named ``type_name`` (as DWARF and Delve name
        it: ``map[string]int``, ``main.Index``) is, as an offset from ``runtime.types``."""
        return self.by_name.get(type_name)

    def go_type(self, runtime_offset: int) -> GoType | None:
        """The type whose runtime type is at ``runtime_offset`` from runtime.types, as far
        as MAX_TYPE_DEPTH and MAX_TYPE_PARTS go; None when the DWARF has no such type."""
        if runtime_offset not in self._described:
            die = self.by_runtime.get(runtime_offset)
            self._described[runtime_offset] = (
                None if die is None else self._describe(die, 0, [MAX_TYPE_PARTS])
            )
        return self._described[runtime_offset]

    def _describe(self, off: int, depth: int, budget: list[int]) -> GoType:
        d = self.dies.get(off)
        seen = 0
        # named types: a typedef of the struct (or of runtime.eface/iface for interfaces)
        while d is not None and d.tag == "DW_TAG_typedef" and d.kind != Kind.INTERFACE:
            d = self.dies.get(d.target)
            seen += 1
            if seen > 8:
                d = None
        budget[0] -= 1
        if d is None:
            return GoType("?", Kind.INVALID, 0)
        kind = d.kind if d.kind >= 0 else _kind_of_tag(d)
        name, size = reflect_name(d.name), d.size
        if depth >= MAX_TYPE_DEPTH or budget[0] < 0:
            kind = Kind.INVALID  # undescribed: decoded as bytes
        fields: tuple[GoField, ...] = ()
        elem, methods = None, False
        if kind == Kind.STRUCT:
            fields = tuple(
                GoField(n, o, self._describe(t, depth + 1, budget)) for n, o, t in d.members
            )
        elif kind == Kind.ARRAY:
            elem = self._describe(d.target, depth + 1, budget)
        elif kind == Kind.INTERFACE:
            impl = self.dies.get(d.target)
            methods = impl is not None and impl.name == "runtime.iface"
            size = 2 * self.ptr_size
        elif kind in (Kind.POINTER, Kind.UNSAFE_POINTER, Kind.CHAN, Kind.MAP, Kind.FUNC):
            size = self.ptr_size
        return GoType(name, kind, size, fields, elem, d.count, methods)


def _array_count(subrange: Any) -> int:
    n = subrange.attributes.get("DW_AT_count")
    if n is not None:
        return int(n.value)
    hi = subrange.attributes.get("DW_AT_upper_bound")
    return int(hi.value) + 1 if hi is not None else 0


def _kind_of_tag(d: TypeDie) -> int:
    return {
        "DW_TAG_structure_type": Kind.STRUCT,
        "DW_TAG_array_type": Kind.ARRAY,
        "DW_TAG_pointer_type": Kind.POINTER,
    }.get(d.tag, Kind.INVALID)


# A package path as DWARF spells it in a type name (``net/url.Values``): reflect, and %#v,
# name the package by its last element (``url.Values``).
_PACKAGE_PATH = re.compile(r"[\w.~%-]*/")


def reflect_name(dwarf_name: str) -> str:
    """A type's name as reflect (and so fmt's %#v) prints it: package paths cut to their
    last element. (A package whose name is not its path's last element, ``yaml.v3``, is
    named by the path's element.)"""
    return _PACKAGE_PATH.sub("", dwarf_name)


_TYPE_TAGS = frozenset(
    [
        "DW_TAG_base_type",
        "DW_TAG_structure_type",
        "DW_TAG_array_type",
        "DW_TAG_pointer_type",
        "DW_TAG_typedef",
        "DW_TAG_subroutine_type",
    ]
)


def _go_refs(die: Any, attrs: dict[Any, Any]) -> tuple[int, int]:
    """A type's DW_AT_go_elem and DW_AT_go_key, as DIE offsets (-1: none)."""
    elem, key = attrs.get(DW_AT_GO_ELEM), attrs.get(DW_AT_GO_KEY)
    return (-1 if elem is None else _ref(die, elem)), (-1 if key is None else _ref(die, key))


def _static_addr(die: Any, ptr_size: int) -> int | None:
    """A variable's address when its location is one DW_OP_addr (a package variable)."""
    loc = die.attributes.get("DW_AT_location")
    if loc is None or isinstance(loc.value, int):
        return None
    ops = bytes(loc.value)
    if len(ops) != 1 + ptr_size or ops[0] != _DW_OP_ADDR:
        return None
    return int.from_bytes(ops[1:], "little" if die.dwarfinfo.config.little_endian else "big")


def read_type_index(path: str | Path) -> TypeIndex:
    """Every type DIE at the top level of a compile unit, and every package variable with
    a static address (one walk of the DIEs, about 0.5 s for a 2 MB binary: done once per
    binary, and only when a key or a census needs it)."""
    dies: dict[int, TypeDie] = {}
    by_runtime: dict[int, int] = {}
    variables: list[GlobalVar] = []
    ptr_size = 8
    with _dwarf_info(path) as dwarf:
        for cu in dwarf.iter_CUs():
            ptr_size = int(cu["address_size"])
            for die in cu.get_top_DIE().iter_children():
                if die.tag == "DW_TAG_variable":
                    t = die.attributes.get("DW_AT_type")
                    addr = _static_addr(die, ptr_size)
                    if t is not None and addr is not None:
                        variables.append(GlobalVar(_name(die), addr, _ref(die, t)))
                    continue
                if die.tag not in _TYPE_TAGS:
                    continue
                attrs: dict[Any, Any] = die.attributes  # Go's own attributes by number
                t = attrs.get("DW_AT_type")
                kind = attrs.get(DW_AT_GO_KIND)
                count, members = 0, []
                for c in die.iter_children():
                    if c.tag == "DW_TAG_member":
                        mt = c.attributes.get("DW_AT_type")
                        members.append((_name(c), _offset(c), -1 if mt is None else _ref(c, mt)))
                    elif c.tag == "DW_TAG_subrange_type":
                        count = _array_count(c)
                size = attrs.get("DW_AT_byte_size")
                dies[die.offset] = TypeDie(
                    die.tag,
                    _name(die),
                    int(size.value) if size is not None else -1,
                    int(kind.value) if kind is not None else -1,
                    -1 if t is None else _ref(die, t),
                    count,
                    tuple(members),
                    *_go_refs(die, attrs),
                )
                rt = attrs.get(DW_AT_GO_RUNTIME_TYPE)
                if rt is not None:
                    by_runtime.setdefault(int(rt.value), die.offset)
    return TypeIndex(dies, by_runtime, ptr_size, tuple(variables))


# Bump when what read_type_index keeps changes: older cache files are then not used.
_INDEX_FORMAT = 1


def _index_data(ix: TypeIndex) -> tuple[Any, ...]:
    return (
        _INDEX_FORMAT,
        ix.ptr_size,
        {off: dataclasses.astuple(_die_of(dataclasses.astuple(d))) for off, d in ix.dies.items()},
        ix.by_runtime,
        [(str(v.name), int(v.addr), int(v.type)) for v in ix.variables],
    )


def _die_of(d: Any) -> TypeDie:
    members = tuple((str(n), int(o), int(t)) for n, o, t in d[6])
    return TypeDie(
        str(d[0]),
        str(d[1]),
        int(d[2]),
        int(d[3]),
        int(d[4]),
        int(d[5]),
        members,
        int(d[7]),
        int(d[8]),
    )


def _index_of(data: Any) -> TypeIndex | None:
    """The index a cache file holds; None when it is not one of this format."""
    try:
        fmt, ptr_size, dies, by_runtime, variables = data
        if fmt != _INDEX_FORMAT:
            return None
        return TypeIndex(
            {int(off): _die_of(d) for off, d in dies.items()},
            {int(k): int(v) for k, v in by_runtime.items()},
            int(ptr_size),
            tuple(GlobalVar(*v) for v in variables),
        )
    except (TypeError, ValueError):
        return None


def cached_type_index(path: str | Path, cache: Path | None) -> TypeIndex:
    """read_type_index, kept in ``cache`` (a directory) under the SHA-256 of the file's
    bytes: a large binary's DWARF walk takes seconds (5 s for an 8.5 MB server), a cached
    index a few milliseconds. The file holds plain data (marshal: no code runs when it
    is read); one that cannot be read or written is ignored."""
    if cache is None:
        return read_type_index(path)
    try:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as e:
        raise TargetError(f"cannot read {path}: {e.strerror}") from e
    where = cache / f"{digest}.types"
    with contextlib.suppress(OSError, EOFError, ValueError, TypeError):
        got = _index_of(marshal.loads(where.read_bytes()))
        if got is not None:
            return got
    ix = read_type_index(path)
    with contextlib.suppress(OSError, ValueError):
        cache.mkdir(parents=True, exist_ok=True)
        tmp = where.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(marshal.dumps(_index_data(ix)))
        os.replace(tmp, where)
    return ix


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
