"""Phases (snap --at A --at B): figures, changes, the verdict, their text and JSON; the
process identity diff compares; a diff's many-table deltas summed up."""

from __future__ import annotations

import io
import json
import os

from dlvsnap.cli import _numbered
from dlvsnap.model import Location
from dlvsnap.phases import Figures, Phase, change, verdict
from dlvsnap.render import jsonl
from dlvsnap.render.text import TextRenderer, _table_totals
from dlvsnap.target import ProcessId, TargetInfo, process_id

HDR = 0xC000010000


def _f(live: int, tomb: int = 0, held: int = 17_962_032, addr: int = HDR) -> Figures:
    return Figures(live, 131_072, tomb, held, live * 136, addr)


def _phases(*figs: Figures) -> list[Phase]:
    return [
        Phase(i, f"main.go:{30 + i}", Location("main.main", "main.go", 30 + i), f)
        for i, f in enumerate(figs, 1)
    ]


def test_change_names_each_figure_that_moved() -> None:
    assert change(_f(100_000), _f(0, 47_000)) == (
        "live -100,000, tombstones +47,000, held unchanged"
    )
    assert change(_f(10), _f(10)) == "held unchanged"
    assert change(_f(10, held=100), _f(20, held=228)) == "live +10, held +128 B"
    assert change(_f(10), _f(10, addr=HDR + 64)) == (
        f"another map: the header moved {HDR:#x} -> {HDR + 64:#x}"
    )


def test_verdict_says_whether_held_bytes_followed_the_live_entries() -> None:
    kept = verdict(_phases(_f(100_000), _f(0, 47_000), _f(10, 46_998)))
    assert kept.startswith("live entries fell 100,000 -> 10 after phase 1 and the map freed")
    assert "holds 17,962,032 B for 10 live entries, which need 1,360 B" in kept
    assert "(17,960,672 B held for nothing)" in kept
    freed = verdict(_phases(_f(100_000), _f(10, held=1_000)))
    assert "holds 17,961,032 B less than at its peak" in freed
    grew = verdict(_phases(_f(10, held=1_000), _f(100_000)))
    assert grew.startswith("live entries at the last phase (100,000) are as many as at the peak")
    other = verdict(_phases(_f(100_000), _f(10, addr=HDR + 8)))
    assert other.startswith("the map at the last phase is another map than at the first")


def test_per_live_and_waste() -> None:
    assert _f(0).per_live is None and _f(0).waste == 17_962_032
    assert _f(100_000).per_live == 179.62032
    assert Figures(10, 8, 0, 100, 1360, HDR).waste == 0  # never negative


def test_phase_table_text() -> None:
    out = io.StringIO()
    ph = _phases(_f(100_000), _f(0, 47_000), _f(10, 46_998))
    TextRenderer(out, colour=False).phase_table("main.m in pid 7", ph, 4)
    lines = out.getvalue().splitlines()
    assert lines[0] == "main.m in pid 7"
    assert lines[1].split() == [
        "at", "live", "slots", "tombstones", "held", "B", "needed", "B", "B/live", "changed",
    ]  # fmt: skip
    row2 = lines[4].split()
    assert row2[:8] == ["2", "main.go:32", "0", "131,072", "47,000", "17,962,032", "0", "-"]
    assert "live -100,000, tombstones +47,000, held unchanged" in lines[4]
    assert "(stopped after phase 3 of 4)" in lines
    table_end = lines.index("(stopped after phase 3 of 4)")
    assert all(len(ln) <= 96 for ln in lines[table_end:])  # the verdict wraps
    assert max(map(len, lines)) <= 160


def test_phase_json_lines() -> None:
    ph = _phases(_f(100_000), _f(0, 47_000))
    first = json.loads(jsonl.phase_line(ph[0], None, {"count": 100_000}))
    second = json.loads(jsonl.phase_line(ph[1], ph[0].figures, {"count": 0}))
    assert first["event"] == "phase" and first["changed"] == "" and first["phase"] == 1
    assert second["changed"].startswith("live -100,000")
    assert second["held_per_live_entry"] is None and second["addr"] == f"{HDR:#x}"
    assert second["state"] == {"count": 0}
    target = TargetInfo("/p", "go1.26.8", (), "amd64", 8, True, "swiss")
    last = json.loads(jsonl.phases_line(ph, 3, expr="main.m", target=target, pid=42))
    assert last["event"] == "phases" and last["asked"] == 3 and last["pid"] == 42
    assert (last["map"], last["go_version"], last["map_impl"]) == ("main.m", "go1.26.8", "swiss")
    assert [p["live_entries"] for p in last["phases"]] == [100_000, 0]
    assert last["verdict"] == verdict(ph)


def test_numbered_save_paths() -> None:
    assert _numbered("m.json", 2) == "m.2.json"
    assert _numbered("/tmp/x/m", 3) == "/tmp/x/m.3"
    assert _numbered("snaps/a.b.json", 1) == "snaps/a.b.1.json"


def test_process_identity() -> None:
    me = process_id(os.getpid())
    assert me.pid == os.getpid() and me.start.count(":") == 1
    assert me.same(process_id(os.getpid())) is True
    assert me.same(ProcessId(me.pid, "other-boot:1")) is False
    assert me.same(ProcessId(me.pid + 1, me.start)) is False
    assert me.same(ProcessId(me.pid)) is None  # a file that did not record the start
    assert process_id(2**22 + 12345) == ProcessId(2**22 + 12345)  # no such process


def test_many_tables_changed_are_summed_up() -> None:
    changes = {
        i: {"growth_left": (528, 527), "groups_addr": (0x1000 * i, 0x9000 * i)} for i in range(128)
    }
    changes[0]["used"] = (0, 3)
    assert _table_totals(changes) == [
        "128 tables: growthLeft -128 total",
        "128 tables: groups moved",
        "1 table: used +3 total",
    ]


def test_advice_follows_the_summary_and_the_phase_table() -> None:
    from dlvsnap.model import Summary

    text = "Deleting gave no memory back: " + "word " * 60
    out = io.StringIO()
    TextRenderer(out, colour=False).summary(Summary(advice=text.strip()))
    lines = out.getvalue().splitlines()
    first = lines.index("") if "" in lines[1:] else -1
    assert lines[-1].startswith("word") and all(len(ln) <= 96 for ln in lines[first:])
    assert (
        " ".join(lines[-5:]).endswith("word word")
        and "Deleting gave no memory back:" in out.getvalue()
    )
    out = io.StringIO()
    TextRenderer(out, colour=False).phase_table("t", _phases(_f(10)), 1, "Go maps never shrink.")
    assert out.getvalue().endswith("\n\nGo maps never shrink.\n")
    buf = io.StringIO()
    jsonl.summary(buf, Summary(advice="A."), "proc")
    assert json.loads(buf.getvalue())["advice"] == "A."
    buf = io.StringIO()
    jsonl.summary(buf, Summary(), "proc")
    assert json.loads(buf.getvalue())["advice"] is None
