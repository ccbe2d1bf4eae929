"""`dlvsnap report` on hostile input: keys of every kind a program can hold (structs, arrays,
pointers, non-UTF-8 and escape-laden strings, infinite floats) from real `watch --json`
runs of fixtures/hostilekeys, template markers in keys and map names, bidi and control
characters, and events files that are not what `watch --json` writes."""

from __future__ import annotations

import json
import re
import unicodedata
from html import unescape
from pathlib import Path
from typing import Any, cast

import pytest

from dlvsnap.errors import TargetError
from dlvsnap.render import html
from dlvsnap.untrusted import visible
from tests import hostile
from tests.support import build_fixture, dlv_binary, run_watch
from tests.test_report import _page_data, _report, run_chromium


def _raw_controls(text: str, allowed: str = "\n") -> list[str]:
    """Characters that should never reach a page or a terminal raw (newlines aside)."""
    return sorted(
        {
            f"U+{ord(c):04X}"
            for c in text
            if c not in allowed and unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs")
        }
    )


def _page(records: list[dict[str, Any]], source: str = "run.jsonl") -> str:
    return html.render(records, source)


@pytest.mark.parametrize("path", hostile.EVENTS, ids=lambda p: p.name)
def test_real_runs_with_any_key_kind_render(path: Path) -> None:
    """Struct, array and pointer keys of schema 1 and non-UTF-8 strings are {"hex": ...},
    infinite floats {"float": "inf"}: each changed slot's key is on the page (it was a
    TypeError, unhashable dict, reported as "a record does not have the shape...", exit 5)."""
    records = html.read_events(path)
    page = _page(records, str(path))
    d = _page_data(page)
    ops = [r for r in records if r["event"] in html.OPS]
    assert len(d["ev"]) == len(ops)
    for ev, r in zip(d["ev"], ops, strict=True):
        if not r["changes"]:
            assert "c" not in ev
            continue
        shown = []
        for c in r["changes"]:
            k, ak = c["key"], c["after_key"]
            shown.append(" → ".join(html.key_text(x) for x in (k, ak) if x is not None))
        assert ev["kk"] == shown
        for c, text in zip(r["changes"], ev["kk"], strict=True):
            k = c["key"]
            if isinstance(k, dict) and "hex" in k:
                assert text.startswith("0x" + k["hex"][:32])
            elif isinstance(k, dict) and "float" in k:
                assert text == k["float"]
    assert _raw_controls(page) == []


def test_keys_of_any_json_value_render() -> None:
    """A later schema may decode struct and pointer keys into objects: any JSON value is a
    key the page shows."""
    records = html.read_events(hostile.DATA / "swiss-ints.events.jsonl")
    first = next(r for r in records if r["event"] == "delete" and r["changes"])
    keys: list[Any] = [
        {"X": 1, "Y": [1, 2], "T": {"hex": "ab"}},
        [1, [2, [3]]],
        {"hex": 7},
        {"float": ["inf"]},
        {},
        [],
        True,
        -0.5,
        "x" * 100,
    ]
    for k in keys:
        first["changes"][0]["key"] = k
        first["changes"][0]["after_key"] = k  # equal dicts: one key shown, never hashed
        first["key"] = k
        d = _page_data(_page(records))
        ev = next(e for e in d["ev"] if e["s"] == first["seq"])
        assert ev["kk"][0] == html.key_text(k) and ev["k"] == html.key_text(k)


def test_template_markers_in_keys_and_map_names_stay_text() -> None:
    """The page is filled in one pass: a key "@JS@" (in the real run of fixtures/hostilekeys)
    no longer pastes the script into the data, and a map named "@CHART@ @JS@" no longer puts
    the chart and the script inside <h1>."""
    records = html.read_events(hostile.DATA / "swiss-strings.events.jsonl")
    assert any(r.get("key") == "@JS@" for r in records)
    next(r for r in records if r["event"] == "start")["map"] = "@CHART@ @JS@ @TITLE@ @DATA@"
    page = _page(records)
    assert page.count("<svg") == 1 and page.count("<script>") == 1
    assert page.count('<script type="application/json" id="data">') == 1
    assert page.count("use strict") == 1  # the script, once
    h1 = re.search(r'<h1 id="title">(.*?)</h1>', page, re.S)
    assert h1 and h1[1] == "dlvsnap report: @CHART@ @JS@ @TITLE@ @DATA@ (run.jsonl)"
    title = re.search(r"<title>(.*?)</title>", page, re.S)
    assert title and title[1] == h1[1]
    d = _page_data(page)  # the data element is whole JSON
    assert d["start"]["map"] == "@CHART@ @JS@ @TITLE@ @DATA@"
    assert ['"@JS@"'] in [e.get("kk") for e in d["ev"]]


