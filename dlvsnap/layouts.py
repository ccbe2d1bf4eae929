"""Load layout data from ``layouts/`` and compile it into construct Structs.

Layouts are data (one TOML file per map family and release range, see layouts/index.toml);
this module turns a file into structs for one target, chosen by (implementation, Go
release, pointer size, byte order), with Go's alignment rules. Nothing here reads memory.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import construct as cs
import numpy as np

from dlvsnap.errors import LayoutError
from dlvsnap.goversion import release_of, release_text

ByteOrder = Literal["little", "big"]

# Go basic types: (size in bytes, signed); ``None`` size means pointer-sized.
_BASIC: dict[str, tuple[int | None, bool]] = {
    "uint8": (1, False),
    "bool": (1, False),
    "uint16": (2, False),
    "uint32": (4, False),
    "int32": (4, True),
    "uint64": (8, False),
    "int64": (8, True),
    "uintptr": (None, False),
    "ptr": (None, False),
    "int": (None, True),
}
_FORMAT = {
    (1, False): "B",
    (2, False): "H",
    (4, False): "L",
    (4, True): "l",
    (8, False): "Q",
    (8, True): "q",
}


def layouts_dir() -> Path:
    """The layout data: $DLVSNAP_LAYOUTS (to try new layout files), else inside the wheel
    as dlvsnap/_layouts, else the checkout's layouts/."""
    env = os.environ.get("DLVSNAP_LAYOUTS")
    if env:
        return Path(env)
    packaged = resources.files("dlvsnap").joinpath("_layouts")
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "layouts"


@dataclass(frozen=True)
class FieldInfo:
    name: str
    type: str
    offset: int
    size: int
    dwarf_name: str  # the field's name in the binary's DWARF (usually the same)


@dataclass(frozen=True)
class CompiledStruct:
    name: str
    struct: cs.Construct[Any, Any]
    fields: tuple[FieldInfo, ...]
    size: int
    align: int
    dwarf_names: tuple[str, ...] = ()  # DWARF types this struct mirrors
    # The same struct as a numpy structured dtype, nested fields flattened with dots
    # ("groups.data"): to parse many headers at once.
    dtype: np.dtype[Any] = dataclasses.field(default_factory=lambda: np.dtype([]))

    def field(self, name: str) -> FieldInfo:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def offset(self, field: str) -> int:
        return self.field(field).offset

    def parse(self, data: bytes | bytearray) -> dict[str, Any]:
        """Parse ``data`` (at least ``size`` bytes) into a plain dict (nested for structs),
        with the numpy dtype: the same values as ``struct.parse`` (a unit test compares
        them on every layout), several times faster."""
        if len(data) < self.size:
            raise LayoutError(f"{self.name}: {len(data)} bytes read, {self.size} needed")
        values = np.frombuffer(data, dtype=self.dtype, count=1)[0].tolist()
        paths = self._paths
        if paths is None:  # no nested struct
            return dict(zip(self.dtype.names or (), values, strict=True))
        out: dict[str, Any] = {}
        for path, v in zip(paths, values, strict=True):
            d = out
            for p in path[:-1]:
                d = d.setdefault(p, {})
            d[path[-1]] = v
        return out

    def parse_construct(self, data: bytes) -> dict[str, Any]:
        """``parse`` through the construct struct."""
        try:
            parsed = self.struct.parse(data[: self.size])
        except cs.ConstructError as e:
            raise LayoutError(f"{self.name}: cannot parse: {e}") from e
        plain: dict[str, Any] = _plain(parsed)
        return plain

    @functools.cached_property
    def _paths(self) -> list[list[str]] | None:
        """Each dtype field's path in the nested dict; None when no field is a struct."""
        names = self.dtype.names or ()
        return [n.split(".") for n in names] if any("." in n for n in names) else None


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items() if not k.startswith("_")}
    return obj


