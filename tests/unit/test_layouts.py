"""Layout data compiled to construct Structs: sizes and offsets are Go's, for both pointer
sizes (../shared/reference/go-map-layouts.md, B.1 and B.2.2)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from dlvsnap.errors import LayoutError
from dlvsnap.layouts import compile_layout, layouts_dir, load_layout, release_key

SWISS_OFFSETS = {
    8: {
        "Map": {
            "used": 0,
            "seed": 8,
            "dirPtr": 16,
            "dirLen": 24,
            "globalDepth": 32,
            "globalShift": 33,
            "writing": 34,
            "tombstonePossible": 35,
            "clearSeq": 40,
        },
        "table": {
            "used": 0,
            "capacity": 2,
            "growthLeft": 4,
            "localDepth": 6,
            "index": 8,
            "groups": 16,
        },
        "MapType": {
            "Key": 48,
            "Elem": 56,
            "Group": 64,
            "Hasher": 72,
            "GroupSize": 80,
            "SlotSize": 88,
            "ElemOff": 96,
            "Flags": 104,
        },
    },
    4: {
        "Map": {
            "used": 0,
            "seed": 8,
            "dirPtr": 12,
            "dirLen": 16,
            "globalDepth": 20,
            "globalShift": 21,
            "writing": 22,
            "tombstonePossible": 23,
            "clearSeq": 24,
        },
        "table": {
            "used": 0,
            "capacity": 2,
            "growthLeft": 4,
            "localDepth": 6,
            "index": 8,
            "groups": 12,
        },
        "MapType": {
            "Key": 32,
            "Elem": 36,
            "Group": 40,
            "Hasher": 44,
            "GroupSize": 48,
            "SlotSize": 52,
            "ElemOff": 56,
            "Flags": 60,
        },
    },
}
SIZES = {
    8: {"Map": 48, "table": 32, "groupsReference": 16, "Type": 48, "MapType": 112},
    4: {"Map": 32, "table": 24, "groupsReference": 12, "Type": 32, "MapType": 64},
}


@pytest.mark.parametrize("ptr", [8, 4])
def test_swiss_offsets_and_sizes(ptr: int) -> None:
    lay = load_layout("swiss", "go1.26.8", ptr, True)
    for name, size in SIZES[ptr].items():
        assert lay.struct(name).size == size, name
    for name, offsets in SWISS_OFFSETS[ptr].items():
        s = lay.struct(name)
        assert {f: s.offset(f) for f in offsets} == offsets, name


def test_parse_build_round_trip_annotated_bytes() -> None:
    lay = load_layout("swiss", "go1.26.8", 8, True)
    raw = bytes.fromhex(
        "6300000000000000"  # used = 99
        "efbeadde00000000"  # seed = 0xdeadbeef
        "0010000000000000"  # dirPtr = 0x1000
        "0100000000000000"  # dirLen = 1
        "00"  # globalDepth = 0
        "40"  # globalShift = 64
        "00"  # writing = 0
        "01"  # tombstonePossible = true
        "00000000"  # padding to 8
        "0200000000000000"  # clearSeq = 2
    )
    hdr = lay.struct("Map")
    parsed = hdr.parse(raw)
    assert parsed == {
        "used": 99,
        "seed": 0xDEADBEEF,
        "dirPtr": 0x1000,
        "dirLen": 1,
        "globalDepth": 0,
        "globalShift": 64,
        "writing": 0,
        "tombstonePossible": True,
        "clearSeq": 2,
    }
    assert hdr.struct.build(parsed) == raw
    assert hdr.struct.sizeof() == len(raw)


def test_big_endian_layout() -> None:
    lay = load_layout("swiss", "go1.26.8", 8, False)
    raw = (99).to_bytes(8, "big") + bytes(40)
    assert lay.struct("Map").parse(raw)["used"] == 99


def test_short_read_is_a_layout_error() -> None:
    lay = load_layout("swiss", "go1.26.8", 8, True)
    with pytest.raises(LayoutError, match=r"47 bytes read, 48 needed"):
        lay.struct("Map").parse(bytes(47))


def test_newer_release_takes_the_nearest_older_layout_marked_inexact() -> None:
    lay = load_layout("swiss", "go1.99.0", 8, True)
    assert (lay.name, lay.exact, lay.release) == ("swiss-go1.27", False, "1.99")
    assert load_layout("swiss", "go1.27.3", 8, True).exact


def test_older_release_than_any_layout_is_refused() -> None:
    with pytest.raises(LayoutError, match=r"no classic map layout for Go 1\.12"):
        load_layout("classic", "go1.12.17", 8, True)


def test_altered_layout_file_fails_loudly(tmp_path: Path) -> None:
    import tomllib

    data = tomllib.loads((layouts_dir() / "swiss-go1.25.toml").read_text())
    data["structs"]["Map"]["fields"].insert(1, ["extra", "uint32"])
    with pytest.raises(LayoutError, match=r"struct Map compiles to 56 bytes .* the file says 48"):
        compile_layout(data, 8, True, tmp_path / "altered.toml")


def test_every_layout_file_named_by_the_index_compiles() -> None:
    import tomllib

    index = tomllib.loads((layouts_dir() / "index.toml").read_text())
    for family, releases in index.items():
        for release in releases:
            for ptr in (4, 8):
                lay = load_layout(family, f"go{release}.0", ptr, True)
                assert lay.family == family


def test_numpy_parse_equals_construct_parse_on_every_layout() -> None:
    """parse (numpy) and parse_construct agree on every struct of every layout file, for
    both pointer sizes and byte orders, on bytes that set every field."""
    rng = random.Random(4)
    checked = 0
    for family, release in [
        ("classic", "go1.19.0"),
        ("classic", "go1.21.0"),
        ("classic", "go1.24.0"),
        ("swiss", "go1.24.0"),
        ("swiss", "go1.25.0"),
        ("swiss", "go1.27.0"),
    ]:
        for ptr, little in [(8, True), (4, True), (8, False)]:
            lay = load_layout(family, release, ptr, little)
            for name, st in lay.structs.items():
                for _ in range(3):
                    raw = bytes(rng.randrange(256) for _ in range(st.size))
                    assert st.parse(raw) == st.parse_construct(raw), (lay.name, name)
                    checked += 1
    assert checked > 100


@pytest.mark.parametrize("version", ["", " ", "gox", "go1", "1.26", "go1.x", "devel", "go[1].2"])
def test_a_version_that_is_no_go_release_is_a_layout_error(version: str) -> None:
    """A saved file's go_version and a binary's build info are untrusted: not a Go release
    is a LayoutError (an IndexError or ValueError before)."""
    with pytest.raises(LayoutError, match="is not a Go release"):
        load_layout("swiss", version, 8, True)
    assert release_key("go1.26.8 X:foo") == "1.26" and release_key("go1.27rc1") == "1.27"
