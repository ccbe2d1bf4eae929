"""choose_layout: the one place the layout of a target is chosen. A release in the index
takes its layout without reading the binary; a newer one needs the binary's DWARF (live
tests check that on real binaries: tests/live/test_layouts_verify.py); a saved snapshot,
which has no binary, is decoded only with the layout its file records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dlvsnap import snapfile
from dlvsnap.errors import LayoutDriftError, SnapshotFileError, TargetError
from dlvsnap.layouts import layouts_dir
from dlvsnap.target import TargetInfo
from dlvsnap.verify import choose_layout, inexact_note
from tests import hostile


def _target(go_version: str, impl: str = "swiss") -> TargetInfo:
    return TargetInfo("/nowhere/prog", go_version, (), "amd64", 8, True, impl)


def _index_without(tmp_path: Path, family: str, release: str) -> Path:
    """A copy of the layouts whose index no longer lists ``release``: as if it were new."""
    d = tmp_path / "layouts"
    shutil.copytree(layouts_dir(), d)
    index = d / "index.toml"
    lines = index.read_text().splitlines(keepends=True)
    section, out = "", []
    for line in lines:
        if line.startswith("["):
            section = line.strip("[]\n")
        if not (section == family and line.startswith(f'"{release}"')):
            out.append(line)
    index.write_text("".join(out))
    return d


@pytest.mark.parametrize(
    ("version", "impl", "name"),
    [
        ("go1.26.8", "swiss", "swiss-go1.25"),
        ("go1.27.3", "swiss", "swiss-go1.27"),
        ("go1.25.5", "classic", "classic-go1.24"),
        ("go1.22.10", "classic", "classic-go1.21"),
    ],
)
def test_a_release_in_the_index_takes_its_layout_without_the_binary(
    version: str, impl: str, name: str
) -> None:
    layout = choose_layout(_target(version, impl))  # /nowhere/prog is never read
    assert (layout.name, layout.exact, layout.verified) == (name, True, 0)


def test_a_newer_release_is_never_decoded_without_its_binarys_dwarf() -> None:
    with pytest.raises(TargetError, match="cannot read /nowhere/prog"):
        choose_layout(_target("go1.99.0"))


def test_a_saved_snapshot_of_a_newer_release_takes_only_the_layout_it_records() -> None:
    layout = choose_layout(_target("go1.99.0"), saved_layout="swiss-go1.27")
    assert (layout.name, layout.exact, layout.release) == ("swiss-go1.27", False, "1.99")
    assert inexact_note(layout) == (
        "Go 1.99 is not in layouts/index.toml: using swiss-go1.27, "
        "the layout the snapshot file records"
    )
    with pytest.raises(LayoutDriftError) as e:
        choose_layout(_target("go1.99.0"), saved_layout="swiss-go1.25")
    assert str(e.value) == (
        "Go 1.99 is not in layouts/index.toml: the file records layout swiss-go1.25, the "
        "nearest older release's is swiss-go1.27, and a saved snapshot has no binary to "
        "check another against"
    )


def test_a_real_file_of_a_release_the_index_lost_loads_with_the_layout_it_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tests/data's Go 1.26 file, read with an index that stops at 1.25: 1.25's layout is
    the one the file records (1.26 kept it), so it decodes; claimed as Go 1.99 (1.27's
    layout is then the nearest), it is refused in one line."""
    path = hostile.DATA / "swiss-strings.snap.json"
    monkeypatch.setenv("DLVSNAP_LAYOUTS", str(_index_without(tmp_path, "swiss", "1.26")))
    saved = snapfile.load(path)
    assert saved.target.go_version == "go1.26.8" and saved.snapshot.layout == "swiss-go1.25"
    doc = json.loads(path.read_text())
    doc["target"]["go_version"] = "go1.99.0"
    with pytest.raises(SnapshotFileError) as e:
        snapfile.loads(json.dumps(doc), "newer.json")
    assert str(e.value).startswith(
        "newer.json: cannot decode its bytes again: Go 1.99 is not in layouts/index.toml: "
        "the file records layout swiss-go1.25, the nearest older release's is swiss-go1.27"
    )