@dataclass(frozen=True)
class Layout:
    """One layout file compiled for one pointer size and byte order."""

    family: str
    name: str
    ptr_size: int
    little_endian: bool
    constants: dict[str, int]
    structs: dict[str, CompiledStruct]
    source: Path
    release: str = ""  # the Go release it was selected for
    exact: bool = True  # False: the nearest older release's layout, to be verified
    verified: int = 0  # DWARF types it was checked against (verify.choose_layout)

    def has(self, name: str) -> bool:
        return name in self.structs

    def struct(self, name: str) -> CompiledStruct:
        try:
            return self.structs[name]
        except KeyError:
            raise LayoutError(f"layout {self.name} has no struct {name}") from None

    def const(self, name: str) -> int:
        try:
            return self.constants[name]
        except KeyError:
            raise LayoutError(f"layout {self.name} has no constant {name}") from None

    @property
    def writing_field(self) -> tuple[str, int]:
        """The header field that says a write is in progress, and its bit: every write
        operation toggles it (^=) before its first change and back after its last (swiss
        ``Map.writing``; classic ``hmap.flags&hashWriting``)."""
        if self.family == "classic":
            return "flags", self.const("flag_hash_writing")
        return "writing", 1

    @property
    def writing_flag(self) -> tuple[int, int]:
        """``writing_field`` as (offset in the header, mask)."""
        name, mask = self.writing_field
        return self.struct("hmap" if self.family == "classic" else "Map").offset(name), mask

    @property
    def order(self) -> ByteOrder:
        return "little" if self.little_endian else "big"

    @functools.cached_property
    def ptr_dtype(self) -> np.dtype[np.unsignedinteger[Any]]:
        """A pointer (uintptr) of the target as a numpy type: its size and byte order."""
        return pointer_dtype(self.ptr_size, self.little_endian)


def pointer_dtype(ptr_size: int, little_endian: bool) -> np.dtype[np.unsignedinteger[Any]]:
    """A pointer (uintptr) of ``ptr_size`` bytes in that byte order, as a numpy type."""
    return np.dtype(f"{'<' if little_endian else '>'}u{ptr_size}")


