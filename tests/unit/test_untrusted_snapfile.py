"""Snapshot files are untrusted input: real files (tests/data, written by `dlvsnap snap
--save`) made hostile are refused with one line, never a traceback, a masked message or
memory out of proportion to the file."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from dlvsnap import snapfile
from dlvsnap.errors import ExitCode, SnapshotFileError
from tests import hostile


@pytest.mark.parametrize("path", hostile.SNAPSHOTS, ids=lambda p: p.name)
def test_the_real_files_load(path: Path) -> None:
    saved = snapfile.load(path)
    assert saved.snapshot.count == json.loads(path.read_text())["state"]["count"] > 0


def _refused(tmp_path: Path, text: str) -> str:
    path = tmp_path / "hostile.snap.json"
    path.write_text(text)
    with pytest.raises(SnapshotFileError) as e:
        snapfile.load(path)
    assert e.value.exit_code == ExitCode.TARGET
    message = str(e.value)
    assert "\n" not in message and message.startswith(str(path))
    return message


def _peak_refused(tmp_path: Path, text: str) -> tuple[str, int]:
    tracemalloc.start()
    try:
        message = _refused(tmp_path, text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return message, peak


def test_a_zlib_bomb_is_refused_before_inflating(tmp_path: Path) -> None:
    """1 GiB of zeros declared as the 48-byte header (was 2.1 GB and 10 s of inflating
    before the size check): its 1.4 MB of base64 cannot be what 48 bytes compress to."""
    message, peak = _peak_refused(tmp_path, hostile.snap_zlib_bomb())
    assert "a string of 1,415,864 characters (at most 152)" in message
    assert peak < 64 << 20, peak


def test_a_zlib_bomb_is_inflated_only_to_its_declared_size(tmp_path: Path) -> None:
    """1 GiB of zeros declared as 2 MiB (the base64 fits what 2 MiB may compress to):
    inflated with a bound, refused when byte 2 MiB + 1 comes out."""
    doc = hostile.snapshot_doc()
    doc["memory"]["regions"].append(
        [1 << 44, 2 << 20, hostile.base64.b64encode(hostile.zero_bomb(1024)).decode()]
    )
    message, peak = _peak_refused(tmp_path, hostile.dump(doc))
    assert f"region at {1 << 44:#x} holds more than its 2,097,152 bytes" in message
    assert peak < 64 << 20, peak


def test_regions_over_what_a_file_may_hold_are_refused_before_inflating(tmp_path: Path) -> None:
    """1.5 GiB of regions (1.5 MB of file): more than the groups of the file's state need."""
    message, peak = _peak_refused(tmp_path, hostile.snap_declared_huge())
    assert "bytes the groups of its state and its keys can need" in message
    assert peak < 64 << 20, peak
    # a state of 8 million slots would need them: over what any file may hold
    doc = json.loads(hostile.snap_declared_huge())
    doc["state"]["states"] += "E" * (8 << 20)
    message, peak = _peak_refused(tmp_path, hostile.dump(doc))
    assert f"more than {snapfile.MAX_MEMORY_BYTES:,} bytes in all" in message
    assert peak < 256 << 20, peak


def test_regions_over_what_the_files_own_groups_need_are_refused(tmp_path: Path) -> None:
    """A classic header edited to B = 20 (a million buckets), and 176 MiB of zeros where they
    would be (170 kB of file): more bytes than the 128 slots its state lists can need."""
    doc = json.loads(hostile.classic_header_edit({"B": 20}))
    hmap = doc["memory"]["regions"][0]
    bsize = 176  # map[point]int: 8 tophash + 8 x 12 + 8 x 8 + the overflow pointer
    buckets = int.from_bytes(hostile.decode(hmap[2])[16:24], "little")
    doc["memory"]["regions"] = [
        r for r in doc["memory"]["regions"] if not r[0] <= buckets < r[0] + r[1]
    ]
    doc["memory"]["regions"].append(
        [buckets, bsize << 20, hostile.base64.b64encode(hostile.zero_bomb(bsize)).decode()]
    )
    message, peak = _peak_refused(tmp_path, hostile.dump(doc))
    assert "bytes the groups of its state and its keys can need" in message
    assert peak < 64 << 20, peak