def test_bidi_and_control_characters_are_escaped_everywhere_on_the_page() -> None:
    """Keys, the map's name, file and function names, notes, warnings, header fields and
    the file's own name: none reaches the page with a control or bidi character raw."""
    evil = "a\u202eb\u2066c\x1b[31md\x85e\u200bf\u2028g"
    records = html.read_events(hostile.DATA / "swiss-ints.events.jsonl")
    start = next(r for r in records if r["event"] == "start")
    start["map"] = start["go_version"] = start["delve"] = evil
    for r in records:
        if r["event"] in html.OPS:
            r["function"] = r["file"] = r["entry"] = evil
            r["warnings"] = [evil]
            r["header_changes"][evil] = [evil, evil]
            r["table_changes"][evil] = {evil: [1, 2]}
            r["key"] = evil
            for c in r["changes"]:
                c["key"] = evil
    records.insert(2, {"v": 1, "event": "note", "kind": "moved", "message": evil})
    page = _page(records, f"/tmp/{evil}.jsonl")
    assert _raw_controls(page) == []
    d = _page_data(page)
    assert visible(evil) in d["locs"][0]
    assert d["ev"][0]["nt"] == [visible(evil)] and d["ev"][0]["wn"] == [visible(evil)]
    assert d["ev"][0]["k"] == html.key_text(evil)
    assert html.key_text(evil) == '"' + visible(evil).replace("\\x1b", "\\u001b") + '"'


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            hostile.ev_huge_slots_per_group,
            "line 2 is not `dlvsnap watch --json` schema 1: slots_per_group: 1000000000",
        ),
        (hostile.ev_infinity, "line 3 is not JSON"),
        (hostile.ev_nan_memory, "line 2 is not JSON"),
        (hostile.ev_overflowing_number, "number is infinity"),
        (hostile.ev_deep_key, "is not JSON"),
        (
            hostile.ev_truthy_string,
            "line 3 is not `dlvsnap watch --json` schema 1: key_present: 'false' (a string) is not",
        ),
    ],
    ids=list(hostile.HOSTILE_EVENTS),
)
def test_hostile_events_files_are_refused(tmp_path: Path, make, message) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "hostile.jsonl"
    path.write_text(make())
    with pytest.raises(TargetError) as e:
        html.read_events(path)
    assert message in str(e.value) and "\n" not in str(e.value)


def _edit(edit) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    records = hostile.events_records()
    edit(records)
    return records


def _first(recs: list[dict[str, Any]], kind: str = "delete") -> dict[str, Any]:
    return next(r for r in recs if r["event"] == kind)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda r: _first(r).update(seq="1"),
            "record 3 is not `dlvsnap watch --json` schema 1: seq: '1' (a string)",
        ),
        (
            lambda r: _first(r).update(seq=None),
            "record 3 is not `dlvsnap watch --json` schema 1: seq: null is not an integer",
        ),
        (
            lambda r: _first(r).update(changes={}),
            "record 3 is not `dlvsnap watch --json` schema 1: changes: an object is not a list",
        ),
        (lambda r: _first(r)["changes"][0].update(slot="t0/g1/s8"), "is not a slot label"),
        (lambda r: _first(r)["changes"][0].update(slot="<b>/s1"), "'<b>' (a string) is not a"),
        (
            lambda r: _first(r).update(moved=[1]),
            "record 3 is not `dlvsnap watch --json` schema 1: moved: not [old, new]",
        ),
        (lambda r: _first(r).update(memory={"held_bytes": -1}), "held_bytes: -1 (an integer)"),
        (
            lambda r: _first(r).update(warnings=[1]),
            "record 3 is not `dlvsnap watch --json` schema 1: warnings: 1 (an integer) is not a",
        ),
        (lambda r: _first(r)["header_changes"].update(used=[1]), "not [before, after]"),
        (lambda r: _first(r, "snapshot").update(states="F"), "1 characters for 16 groups"),
        (lambda r: _first(r, "snapshot").update(groups=["x"] * 16), "'x' (a string) is not a"),
        (lambda r: _first(r, "snapshot").update(slots_per_group=64), "64 (an integer) is not"),
        (
            lambda r: _first(r, "start").update(map=["m"]),
            "record 1 is not `dlvsnap watch --json` schema 1: map: a list is not a string",
        ),
        (lambda r: _first(r, "summary").update(count=1.5), "count: 1.5 (a number) is not an"),
    ],
)
def test_every_field_the_report_reads_is_type_checked(edit, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TargetError) as e:
        html.render(_edit(edit), "x.jsonl")
    assert message in str(e.value), str(e.value)