def _align_up(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def compile_layout(
    data: dict[str, Any], ptr_size: int, little_endian: bool, source: Path
) -> Layout:
    if ptr_size not in (4, 8):
        raise LayoutError(f"unsupported pointer size {ptr_size}")
    order = "<" if little_endian else ">"
    raw_structs: dict[str, Any] = data.get("structs", {})
    compiled: dict[str, CompiledStruct] = {}

    def build(name: str, stack: tuple[str, ...] = ()) -> CompiledStruct:
        if name in compiled:
            return compiled[name]
        if name in stack:
            raise LayoutError(f"{source.name}: struct {name} contains itself")
        spec = raw_structs.get(name)
        if spec is None:
            raise LayoutError(f"{source.name}: unknown type {name}")
        subcons: list[Any] = []
        fields: list[FieldInfo] = []
        np_fields: list[tuple[str, str, int]] = []  # (dotted name, numpy format, offset)
        off = 0
        align = 1
        for i, entry in enumerate(spec["fields"]):
            fname, ftype = entry[0], entry[1]
            dwarf_name = entry[2] if len(entry) > 2 else fname
            if ftype in _BASIC:
                size, signed = _BASIC[ftype]
                size = size or ptr_size
                # Go aligns a basic type to its size, but 64-bit values only to 4 bytes
                # on 32-bit ports (cmd/compile/internal/types/size.go, RegSize 4).
                falign = min(size, ptr_size)
                sub: Any = (
                    cs.Flag if ftype == "bool" else cs.FormatField(order, _FORMAT[size, signed])
                )
                nested: list[tuple[str, str, int]] = [
                    ("", "?" if ftype == "bool" else f"{order}{'i' if signed else 'u'}{size}", 0)
                ]
            else:
                inner = build(ftype, (*stack, name))
                size, falign, sub = inner.size, inner.align, inner.struct
                dt = inner.dtype
                nested = [
                    ("." + n, dt.fields[n][0].str, int(dt.fields[n][1]))  # type: ignore[index]
                    for n in dt.names or ()
                ]
            pad = _align_up(off, falign) - off
            if pad:
                subcons.append(f"_pad{i}" / cs.Padding(pad))
                off += pad
            np_fields += [(fname + sub_name, fmt, off + o) for sub_name, fmt, o in nested]
            subcons.append(fname / sub)
            fields.append(FieldInfo(fname, ftype, off, size, dwarf_name))
            off += size
            align = max(align, falign)
        total = _align_up(off, align)
        if total > off:
            subcons.append("_padend" / cs.Padding(total - off))
        want = spec.get("sizes", {}).get(f"ptr{ptr_size}")
        if want is not None and want != total:
            raise LayoutError(
                f"{source.name}: struct {name} compiles to {total} bytes for pointer size "
                f"{ptr_size}, the file says {want}"
            )
        dwarf = spec.get("dwarf", ())
        cst = CompiledStruct(
            name,
            cs.Struct(*subcons),
            tuple(fields),
            total,
            align,
            tuple([dwarf] if isinstance(dwarf, str) else dwarf),
            np.dtype(
                {
                    "names": [n for n, _, _ in np_fields],
                    "formats": [f for _, f, _ in np_fields],
                    "offsets": [o for _, _, o in np_fields],
                    "itemsize": total,
                }
            ),
        )
        compiled[name] = cst
        return cst

    for sname in raw_structs:
        build(sname)
    consts = {k: int(v) for k, v in data.get("constants", {}).items()}
    return Layout(
        family=str(data["family"]),
        name=str(data["name"]),
        ptr_size=ptr_size,
        little_endian=little_endian,
        constants=consts,
        structs=compiled,
        source=source,
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise LayoutError(f"layout data missing: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise LayoutError(f"{path.name}: {e}") from e


def release_key(version: str) -> str:
    """``go1.26.8 X:foo`` -> ``1.26``; a LayoutError for what is not a Go release (a
    binary's build info and a saved file's ``go_version`` are untrusted)."""
    try:
        return release_text(release_of(version, require_go=True))
    except ValueError as e:
        raise LayoutError(str(e)) from None


def select_layout_file(family: str, go_version: str) -> tuple[str, bool]:
    """(layout file name, exact) for a Go release: the release's own entry in index.toml,
    else the nearest older release's (exact=False: to be verified against DWARF)."""
    index = _read_toml(layouts_dir() / "index.toml")
    releases: dict[str, str] = index.get(family, {})
    rel = release_key(go_version)
    if rel in releases:
        return releases[rel], True
    older = [k for k in releases if release_of(k) < release_of(rel)]
    if not older or release_of(rel) < min(release_of(k) for k in releases):
        known = ", ".join(sorted(releases, key=release_of)) or "none"
        raise LayoutError(
            f"no {family} map layout for Go {rel} (known: {known}); see README 'Bumping Go'"
        )
    return releases[max(older, key=release_of)], False


def load_layout_file(name: str, ptr_size: int, little_endian: bool) -> Layout:
    return _compiled(layouts_dir() / f"{name}.toml", ptr_size, little_endian)


@functools.cache
def _compiled(path: Path, ptr_size: int, little_endian: bool) -> Layout:
    """Compiled once per file (by its path: $DLVSNAP_LAYOUTS may name another folder)."""
    return compile_layout(_read_toml(path), ptr_size, little_endian, path)


def load_layout(family: str, go_version: str, ptr_size: int, little_endian: bool) -> Layout:
    """The layout for this map implementation and Go release, compiled for the target."""
    name, exact = select_layout_file(family, go_version)
    lay = load_layout_file(name, ptr_size, little_endian)
    return dataclasses.replace(lay, release=release_key(go_version), exact=exact)
