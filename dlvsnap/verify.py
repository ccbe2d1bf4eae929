"""Which layout decodes a target's maps (``choose_layout``: the one place every path
takes it from), and a layout compared with a binary's own DWARF types, field by field.

``verify`` is pure. Checked: every struct of the layout that names its DWARF type (header,
table, type descriptors) and, for every map type in the binary, the linker's synthesised
copies (``hash<K,V>``/``map<K,V>``, ``table<K,V>``, ``groupReference<K,V>``) and the
bucket/group types (``bucket<K,V>``, ``noalg.map.group[K]V``) against the offsets dlvsnap's
decoders use.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from dlvsnap.dwarf import DwarfStruct
from dlvsnap.errors import LayoutDriftError
from dlvsnap.layouts import CompiledStruct, Layout, load_layout
from dlvsnap.target import TargetInfo, binary, identify


@dataclass(frozen=True)
class Drift:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


@dataclass
class Report:
    layout: str
    checked: list[str] = field(default_factory=list)
    drifts: list[Drift] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.drifts


# Synthesised per-map-type copies of the runtime structs (cmd/link/internal/ld/dwarf.go).
_SYNTHESISED = {
    "classic": ((re.compile(r"^hash<"), "hmap"),),
    "swiss": (
        (re.compile(r"^map<"), "Map"),
        (re.compile(r"^table<"), "table"),
        (re.compile(r"^groupReference<"), "groupsReference"),
    ),
}


def _compare(layout: Layout, cs: CompiledStruct, ds: DwarfStruct, report: Report) -> None:
    report.checked.append(ds.name)
    where = ds.name
    if ds.size != cs.size:
        report.drifts.append(Drift(where, f"size {ds.size} in DWARF, {cs.size} in {layout.name}"))
    names = set()
    for f in cs.fields:
        names.add(f.dwarf_name)
        m = ds.member(f.dwarf_name)
        if m is None:
            report.drifts.append(
                Drift(
                    f"{where}.{f.dwarf_name}",
                    f"in {layout.name} at offset {f.offset}, missing in DWARF",
                )
            )
            continue
        if m.offset != f.offset:
            report.drifts.append(
                Drift(
                    f"{where}.{f.dwarf_name}",
                    f"offset {m.offset} in DWARF, {f.offset} in {layout.name}",
                )
            )
        if m.size >= 0 and m.size != f.size:
            report.drifts.append(
                Drift(
                    f"{where}.{f.dwarf_name}", f"size {m.size} in DWARF, {f.size} in {layout.name}"
                )
            )
    for m in ds.members:
        if m.name not in names:
            report.drifts.append(
                Drift(
                    f"{where}.{m.name}",
                    f"in DWARF at offset {m.offset} ({m.type_name}), missing in {layout.name}",
                )
            )


def _expect(report: Report, where: str, what: str, got: int, want: int) -> None:
    if got != want:
        report.drifts.append(Drift(where, f"{what} is {got} in DWARF, dlvsnap expects {want}"))


def _bucket(layout: Layout, ds: DwarfStruct, report: Report) -> None:
    """classic bucket<K,V>: tophash [8]uint8 at 0, keys at data_offset, values after the 8
    keys, overflow pointer in the last word (how decode/types.py places slots)."""
    report.checked.append(ds.name)
    n = layout.const("bucket_slots")
    top, keys, values, ovf = (ds.member(x) for x in ("tophash", "keys", "values", "overflow"))
    if top is None or keys is None or values is None or ovf is None:
        report.drifts.append(Drift(ds.name, "expected members tophash, keys, values, overflow"))
        return
    _expect(report, f"{ds.name}.tophash", "offset", top.offset, 0)
    _expect(report, f"{ds.name}.tophash", "size", top.size, n)
    _expect(report, f"{ds.name}.keys", "offset", keys.offset, layout.const("data_offset"))
    _expect(report, f"{ds.name}.values", "offset", values.offset, keys.offset + keys.size)
    _expect(report, f"{ds.name}.overflow", "offset", ovf.offset, ds.size - layout.ptr_size)


def _group(layout: Layout, ds: DwarfStruct, report: Report) -> None:
    """swiss noalg.map.group[K]V: ctrl uint64 at 0, then slots (interleaved) or keys and
    elems (1.27 mapsplitgroup)."""
    report.checked.append(ds.name)
    n = layout.const("group_slots")
    ctrl = ds.member("ctrl")
    if ctrl is None:
        report.drifts.append(Drift(ds.name, "no ctrl member"))
        return
    _expect(report, f"{ds.name}.ctrl", "offset", ctrl.offset, 0)
    _expect(report, f"{ds.name}.ctrl", "size", ctrl.size, 8)
    slots, keys, elems = ds.member("slots"), ds.member("keys"), ds.member("elems")
    if slots is not None:
        _expect(
            report, f"{ds.name}.slots", "offset", slots.offset, layout.const("group_slots_offset")
        )
        if slots.size % n:
            report.drifts.append(Drift(f"{ds.name}.slots", f"size {slots.size} is not 8 slots"))
    elif keys is not None and elems is not None:
        if not layout.has("MapType") or "KeysOff" not in {
            f.name for f in layout.struct("MapType").fields
        }:
            report.drifts.append(
                Drift(
                    ds.name,
                    f"split keys/elems group, but {layout.name} "
                    "has no KeysOff/ElemsOff to place them",
                )
            )
        _expect(report, f"{ds.name}.keys", "offset", keys.offset, 8)
        if elems.offset < keys.offset + keys.size:
            report.drifts.append(Drift(f"{ds.name}.elems", "overlaps keys"))
    else:
        report.drifts.append(Drift(ds.name, "neither slots nor keys+elems"))


def verify(layout: Layout, structs: dict[str, DwarfStruct]) -> Report:
    report = Report(layout.name)
    for cs in layout.structs.values():
        if not cs.dwarf_names:
            continue
        ds = next((structs[n] for n in cs.dwarf_names if n in structs), None)
        if ds is None:
            report.drifts.append(
                Drift(cs.name, f"no DWARF type named {' or '.join(cs.dwarf_names)}")
            )
            continue
        _compare(layout, cs, ds, report)
    for name, ds in sorted(structs.items()):
        for pattern, struct_name in _SYNTHESISED.get(layout.family, ()):
            if pattern.match(name):
                _compare(layout, layout.struct(struct_name), ds, report)
        if layout.family == "classic" and name.startswith("bucket<"):
            _bucket(layout, ds, report)
        if layout.family == "swiss" and name.startswith("noalg.map.group["):
            _group(layout, ds, report)
    return report


def _indexed(target: TargetInfo) -> Layout:
    """The layout layouts/index.toml gives the target's map implementation and Go release
    (the nearest older release's, ``exact`` False, for a release the index does not list)."""
    return load_layout(target.map_impl, target.go_version, target.ptr_size, target.little_endian)


def choose_layout(target: TargetInfo, *, saved_layout: str | None = None) -> Layout:
    """The layout that decodes the target's maps. Every path that decodes takes it from
    here: ``watch``, ``snap``, the Python API, snapshot files, ``layouts verify``.

    The implementation is the target's (from its DWARF), the layout file the one
    layouts/index.toml lists for its Go release. A release newer than the index gets the
    nearest older release's layout only if the binary's own DWARF agrees with it, field by
    field (``verified``: how many DWARF types it was checked against); else a
    LayoutDriftError (exit 7): dlvsnap never decodes with a layout it has not checked.

    A saved snapshot has no binary to check against: ``saved_layout`` is the layout its file
    records, which ``snap --save`` chose this way, checked against the binary's DWARF when
    it saved it. For a release newer than the index the file is decoded with the nearest
    older release's layout only if that is the layout it records; and its bytes must decode
    to the state it records (snapfile), under whatever layout.
    """
    layout = _indexed(target)
    if layout.exact:
        return layout
    if saved_layout is not None:
        if saved_layout != layout.name:
            raise LayoutDriftError(
                f"Go {layout.release} is not in layouts/index.toml: the file records layout "
                f"{saved_layout}, the nearest older release's is {layout.name}, and a saved "
                "snapshot has no binary to check another against"
            )
        return layout
    report = verify(layout, binary(target.path).dwarf_structs)
    if not report.ok:
        raise LayoutDriftError(
            f"Go {layout.release} is not in layouts/index.toml and {layout.name} differs "
            f"from the binary's DWARF ({len(report.drifts)} differences; first: "
            f"{report.drifts[0]}): see README 'Bumping Go'"
        )
    return dataclasses.replace(layout, verified=len(report.checked))


def inexact_note(layout: Layout) -> str:
    """What to tell the user about a layout ``choose_layout`` took for a release newer than
    the index."""
    how = (
        f"verified against the binary's DWARF ({layout.verified} types)"
        if layout.verified
        else "the layout the snapshot file records"
    )
    return f"Go {layout.release} is not in layouts/index.toml: using {layout.name}, {how}"


def check_binary(path: str | Path) -> tuple[TargetInfo, Layout, Report]:
    """`layouts verify`: identify a binary, take the layout the index gives it (as
    ``choose_layout`` does) and compare it with the binary's DWARF, whatever its release."""
    info = identify(path)
    layout = _indexed(info)
    return info, layout, verify(layout, binary(path).dwarf_structs)
