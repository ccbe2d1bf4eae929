"""Snapshot files offline: save a synthetic map's snapshot with the bytes it was decoded
from, read it back (decoded again), and refuse broken files with one line each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlvsnap.decode import SwissDecoder, decode_map_type
from dlvsnap.diff import diff
from dlvsnap.errors import ExitCode, SnapshotFileError
from dlvsnap.layouts import load_layout
from dlvsnap.memory import RecordingMem
from dlvsnap.snapfile import load, save
from dlvsnap.target import TargetInfo
from tests.unit.synth import SwissMap

TARGET = TargetInfo("/nowhere/prog", "go1.26.8", (), "amd64", 8, True, "swiss")


def _saved(tmp_path: Path) -> tuple[Path, object]:
    sm = SwissMap(load_layout("swiss", "go1.26.8", 8, True))
    groups = [sm.group({0: (0x11, 7), 3: (0x7F, -2)}), sm.group({1: (0x23, 99)}, deleted=(5,))]
    t = sm.table(groups, used=3, growth_left=10, index=0)
    h = sm.header(used=3, dir_ptr=sm.directory([t]), dir_len=1)
    rec = RecordingMem(sm.mem)
    type_addr = sm.type_desc()
    mt = decode_map_type(sm.layout, rec, type_addr)
    snap = SwissDecoder(sm.layout, rec, mt).snapshot(h)
    path = tmp_path / "m.snap.json"
    save(
        path,
        snap,
        target=TARGET,
        expr="m",
        type_addr=type_addr,
        type_name="map[int]int",
        regions=rec.regions,
    )
    return path, snap


def test_round_trip_decodes_the_same_map_again(tmp_path: Path) -> None:
    path, snap = _saved(tmp_path)
    saved = load(path)
    d = diff(saved.snapshot, snap)  # type: ignore[arg-type]
    assert d.changes == () and d.header_changes == {} and d.table_changes == {}
    assert sorted(saved.snapshot.live_keys()) == [-2, 7, 99]  # type: ignore[type-var]
    assert saved.snapshot.tombstones == 1 and saved.expr == "m"
    assert saved.target == TARGET and saved.type_name == "map[int]int"
    doc = json.loads(path.read_text())
    assert doc["format"] == "dlvsnap-snapshot" and doc["version"] == 3 and doc["types"] == []
    assert doc["state"]["states"].count("F") == 3 and doc["state"]["groups"] == ["t0/g0", "t0/g1"]


def _broken(tmp_path: Path, change: str) -> Path:
    path, _ = _saved(tmp_path)
    text = path.read_text()
    doc = json.loads(text)
    if change == "truncated":
        text = text[: len(text) // 2]
    elif change == "not-ours":
        text = json.dumps({"hello": 1})
    elif change == "version":
        doc["version"] = 99
        text = json.dumps(doc)
    elif change == "count-edited":
        doc["state"]["count"] += 1
        text = json.dumps(doc)
    elif change == "memory-edited":
        doc["state"]["memory"]["held_bytes"] -= 8
        text = json.dumps(doc)
    elif change == "bytes-missing":
        doc["memory"]["regions"] = doc["memory"]["regions"][:-1]
        text = json.dumps(doc)
    elif change == "bytes-garbled":
        doc["memory"]["regions"][0][2] = "!!!"
        text = json.dumps(doc)
    elif change == "field-missing":
        del doc["map"]["type_addr"]
        text = json.dumps(doc)
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("truncated", "not JSON (truncated"),
        ("not-ours", "not a dlvsnap snapshot file"),
        ("version", "format version 99; this dlvsnap reads 1, 2 and 3"),
        ("count-edited", "decode to a different count"),
        ("memory-edited", "decode to a different memory"),
        ("bytes-missing", "cannot decode its bytes again"),
        ("bytes-garbled", "malformed snapshot file"),
        ("field-missing", "malformed snapshot file"),
    ],
)
def test_broken_files_are_refused_in_one_line(tmp_path: Path, change: str, message: str) -> None:
    path = _broken(tmp_path, change)
    with pytest.raises(SnapshotFileError) as e:
        load(path)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert e.value.exit_code == ExitCode.TARGET


def test_a_version_2_file_has_its_memory_computed_again(tmp_path: Path) -> None:
    """Version 2 counted memory by type sizes: its figures are not the reader's, so they
    are not compared; the snapshot read carries the reader's own."""
    path, snap = _saved(tmp_path)
    doc = json.loads(path.read_text())
    doc["version"] = 2
    doc["state"]["memory"] = {"held_bytes": 1, "needed_bytes": 2}
    path.write_text(json.dumps(doc))
    assert load(path).snapshot.memory == snap.memory


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SnapshotFileError, match="cannot read: No such file"):
        load(tmp_path / "nope.json")
