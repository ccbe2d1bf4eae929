"""Renderers on a synthetic delete: the JSON Lines schema and the human view."""

from __future__ import annotations

import io
import json

from dlvsnap.diff import diff
from dlvsnap.model import DeleteEvent, FinalSnapshot, Location, Summary
from dlvsnap.render import jsonl
from dlvsnap.render.text import TextRenderer
from tests.unit.synth import SwissMap
from tests.unit.test_diff import _two_snapshots


def _event() -> DeleteEvent:
    sm0 = SwissMap(
        __import__("dlvsnap.layouts", fromlist=["x"]).load_layout("swiss", "go1.26.8", 8, True)
    )
    before, after, _ = _two_snapshots(
        [sm0.group({2: (0x3A, 17), 3: (0x11, 5)})],
        [sm0.group({3: (0x11, 5)})],
        used=(2, 1),
        growth=(5, 6),
    )
    return DeleteEvent(
        seq=3,
        op="delete",
        entry="runtime.mapdelete_fast64",
        via="",
        goroutine=1,
        location=Location("main.main", "/src/main.go", 21),
        key=17,
        key_decoded=True,
        before=before,
        after=after,
        diff=diff(before, after),
    )


def test_json_line_schema() -> None:
    out = io.StringIO()
    jsonl.event(out, _event(), live_keys=True)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    ev = json.loads(lines[0])
    assert ev["v"] == jsonl.SCHEMA_VERSION
    assert ev["event"] == "delete" and ev["key"] == 17 and ev["key_present"] is True
    assert (ev["count_before"], ev["count_after"]) == (2, 1)
    assert ev["changes"] == [
        {
            "slot": "t0/g0/s2",
            "table": 0,
            "group": 0,
            "bucket": None,
            "overflow": None,
            "old": None,
            "index": 2,
            "before_state": "full",
            "after_state": "empty",
            "before_byte": 0x3A,
            "after_byte": 0x80,
            "key": 17,
            "after_key": None,
        }
    ]
    assert ev["live_keys"] == [5]
    assert ev["table_changes"] == {"0": {"used": [2, 1], "growth_left": [5, 6]}}
    assert ev["memory"]["live_entries"] == 1


def test_text_view_without_colour() -> None:
    out = io.StringIO()
    TextRenderer(out, colour=False).event(_event(), live_keys=False)
    text = out.getvalue()
    assert (
        text.splitlines()[0] == "#3 delete key=17  main.main main.go:21  (runtime.mapdelete_fast64)"
    )
    assert "table 0 group 0 slot 2" in text
    assert "0x3a full(h2=3a)" in text and "0x80 empty" in text
    assert "used 2 -> 1" in text and "growthLeft 5 -> 6" in text
    assert "\x1b[" not in text


def test_text_view_with_colour() -> None:
    out = io.StringIO()
    TextRenderer(out, colour=True).event(_event(), live_keys=False)
    assert "\x1b[" in out.getvalue()


def _until_summary(read: bool) -> Summary:
    """A watch that ended at --until: the map read there (``read``) or not."""
    ev = _event()
    s = Summary(first=ev.before, last=ev.after, mode="watchpoint", exit_status=3)
    s.count("delete", 2, 1)
    s.stopped_early, s.ended, s.after = True, "until", "ran_on"
    s.ended_at, s.ended_goroutine = Location("main.checkpoint", "/src/main.go", 19), 1
    note = "m is not in scope there (…); read at the header the watch last saw"
    s.final = (
        FinalSnapshot(ev.after, "last_seen", note)
        if read
        else FinalSnapshot(None, "none", "the map is gone: its frame returned")
    )
    return s


def test_summary_says_where_the_watch_ended_and_the_map_there() -> None:
    out = io.StringIO()
    TextRenderer(out, colour=False).summary(_until_summary(read=True))
    lines = out.getvalue().splitlines()
    assert "watch ended             at --until: main.checkpoint main.go:19 (goroutine 1)" in lines
    assert "at --until: entries     1 live in 8 slots, 0 tombstones" in lines
    assert any(ln.startswith("at --until: holds       ") for ln in lines)
    assert "at --until: need        16 B (1 x 16 B)" in lines
    assert any(ln.startswith("at --until: read        m is not in scope") for ln in lines)
    assert "then                    the program ran on unwatched: exited (status 3)" in lines
    out = io.StringIO()
    TextRenderer(out, colour=False).summary(_until_summary(read=False))
    assert "at --until: map         not read: the map is gone: its frame returned" in (
        out.getvalue().splitlines()
    )


def test_json_summary_says_where_the_watch_ended_and_the_map_there() -> None:
    for read in (True, False):
        out = io.StringIO()
        jsonl.summary(out, _until_summary(read), "proc")
        rec = json.loads(out.getvalue())
        assert (rec["ended"], rec["after_watch"], rec["exit_status"]) == ("until", "ran_on", 3)
        assert rec["ended_at"] == {
            "function": "main.checkpoint",
            "file": "/src/main.go",
            "line": 19,
            "goroutine": 1,
        }
        final = rec["final"]
        assert final["how"] == ("last_seen" if read else "none") and final["note"]
        if read:
            assert (final["count"], final["capacity"], final["tombstones"]) == (1, 8, 0)
            assert final["memory"]["needed_bytes"] == 16
        else:
            assert final["count"] is final["memory"] is None
    out = io.StringIO()
    jsonl.summary(out, Summary(ended="exit", exit_status=0), "proc")
    rec = json.loads(out.getvalue())
    assert (rec["ended"], rec["ended_at"], rec["final"], rec["after_watch"]) == (
        "exit",
        None,
        None,
        None,
    )
