"""Hostile files through the real CLI (`dlvsnap diff`, `dlvsnap report`), each in a
subprocess capped at 512 MB of address space and 60 s: refused with exit 5 and one line on
stderr, in seconds; and what a file holds never reaches the terminal raw."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dlvsnap.errors import ExitCode
from tests import hostile

MEM_MB = 512  # the interpreter, numpy and dlvsnap take ~200 MB of address space
SECONDS = 6  # start-up is ~0.5 s; the slowest file here is refused in ~1 s


def _one_line_refusal(r: hostile.Limited) -> None:
    assert not r.timed_out, r
    assert r.returncode == ExitCode.TARGET, r.stderr[-3000:]
    assert r.stderr.startswith("dlvsnap: ") and r.stderr.count("\n") == 1, r.stderr[-3000:]
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert r.seconds < SECONDS, r.seconds


@pytest.mark.parametrize("name", list(hostile.HOSTILE_SNAPSHOTS))
def test_hostile_snapshot_files_are_refused_within_limits(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.snap.json"
    path.write_text(hostile.HOSTILE_SNAPSHOTS[name]())
    r = hostile.run_limited(["diff", str(path), str(path)], mem_mb=MEM_MB)
    _one_line_refusal(r)
    assert str(path) in r.stderr


@pytest.mark.parametrize("name", list(hostile.HOSTILE_EVENTS))
def test_hostile_events_files_are_refused_within_limits(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.jsonl"
    path.write_text(hostile.HOSTILE_EVENTS[name]())
    out = tmp_path / "report.html"
    r = hostile.run_limited(["report", str(path), "-o", str(out)], mem_mb=MEM_MB)
    _one_line_refusal(r)
    assert not out.exists()


def test_300000_descending_regions_load_within_limits(tmp_path: Path) -> None:
    """Not refused (the extra regions are never read): loaded in seconds (was 18.7 s)."""
    path = tmp_path / "many.snap.json"
    path.write_text(hostile.snap_descending_regions())
    r = hostile.run_limited(["diff", str(path), str(path)], mem_mb=MEM_MB)
    assert r.returncode == 0 and not r.timed_out, r.stderr[-3000:]
    assert r.seconds < 10, r.seconds
    assert "no slot changed" in r.stdout


CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def _hostile_names(doc: dict[str, object], evil: str) -> None:
    m = doc["map"]
    assert isinstance(m, dict)
    m["expr"] = "m" + evil
    m["location"] = {"function": "main." + evil, "file": f"/src/{evil}.go", "line": 3}


@pytest.mark.parametrize(
    "evil",
    ["\x1b[2J\x1b]0;owned\x07", "\u202eevil\u2066", "\x9b31m\x85", "a\nb\rc"],
    ids=["escapes", "bidi", "c1", "newlines"],
)
def test_what_a_snapshot_file_names_is_shown_escaped(tmp_path: Path, evil: str) -> None:
    """`dlvsnap diff` prints the file's expression and stop location (and its keys) in its
    title; an error quotes its type names. Neither reaches the terminal raw."""
    doc = hostile.snapshot_doc("swiss-strings")
    _hostile_names(doc, evil)
    a = tmp_path / "a.json"
    a.write_text(hostile.dump(doc))
    r = hostile.run_limited(["diff", str(a), str(a)], mem_mb=MEM_MB)
    assert r.returncode == 0, r.stderr
    assert not CONTROL.search(r.stdout.replace("\n", "")), repr(r.stdout)
    assert r.stdout.count("\n") == 5 and "no slot changed" in r.stdout
    other = hostile.snapshot_doc("swiss-floats")
    other["map"]["type"] = "map[float64]int" + evil
    b = tmp_path / "b.json"
    b.write_text(json.dumps(other))
    r = hostile.run_limited(["diff", str(a), str(b)], mem_mb=MEM_MB)
    assert r.returncode == ExitCode.TARGET
    assert r.stderr.count("\n") == 1 and "not two snapshots of one map" in r.stderr
    assert not CONTROL.search(r.stderr[:-1]), repr(r.stderr)
