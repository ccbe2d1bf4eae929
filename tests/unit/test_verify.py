"""verify() on DWARF structs made from a layout itself, then from an altered layout file."""

from __future__ import annotations

import tomllib
from pathlib import Path

from dlvsnap.dwarf import DwarfMember, DwarfStruct
from dlvsnap.layouts import Layout, compile_layout, layouts_dir, load_layout_file
from dlvsnap.verify import verify


def _as_dwarf(layout: Layout) -> dict[str, DwarfStruct]:
    """What a binary built by the release this layout mirrors has in its DWARF."""
    out = {}
    for cs in layout.structs.values():
        for name in cs.dwarf_names[:1]:
            members = tuple(DwarfMember(f.dwarf_name, f.offset, f.size, f.type) for f in cs.fields)
            out[name] = DwarfStruct(name, cs.size, members)
    return out


def test_a_layout_agrees_with_itself() -> None:
    for name in ("swiss-go1.25", "swiss-go1.27", "classic-go1.17", "classic-go1.24"):
        lay = load_layout_file(name, 8, True)
        report = verify(lay, _as_dwarf(lay))
        assert report.ok, report.drifts
        assert len(report.checked) == sum(1 for s in lay.structs.values() if s.dwarf_names)


def test_an_altered_layout_file_names_the_field(tmp_path: Path) -> None:
    good = load_layout_file("swiss-go1.25", 8, True)
    data = tomllib.loads((layouts_dir() / "swiss-go1.25.toml").read_text())
    fields = data["structs"]["table"]["fields"]
    fields[1], fields[2] = fields[2], fields[1]  # swap capacity and growthLeft
    altered = compile_layout(data, 8, True, tmp_path / "swiss-go1.25.toml")
    drifts = [str(d) for d in verify(altered, _as_dwarf(good)).drifts]
    assert "internal/runtime/maps.table.capacity: offset 2 in DWARF, 4 in swiss-go1.25" in drifts
    assert "internal/runtime/maps.table.growthLeft: offset 4 in DWARF, 2 in swiss-go1.25" in drifts


def test_a_field_the_layout_lacks_is_drift() -> None:
    older = load_layout_file("swiss-go1.24", 8, True)
    newer = _as_dwarf(load_layout_file("swiss-go1.25", 8, True))
    drifts = [str(d) for d in verify(older, newer).drifts]
    assert any("Map.tombstonePossible: in DWARF at offset 35" in d for d in drifts), drifts