def test_300000_regions_in_descending_order_load_quickly(tmp_path: Path) -> None:
    import time

    path = tmp_path / "many.snap.json"
    path.write_text(hostile.snap_descending_regions())
    t = time.perf_counter()
    saved = snapfile.load(path)
    assert time.perf_counter() - t < 10  # was 18.7 s (an insort per region)
    assert saved.snapshot.count == hostile.snapshot_doc()["state"]["count"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (hostile.snap_version_string, "its format version is '1' (a string), not an integer"),
        (hostile.snap_truthy_string, "target.little_endian: 'false' (a string) is not a boolean"),
        (hostile.snap_infinity, "not JSON"),
        (hostile.snap_overflowing_number, "number is infinity"),
        (hostile.snap_deep_valid, "not JSON"),
        (hostile.snap_classic_b0_growing, "growing (oldbuckets set) at B = 0: not an hmap"),
    ],
    ids=["version-string", "truthy", "infinity", "1e400", "deep", "classic-b0-growing"],
)
def test_contract_slips_are_refused_with_their_reason(tmp_path: Path, make, message) -> None:  # type: ignore[no-untyped-def]
    assert message in _refused(tmp_path, make())


def _edited(edit) -> str:  # type: ignore[no-untyped-def]
    doc = hostile.snapshot_doc()
    edit(doc)
    return hostile.dump(doc)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(extra=json.loads("[" * 40 + "]" * 40)), "nested more than 32"),
        (lambda d: d["target"].update(ptr_size="8"), "target.ptr_size: '8' (a string) is not an"),
        (lambda d: d["target"].update(ptr_size=16), "target.ptr_size: 16 (an integer) is not in"),
        (lambda d: d["target"].update(map_impl="hash"), "target.map_impl: 'hash' (a string)"),
        (lambda d: d["target"].update(experiments="x"), "target.experiments: 'x' (a string) is"),
        (lambda d: d["map"].update(addr=2**64), "map.addr: 1.8446744073709552e+19 (a number)"),
        (lambda d: d["map"].update(addr=-1), "map.addr: -1 (an integer) is not in"),
        (lambda d: d["map"].update(location={"function": 1}), "map.location.function: 1 (an"),
        (lambda d: d["state"].update(count=True), "state.count: true (a boolean) is not an"),
        (
            lambda d: d["state"].update(groups=[["t0/g0"]]),
            "state.groups[0]: a list is not a string",
        ),
        (lambda d: d["memory"].update(encoding="raw"), "memory.encoding: 'raw' (a string)"),
        (lambda d: d["memory"]["regions"].append([1, 2]), "not [address, size, data]"),
        (lambda d: d["memory"]["regions"][0].__setitem__(1, 10**12), "is not in [0,"),
        (lambda d: d["memory"]["regions"][0].__setitem__(2, "A" * 4096), "a string of 4,096"),
        (lambda d: d["memory"]["regions"][0].__setitem__(2, "!!!!"), "not zlib+base64"),
        (lambda d: d["memory"]["regions"][0].__setitem__(2, "eJwDAAAAAAE="), "holds 0 bytes"),
        (lambda d: d.update(created={"a": 1}), "created: an object is not a string"),
        (
            lambda d: d["target"].update(goarch="\x1b[31mx" * 30),
            "goarch: a string of 180 characters",
        ),
    ],
)
def test_every_field_is_type_checked(tmp_path: Path, edit, message) -> None:  # type: ignore[no-untyped-def]
    got = _refused(tmp_path, _edited(edit))
    assert message in got
    assert "\x1b" not in got


def test_a_file_whose_keys_all_point_at_one_region_is_refused(tmp_path: Path) -> None:
    """Every string key's data pointer aimed at one 1 MiB region (1 kB compressed): the
    decode would read it once per key (21 MiB here; a million keys, a TB). What a decode
    may read is capped by the file's size and its regions' (each read about once)."""
    doc = hostile.snapshot_doc("swiss-strings")
    saved = snapfile.load(hostile.DATA / "swiss-strings.snap.json").snapshot
    mt, rows = saved.map_type, saved.rows
    big = 1 << 45
    for group in rows.addr.tolist():
        r = next(r for r in doc["memory"]["regions"] if r[0] <= group < r[0] + r[1])
        raw = bytearray(hostile.decode(r[2]))
        for slot in range(8):
            if raw[group - r[0] + slot] < 0x80:  # full
                off = group - r[0] + mt.keys_off + slot * mt.key_stride
                raw[off : off + 16] = big.to_bytes(8, "little") + (1 << 20).to_bytes(8, "little")
        r[2] = hostile.encode(bytes(raw))
    doc["memory"]["regions"].append([big, 1 << 20, hostile.encode(b"a" * (1 << 20))])
    message, peak = _peak_refused(tmp_path, hostile.dump(doc))
    assert "cannot decode its bytes again: the reads ask for more than" in message
    assert peak < 16 << 20, peak