def test_a_nan_never_reaches_the_page() -> None:
    """Numbers the page shows come from the parser, which refuses NaN and Infinity; a NaN
    built in Python (a bug) fails loudly instead of writing JSON the browser refuses."""
    with pytest.raises(ValueError, match="nan"):
        html._safe({"x": float("nan")})
    with pytest.raises(ValueError, match="Out of range float"):
        html._script_json({"x": float("inf")})


# --------------------------------------------------------------------------- in Chromium

DRIVER = """<!DOCTYPE html><html><body><pre id="out"></pre>
<iframe id="f" src="report.html" onload="go()"></iframe><script>
function go() {
  const d = document.getElementById("f").contentDocument, log = [];
  const s = d.getElementById("slider"), n = Number(s.max) + 1;
  for (let i = 0; i < n; i++) {
    s.value = String(i); s.dispatchEvent(new Event("input"));
    const rows = [...d.querySelectorAll("#changes tbody tr")].map(
      tr => [...tr.querySelectorAll("td")].map(td => td.textContent));
    const changed = [...d.querySelectorAll(".slot.changed")].map(x => x.dataset.slot);
    log.push({pos: d.getElementById("position").textContent, rows, changed,
              title: d.getElementById("ev-title").textContent});
  }
  document.getElementById("out").textContent = JSON.stringify({
    ready: d.body.dataset.ready, h1: d.getElementById("title").textContent,
    h1_elements: d.querySelectorAll("h1 *").length, text: d.body.innerText, log});
}
</script></body></html>"""


def drive(tmp: Path, page: Path) -> dict[str, Any]:
    """Every event of a report, selected with the slider in Chromium: its changed-slots
    table, the slots outlined, the page's title."""
    (tmp / "driver.html").write_text(DRIVER)
    assert page == tmp / "report.html"
    p = run_chromium(
        tmp, (tmp / "driver.html").as_uri(), "--allow-file-access-from-files", "--dump-dom"
    )
    m = re.search(r'<pre id="out">(.*?)</pre>', p.stdout, re.S)
    assert m and m[1], p.stdout[:2000]
    return cast(dict[str, Any], json.loads(unescape(m[1])))


KEY_KINDS = {
    "main.Structs": "struct",
    "main.Arrays": "array",
    "main.Pointers": "pointer",
    "main.Strings": "hex",  # "\xff\xfe not UTF-8"
    "main.Floats": "float",
}


@pytest.mark.live
@pytest.mark.chromium
@pytest.mark.parametrize("expr", list(KEY_KINDS))
def test_report_of_hostile_keys_in_chromium(tmp_path: Path, expr: str) -> None:
    """A real `dlvsnap watch --json` of fixtures/hostilekeys under the real Delve, `dlvsnap
    report`, then Chromium steps through every event: the changed slots are outlined and
    listed with their keys, and no control or bidi character is shown raw."""
    dlv_binary()
    run = run_watch(build_fixture("hostilekeys"), expr, tmp=tmp_path)
    assert run.returncode == 0, run.stderr
    ops = run.ops
    keys = [c["key"] for ev in ops for c in ev["changes"]]
    assert any(isinstance(k, dict) and KEY_KINDS[expr] in k for k in keys), keys
    events = tmp_path / "events.jsonl"
    events.write_text(run.stdout)
    page = tmp_path / "report.html"
    p = _report(str(events), "-o", str(page))
    assert p.returncode == 0, p.stderr
    out = drive(tmp_path, page)
    assert out["ready"] == "1" and out["h1_elements"] == 0
    assert out["h1"] == f"dlvsnap report: {expr} (events.jsonl)"
    assert len(out["log"]) == len(ops)
    names = {"full", "empty", "deleted", "emptyOne", "emptyRest"}
    for step, ev in zip(out["log"], ops, strict=True):
        assert step["title"].startswith(f"#{ev['seq']} delete")
        assert sorted(step["changed"]) == sorted(c["slot"] for c in ev["changes"])
        want = [
            [c["slot"], c["before_state"], c["after_state"], html.key_text(c["key"])]
            for c in ev["changes"]
        ]
        assert step["rows"] == (want or [["none"]]), step
        for row in step["rows"][: len(ev["changes"])]:
            assert {row[1], row[2]} <= names
    assert _raw_controls(out["text"], "\n\t") == []  # innerText: a tab between cells
    if expr == "main.Strings":  # every hostile string, shown escaped
        text = out["text"]
        for shown in (
            r'"\u001b[31mred\u001b[0m\u001b]0;title\u0007"',
            r'"abc\u202edcba\u2066x\u2069"',
            '"@JS@"',
            '"</script><script>alert(1)</script>"',
            r'"c1\x85\x9b31m"',
            r'"zero\u200bwidth\ufeff"',
            r'"line\nbreak\r\ttab"',
            "0xfffe206e6f74205554462d38",
        ):
            assert shown in text, shown
