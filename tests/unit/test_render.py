"""Renderers on a synthetic delete: the JSON Lines schema and the human view."""

from __future__ import annotations

import io
import json

from dlvsnap.diff import diff
from dlvsnap.model import DeleteEvent, Location
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
