"""`dlvsnap report`: the `snapshot` JSON Lines record, the HTML page built from a run's
records (dlvsnap/render/html.py), the command's errors, and the page in a real headless
Chromium: on synthetic runs (one of 10,000 deletes on a 100,000-entry map) and on a real
`dlvsnap watch --json` of fixtures/deletes under the real pinned Delve."""

from __future__ import annotations

import io
import json
import random
import re
import shutil
import struct
import subprocess
import sys
import time
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from dlvsnap.decode.classic import tophash_state
from dlvsnap.decode.swiss import ctrl_state
from dlvsnap.errors import ExitCode, TargetError
from dlvsnap.layouts import load_layout
from dlvsnap.model import STATE_CHARS, KeyType, MapSnapshot, MapType, Memory, Rows
from dlvsnap.render import html, jsonl
from tests.support import build_fixture, dlv_binary, missing, require_live, run_watch

# --------------------------------------------------------------------------- synthetic runs


def _change(slot: str, before: str, after: str, key: Any = None) -> dict[str, Any]:
    _, _, idx = slot.rpartition("/s")
    return {
        "slot": slot,
        "index": int(idx),
        "before_state": before,
        "after_state": after,
        "key": key,
        "after_key": None,
    }


def _delete(seq: int, changes: list[dict[str, Any]], count: int, **extra: Any) -> dict[str, Any]:
    present = any(c["before_state"] == "full" for c in changes)
    after = count - present
    rec = {
        "v": 1,
        "event": "delete",
        "seq": seq,
        "entry": "runtime.mapdelete_fast64",
        "via": None,
        "goroutine": 1,
        "function": "main.del",
        "file": "/src/main.go",
        "line": 14,
        "map_addr": 0xC000010000,
        "key": seq,
        "key_present": present,
        "count_before": count,
        "count_after": after,
        "changes": changes,
        "header_changes": {"used": [count, after]} if present else {},
        "table_changes": {},
        "reseeded": False,
        "moved": None,
        "tombstones": 0,
        "memory": {"held_bytes": 2264, "needed_bytes": 16 * after, "live_entries": after},
        "layout": "swiss-go1.25",
        "header": {"used": after},
        "warnings": [],
    }
    rec.update(extra)
    return rec


START = {
    "v": 1,
    "event": "start",
    "map": "m",
    "go_version": "go1.26.8",
    "experiments": [],
    "goarch": "amd64",
    "ptr_size": 8,
    "map_impl": "swiss",
    "delve": "1.27.2",
}


def _small_run() -> list[dict[str, Any]]:
    """A swiss table of 4 groups: a delete that empties a slot, one that leaves a
    tombstone, an absent key, and a delete whose header change has a 64-bit seed."""
    states = "FFFFFFEE" + "FFFFFFFF" + "FFEEEEEE" + "EEEEEEEE"
    return [
        START,
        {
            "v": 1,
            "event": "snapshot",
            "seq": 0,
            "impl": "swiss",
            "slots_per_group": 8,
            "groups": ["t0/g0", "t0/g1", "t0/g2", "t0/g3"],
            "states": states,
            "count": 16,
            "memory": {"held_bytes": 2264, "needed_bytes": 256, "live_entries": 16},
        },
        _delete(1, [_change("t0/g0/s1", "full", "empty", 11)], 16),
        {
            "v": 1,
            "event": "note",
            "kind": "moved",
            "message": "the header moved",
            "old": 1,
            "new": 2,
        },
        _delete(2, [_change("t0/g1/s3", "full", "deleted", "</script><b>x</b>")], 15),
        _delete(3, [], 14),
        _delete(
            4,
            [_change("t0/g2/s0", "full", "empty", 4), _change("t0/g1/s7", "full", "deleted", 5)],
            14,
            header_changes={"used": [14, 12], "seed": [2**63 + 5, 2**60 + 1]},
            table_changes={"0": {"used": [14, 12], "growth_left": [4, 5]}},
        ),
        {
            "v": 1,
            "event": "summary",
            "deletes": 4,
            "clears": 0,
            "keys_removed": 4,
            "absent_deletes": 1,
            "exit_status": 0,
            "stopped_early": False,
            "memory_reader": "proc",
            "tombstones": 2,
            "count": 12,
            "memory": {"held_bytes": 2264, "needed_bytes": 192, "live_entries": 12},
        },
    ]


def _big_run(n_events: int = 10_000, entries: int = 100_000) -> list[dict[str, Any]]:
    """10,000 deletes from a 100,000-entry swiss map: 128 tables of 128 groups (131,072
    slots at 7/8 load), as a real --json run would record them."""
    rnd = random.Random(4)
    groups = [f"t{t}/g{g}" for t in range(128) for g in range(128)]
    states = ["E"] * (len(groups) * 8)
    full = rnd.sample(range(len(states)), entries)
    for k in full:
        states[k] = "F"
    recs: list[dict[str, Any]] = [
        START,
        {
            "v": 1,
            "event": "snapshot",
            "seq": 0,
            "impl": "swiss",
            "slots_per_group": 8,
            "groups": groups,
            "states": "".join(states),
            "count": entries,
            "memory": {"held_bytes": 2_400_000, "needed_bytes": 16 * entries},
        },
    ]
    count = entries
    for seq in range(1, n_events + 1):
        k = full.pop()
        after = "deleted" if seq % 3 else "empty"
        rec = _delete(seq, [_change(f"{groups[k // 8]}/s{k % 8}", "full", after, k)], count)
        rec["table_changes"] = {str(k // 1024): {"used": [700, 699], "growth_left": [3, 4]}}
        rec["header"] = {"used": count - 1, "seed": 4893266719993219992, "dirLen": 128}
        rec["memory"]["held_bytes"] = 2_400_000
        recs.append(rec)
        count -= 1
    return recs


# --------------------------------------------------------------------------- the record


def _snap(
    impl: str, rows: list[tuple[int, int, int, bool]], ctrl: bytes, count: int
) -> MapSnapshot:
    """A real snapshot object: rows (table, group/bucket, overflow, old) and their slots'
    control bytes, named by the layout's own state table."""
    classic = impl == "classic"
    layout = load_layout(impl, "go1.22.1" if classic else "go1.26.1", 8, True)
    states = tuple(
        tophash_state(b, layout) if classic else ctrl_state(b, layout) for b in range(256)
    )
    n = len(rows)
    r = Rows(
        classic,
        np.array([x[0] for x in rows], dtype=np.int32),
        np.array([x[1] for x in rows], dtype=np.int64),
        np.array([x[2] for x in rows], dtype=np.int32),
        np.array([x[3] for x in rows], dtype=np.bool_),
        np.arange(n, dtype=np.uint64),
        np.frombuffer(ctrl, dtype=np.uint8).copy(),
        np.zeros(8 * n, dtype=np.int64),
    )
    mem = Memory(48, 0, 0, 100 - 48, 0, count, 16)
    mt = MapType(0, KeyType(2, 8, False), KeyType(2, 8, False), 136, 8, 16, 16, 16, 0)
    return MapSnapshot(impl, layout.name, 0, {}, count, mt, (), r, states, mem)


def test_snapshot_record_lists_groups_and_one_state_char_per_slot() -> None:
    rows = [(t, g, 0, False) for t in (0, 2) for g in range(2)]
    ctrl = bytes(0x11 if (g + s) % 3 else 0xFE for _, g, _, _ in rows for s in range(8))
    out = io.StringIO()
    jsonl.snapshot(out, _snap("swiss", rows, ctrl, 20))
    rec = json.loads(out.getvalue())
    assert rec["event"] == "snapshot" and rec["v"] == 2 and rec["seq"] == 0
    assert rec["impl"] == "swiss" and rec["slots_per_group"] == 8 and rec["count"] == 20
    assert rec["groups"] == ["t0/g0", "t0/g1", "t2/g0", "t2/g1"]
    assert rec["states"] == "".join("F" if b == 0x11 else "D" for b in ctrl)
    assert rec["memory"]["held_bytes"] == 100 and rec["memory"]["needed_bytes"] == 20 * 16


def test_snapshot_record_classic_labels_and_every_state() -> None:
    # tophash: 0 emptyRest, 1 emptyOne, 2 evacuatedX, 3 evacuatedY, 4 evacuatedEmpty, 5+ full
    rows = [(-1, 12, 1, False), (-1, 4, 0, True), (-1, 0, 0, False)]
    ctrl = bytes([9, 1, 0, 2, 3, 4, 200, 1]) + bytes([2] * 8) + bytes([5] + [0] * 7)
    small_ctrl = bytes([0x80] * 7 + [0x81])  # 0x81 is no swiss control byte
    out = io.StringIO()
    jsonl.snapshot(out, _snap("classic", rows, ctrl, 3))
    jsonl.snapshot(out, _snap("swiss", [(-1, 0, 0, False)], small_ctrl, 0))
    classic, swiss_small = (json.loads(x) for x in out.getvalue().splitlines())
    assert classic["groups"] == ["b12+1", "old4", "b0"]
    assert classic["states"] == "ForXYZFo" + "X" * 8 + "F" + "r" * 7
    assert swiss_small["groups"] == ["g0"] and swiss_small["states"] == "E" * 7 + "?"


# --------------------------------------------------------------------------- the page


def _page_data(page: str) -> dict[str, Any]:
    m = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
    assert m, "no data element"
    return cast(dict[str, Any], json.loads(m[1]))


def test_page_holds_one_grid_and_per_event_deltas() -> None:
    page = html.render(_small_run(), "run.jsonl")
    d = _page_data(page)
    assert d["groups"] == ["t0/g0", "t0/g1", "t0/g2", "t0/g3"] and d["spg"] == 8
    assert d["init"] == "FFFFFFEE" + "FFFFFFFF" + "FFEEEEEE" + "EEEEEEEE"
    assert d["full_grid"] is True and d["added"] == []
    ev = d["ev"]
    assert [e["s"] for e in ev] == [1, 2, 3, 4]
    assert ev[0]["c"] == [0, 1] and (ev[0]["b"], ev[0]["a"]) == ("F", "E")
    assert ev[1]["c"] == [1, 3] and ev[1]["a"] == "D" and ev[1]["nt"] == ["the header moved"]
    assert "c" not in ev[2] and ev[2]["p"] is False  # the absent key changed nothing
    assert ev[3]["c"] == [2, 0, 1, 7] and ev[3]["a"] == "ED"
    # integers past 2**53 would be rounded by the browser: they travel as text (seeds and
    # addresses in hex, as the text view prints them)
    assert ["seed", hex(2**63 + 5), hex(2**60 + 1)] in ev[3]["hc"]
    assert ["0", "growth_left", "4", "5"] in ev[3]["tc"]
    assert d["locs"][ev[0]["w"]] == "main.del main.go:14  (runtime.mapdelete_fast64)"
    assert d["chart"]["n"] == 5 and d["chart"]["offset"] == 1  # snapshot + 4 events


def test_page_is_self_contained_and_escapes_its_data() -> None:
    page = html.render(_small_run(), "run.jsonl")
    # nothing to fetch: no URL at all, no src, links only to the page's own sections, a
    # CSP that forbids every fetch
    assert not re.search(r"https?:", page)
    assert not re.search(r"\bsrc\s*=", page, re.I)
    links = re.findall(r"\bhref\s*=\s*(\"[^\"]*\"|\S+)", page, re.I)
    assert links and all(re.fullmatch(r'"#[\w-]+"', x) for x in links), links
    for target in {x.strip('"#') for x in links}:
        assert f'id="{target}"' in page
    assert "default-src 'none'" in page
    # the key "</script><b>x</b>" cannot close the data element
    assert page.count("</script>") == 2
    assert "<b>x</b>" not in page
    assert _page_data(page)["ev"][1]["kk"] == ['"</script><b>x</b>"']
    # the chart is drawn server-side: held and needed polylines
    assert 'id="held-line"' in page and 'id="needed-line"' in page


def test_unknown_slots_add_their_group_in_slot_order() -> None:
    """A classic overflow bucket linked in after the snapshot: its group is added next to
    its bucket, its slots start in the before-state of their first change."""
    recs = [
        {**START, "map_impl": "classic"},
        {
            "v": 1,
            "event": "snapshot",
            "seq": 0,
            "impl": "classic",
            "slots_per_group": 8,
            "groups": ["b0", "b1", "old0"],
            "states": "FFFFFFFF" + "FFrrrrrr" + "XXXXXXXX",
            "count": 10,
            "memory": {"held_bytes": 500, "needed_bytes": 160},
        },
        _delete(
            1,
            [_change("b0+1/s0", "unlinked", "full", 9), _change("b0/s2", "full", "emptyOne", 3)],
            10,
        ),
        _delete(2, [_change("b0+1/s0", "full", "emptyRest", 9)], 10),
        _delete(3, [_change("old7/s1", "unlinked", "evacuatedX")], 9),
    ]
    d = _page_data(html.render(recs))
    assert d["groups"] == ["b0", "b0+1", "b1", "old0", "old7"]
    assert d["added"] == [1, 4] and d["in_snapshot"] == 3
    assert d["init"][8:16] == "U???????"  # b0+1: slot 0 was unlinked before event 1
    assert d["init"][32:40] == "?U??????"
    assert d["ev"][0]["c"] == [1, 0, 0, 2]
    assert d["ev"][2]["c"] == [4, 1]


def test_a_file_without_snapshot_shows_the_groups_seen_in_changes() -> None:
    recs = [r for r in _small_run() if r["event"] != "snapshot"]
    d = _page_data(html.render(recs))
    assert d["snapshot"] is None
    assert d["added"] == []  # nothing to mark as "not in the first snapshot"
    assert d["groups"] == ["t0/g0", "t0/g1", "t0/g2"]  # sorted like slots, not seen order
    assert d["init"] == "?F??????" + "???F???F" + "F???????"
    assert d["chart"]["offset"] == 0 and d["chart"]["n"] == 4
    assert len(d["ev"]) == 4


def test_a_run_of_10000_events_on_a_100000_entry_map_stays_small() -> None:
    """One grid of 131,072 slots is ~0.3 MB as text; each event adds its deltas only
    (~250 bytes here). A grid per event would be 10,000 x 131,072 slots, over 1.3 GB as one
    character each; the page must stay a few MB: under 8 MB, and its size must grow with the
    events' deltas, not with events x slots."""
    recs = _big_run()
    t = time.perf_counter()
    page = html.render(recs, "big.jsonl")
    elapsed = time.perf_counter() - t
    size = len(page.encode())
    assert size < 8_000_000, size
    assert elapsed < 20, elapsed  # about 0.5 s on this project's 2-core machine
    small = len(html.render(recs[:1002], "big.jsonl").encode())  # the same map, 1,000 events
    per_event = (size - small) / 9_000
    assert per_event < 400, per_event
    d = _page_data(page)
    assert d["full_grid"] is False and len(d["groups"]) == 16_384 and len(d["ev"]) == 10_000
    assert len(d["init"]) == 131_072 and d["init"].count("F") == 100_000
    # the chart keeps at most CHART_COLUMNS columns, not one point per event
    points = re.search(r'id="needed-line" class="needed" points="([^"]*)"', page)
    assert points and len(points[1].split()) <= 4 * html.CHART_COLUMNS


def test_parse_errors_name_the_line() -> None:
    good = json.dumps(START)
    with pytest.raises(TargetError, match=r"x\.jsonl: line 2 is not JSON"):
        html.parse_jsonl([good, "{not json"], "x.jsonl")
    with pytest.raises(
        TargetError, match=r"line 1 has schema version 3; .* reads versions 1 and 2"
    ):
        html.parse_jsonl([json.dumps({**START, "v": 3})], "x.jsonl")
    with pytest.raises(TargetError, match=r"line 1 is not a dlvsnap record"):
        html.parse_jsonl(['["v", 1]'], "x.jsonl")
    with pytest.raises(TargetError, match="no delete or clear events"):
        html.render(html.parse_jsonl([good], "x.jsonl"), "x.jsonl")
    with pytest.raises(TargetError, match="more than one run"):
        html.render([START, *_small_run()], "x.jsonl")
    # --live-keys lists are dropped on reading; blank lines are allowed
    recs = html.parse_jsonl([good, "", json.dumps({**_small_run()[2], "live_keys": [1]})], "x")
    assert [r["event"] for r in recs] == ["start", "delete"] and "live_keys" not in recs[1]


def _report(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dlvsnap", "report", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("", "no delete or clear events"),
        ("hello\n", "line 1 is not JSON"),
        (json.dumps({**START, "v": 7}) + "\n", "schema version 7"),
        (json.dumps(START) + "\n", "no delete or clear events"),
        (b"\xff\xfe\n", "not UTF-8"),
        ("dir", "is a directory"),
    ],
    ids=["missing", "empty", "not-json", "version", "no-events", "binary", "directory"],
)
def test_report_command_refuses_bad_input_in_one_line(
    tmp_path: Path, content: str | bytes | None, message: str
) -> None:
    src = tmp_path / "events.jsonl"
    if content == "dir":
        src.mkdir()
    elif isinstance(content, bytes):
        src.write_bytes(content)
    elif content is not None:
        src.write_text(content)
    p = _report(str(src), "-o", str(tmp_path / "out.html"))
    assert p.returncode == ExitCode.TARGET, p.stderr
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("dlvsnap: "), p.stderr
    assert message in p.stderr
    assert not (tmp_path / "out.html").exists()


def test_report_command_writes_the_page(tmp_path: Path) -> None:
    src = tmp_path / "events.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in _small_run()))
    out = tmp_path / "report.html"
    p = _report(str(src), "-o", str(out))
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"wrote {out}: ") and p.stdout.rstrip().endswith("4 events")
    assert out.read_text() == html.render(html.read_events(src), str(src))
    p = _report(str(src))  # -o is required
    assert p.returncode == ExitCode.USAGE


# --------------------------------------------------------------------------- in Chromium

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # no network: every request goes to a proxy that refuses it, no name resolves
    "--proxy-server=127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND",
]


def chromium() -> str:
    """Debian's chromium; missing is a failure under CI=true or DLVSNAP_LIVE=1."""
    require_live("chromium")
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        missing("chromium is not installed (scripts/setup --dev installs Debian's `chromium`)")
    assert found
    return found


def run_chromium(tmp: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    profile = Path(tmp) / f"profile-{time.monotonic_ns()}"
    profile.mkdir()
    p = subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", *args, url],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return p


class Dom(HTMLParser):
    """The slot elements and a few ids of a dumped DOM."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.slots: list[dict[str, str]] = []
        self.ready = False
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "slot" in a.get("class", "").split():
            self.slots.append({**a, "changed": str("changed" in a["class"].split())})
        if tag == "body" and a.get("data-ready") == "1":
            self.ready = True

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def changed(self) -> dict[str, str]:
        return {s["data-slot"]: s["data-state"] for s in self.slots if s["changed"] == "True"}


def dump_dom(tmp: Path, page: Path, fragment: str) -> Dom:
    p = run_chromium(tmp, page.as_uri() + fragment, "--dump-dom")
    dom = Dom(p.stdout)
    assert dom.ready, "the page's script did not finish: " + p.stderr[-2000:]
    return dom


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    w, h = struct.unpack(">II", head[16:24])
    return w, h


@pytest.mark.chromium
def test_page_in_chromium_replays_the_deltas(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    html.write(page, _small_run(), "run.jsonl")
    dom = dump_dom(tmp_path, page, "#seq=4")
    assert dom.changed() == {"t0/g2/s0": "empty", "t0/g1/s7": "deleted"}
    states = {s["data-slot"]: s["data-state"] for s in dom.slots}
    assert len(states) == 32
    # events 1-3 were applied before event 4
    assert states["t0/g0/s1"] == "empty" and states["t0/g1/s3"] == "deleted"
    assert states["t0/g0/s0"] == "full" and states["t0/g3/s0"] == "empty"
    assert hex(2**63 + 5) in "".join(dom.text)  # the seed, exact
    assert "</script><b>x</b>" not in "".join(dom.text)  # key 2 is shown for event 2 only
    dom = dump_dom(tmp_path, page, "#seq=2")
    assert dom.changed() == {"t0/g1/s3": "deleted"}
    assert "</script><b>x</b>" in "".join(dom.text)  # as text, not markup
    assert {s["data-slot"]: s["data-state"] for s in dom.slots}["t0/g1/s7"] == "full"
    assert dump_dom(tmp_path, page, "#seq=3").changed() == {}  # the absent key


def _replay(recs: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The grid after each event: the snapshot record with the changes applied in order."""
    snap = next(r for r in recs if r["event"] == "snapshot")
    names = {v: k for k, v in STATE_CHARS.items()}
    spg, init = snap["slots_per_group"], snap["states"]
    grid = {
        f"{g}/s{s}": names[init[i * spg + s]]
        for i, g in enumerate(snap["groups"])
        for s in range(spg)
    }
    out = []
    for ev in (r for r in recs if r["event"] in html.OPS):
        for c in ev["changes"]:
            assert grid[c["slot"]] == c["before_state"], c  # the deltas chain up
            grid[c["slot"]] = c["after_state"]
        out.append(dict(grid))
    return out


DRIVER = """<!DOCTYPE html><html><body><pre id="out"></pre>
<iframe id="f" src="report.html#seq=4" onload="go()"></iframe><script>
function go() {
  const d = document.getElementById("f").contentDocument, log = [];
  const grab = step => {
    const slots = {}, changed = {};
    d.querySelectorAll(".slot").forEach(x => {
      slots[x.dataset.slot] = x.dataset.state;
      if (x.classList.contains("changed")) changed[x.dataset.slot] = x.dataset.state;
    });
    log.push({step, pos: d.getElementById("position").textContent, slots, changed});
  };
  grab("open #seq=4");
  d.getElementById("prev").click(); grab("prev");
  d.getElementById("prev").click(); grab("prev");
  d.getElementById("next").click(); grab("next");
  const s = d.getElementById("slider");
  s.value = "0"; s.dispatchEvent(new Event("input")); grab("slider to 0");
  d.dispatchEvent(new KeyboardEvent("keydown", {key: "ArrowRight"})); grab("arrow right");
  d.querySelector('#events li[data-seq="4"]').click(); grab("list #4");
  document.getElementById("out").textContent = JSON.stringify(log);
}
</script></body></html>"""


@pytest.mark.chromium
def test_page_in_chromium_steps_back_and_forth(tmp_path: Path) -> None:
    """Prev/next, the slider, the arrow keys and the event list, driven from a page that
    frames the report: going back undoes each event's changes exactly."""
    recs = _small_run()
    html.write(tmp_path / "report.html", recs, "run.jsonl")
    (tmp_path / "driver.html").write_text(DRIVER)
    p = run_chromium(
        tmp_path,
        (tmp_path / "driver.html").as_uri(),
        "--allow-file-access-from-files",
        "--dump-dom",
    )
    m = re.search(r'<pre id="out">(.*?)</pre>', p.stdout, re.S)
    assert m and m[1], p.stdout[:2000]
    log = json.loads(unescape(m[1]))
    grids = _replay(recs)
    ops = [r for r in recs if r["event"] in html.OPS]
    want = [4, 3, 2, 3, 1, 2, 4]  # seq after each step
    assert [x["pos"] for x in log] == [f"event {n} of 4 (#{n})" for n in want]
    for step, seq in zip(log, want, strict=True):
        assert step["slots"] == grids[seq - 1], step["step"]
        ev = ops[seq - 1]
        assert step["changed"] == {c["slot"]: c["after_state"] for c in ev["changes"]}, step


@pytest.mark.chromium
def test_big_page_in_chromium_shows_the_changed_groups(tmp_path: Path) -> None:
    recs = _big_run()
    page = tmp_path / "big.html"
    html.write(page, recs, "big.jsonl")
    want = recs[2 + 9_000 - 1]["changes"][0]  # event #9000
    t = time.perf_counter()
    dom = dump_dom(tmp_path, page, "#seq=9000")
    elapsed = time.perf_counter() - t
    assert dom.changed() == {want["slot"]: want["after_state"]}
    assert len(dom.slots) <= 3 * 8  # the changed group and its neighbours, not 131,072 slots
    assert elapsed < 60, elapsed
    shot = tmp_path / "big.png"
    run_chromium(
        tmp_path, page.as_uri() + "#seq=9000", f"--screenshot={shot}", "--window-size=1300,1500"
    )
    assert _png_size(shot) == (1300, 1500)


@pytest.mark.live
@pytest.mark.chromium
def test_report_of_a_real_watch_in_chromium(tmp_path: Path) -> None:
    """`dlvsnap watch --json` on fixtures/deletes under the real Delve, `dlvsnap report`,
    then the page in Chromium without network: every event's changed slots are the
    highlighted ones, and the grid equals the snapshot with the JSONL's changes replayed."""
    dlv_binary()
    run = run_watch(build_fixture("deletes"), "m", tmp=tmp_path)
    assert run.returncode == 0, run.stderr
    kinds = [e["event"] for e in run.events]
    assert kinds.count("snapshot") == 1
    snap = run.of("snapshot")[0]
    first = kinds.index("delete")
    assert kinds[first - 1] == "snapshot" and kinds[0] == "start"
    spg, groups, init = snap["slots_per_group"], snap["groups"], snap["states"]
    assert snap["impl"] == "swiss" and spg == 8 and len(init) == len(groups) * spg
    ops = run.ops
    assert snap["count"] == ops[0]["count_before"] == init.count("F")
    after = _replay(run.events)  # the grid the page should show after each event

    events = tmp_path / "events.jsonl"
    events.write_text(run.stdout)
    page = tmp_path / "report.html"
    p = _report(str(events), "-o", str(page))
    assert p.returncode == 0, p.stderr
    text = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert "default-src 'none'" in text

    changed_events = [i for i, ev in enumerate(ops) if ev["changes"]]
    absent = [i for i, ev in enumerate(ops) if not ev["key_present"]]
    assert changed_events and absent  # the fixture deletes 1000, which is absent
    for i in [changed_events[0], changed_events[-1], changed_events[1], absent[0]]:
        ev = ops[i]
        dom = dump_dom(tmp_path, page, f"#seq={ev['seq']}")
        assert dom.changed() == {c["slot"]: c["after_state"] for c in ev["changes"]}, ev["seq"]
        assert {s["data-slot"]: s["data-state"] for s in dom.slots} == after[i], ev["seq"]

    # a screenshot of the known event, next to one of a blank page of the same size
    shot, blank = tmp_path / "report.png", tmp_path / "blank.png"
    size = "--window-size=1300,1600"
    seq = ops[changed_events[0]]["seq"]
    run_chromium(tmp_path, page.as_uri() + f"#seq={seq}", f"--screenshot={shot}", size)
    (tmp_path / "blank.html").write_text("<!DOCTYPE html><title>blank</title>")
    run_chromium(tmp_path, (tmp_path / "blank.html").as_uri(), f"--screenshot={blank}", size)
    assert _png_size(shot) == (1300, 1600)
    assert shot.stat().st_size > 4 * blank.stat().st_size, (shot.stat(), blank.stat())


def _classic_run() -> list[dict[str, Any]]:
    """A classic map of one bucket: two deletes, the second ending its chain."""
    return [
        {**START, "map_impl": "classic", "go_version": "go1.22.10"},
        {
            "v": 2,
            "event": "snapshot",
            "seq": 0,
            "impl": "classic",
            "slots_per_group": 8,
            "groups": ["b0"],
            "states": "FFFrrrrr",
            "count": 3,
            "memory": {"held_bytes": 208, "needed_bytes": 48, "live_entries": 3},
        },
        _delete(1, [_change("b0/s1", "full", "emptyOne", 1)], 3, layout="classic-go1.21"),
        _delete(
            2,
            [_change("b0/s2", "full", "emptyRest", 2), _change("b0/s1", "emptyOne", "emptyRest")],
            2,
            layout="classic-go1.21",
        ),
    ]


def _legend(dumped: str) -> list[str]:
    m = re.search(r'<p id="legend"[^>]*>(.*?)</p>', dumped, re.S)
    assert m, dumped[:2000]
    return re.findall(r'data-state="(\w+)"', m[1])


def test_chart_axis_names_the_events() -> None:
    """The chart's x axis: the snapshot's point ("before") and event numbers."""
    page = html.render(_small_run(), "run.jsonl")
    chart = page[page.index('<svg id="chart"') : page.index("</svg>")]
    ticks = re.findall(r'y="207"[^>]*>([^<]*)</text>', chart)
    assert ticks == ["before", "#1", "#2", "#3", "#4"]
    assert re.search(r'text-anchor="end">event #</text>', chart)
    big = html.render(_big_run(), "big.jsonl")
    chart = big[big.index('<svg id="chart"') : big.index("</svg>")]
    labels = re.findall(r'y="207"[^>]*>([^<]*)</text>', chart)
    assert len(labels) == html.CHART_TICKS and labels[0] == "before"
    assert all(re.fullmatch(r"#\d+", x) for x in labels[1:]) and labels[-1] == "#10000"


@pytest.mark.chromium
def test_legend_names_the_maps_own_states(tmp_path: Path) -> None:
    """Swiss: full, empty, deleted; classic: its six states; neither lists the other's."""
    for run, want in (
        (_small_run(), ["full", "empty", "deleted"]),
        (_classic_run(), ["full", "emptyOne", "emptyRest", "evacuatedX", "evacuatedY",
                          "evacuatedEmpty"]),
    ):  # fmt: skip
        page = tmp_path / "report.html"
        html.write(page, run, "run.jsonl")
        p = run_chromium(tmp_path, page.as_uri(), "--dump-dom")
        assert _legend(p.stdout) == want


JUMP_DRIVER = """<!DOCTYPE html><html><body><pre id="out"></pre>
<iframe id="f" src="report.html#seq=3" onload="go()"></iframe><script>
function go() {
  const w = document.getElementById("f").contentWindow, d = w.document;
  const before = d.getElementById("position").textContent;
  d.querySelector('#jump a[href="#grid-section"]').click();
  setTimeout(() => {
    document.getElementById("out").textContent = JSON.stringify({
      before, after: d.getElementById("position").textContent, hash: w.location.hash});
  }, 300);
}
</script></body></html>"""


@pytest.mark.chromium
def test_the_grid_is_one_click_away_and_keeps_the_event(tmp_path: Path) -> None:
    """The link at the top goes to the slot grid; the selected event stays selected."""
    html.write(tmp_path / "report.html", _small_run(), "run.jsonl")
    (tmp_path / "driver.html").write_text(JUMP_DRIVER)
    p = run_chromium(
        tmp_path,
        (tmp_path / "driver.html").as_uri(),
        "--allow-file-access-from-files",
        "--virtual-time-budget=5000",
        "--dump-dom",
    )
    m = re.search(r'<pre id="out">(.*?)</pre>', p.stdout, re.S)
    assert m and m[1], p.stdout[:2000]
    got = json.loads(unescape(m[1]))
    assert got == {
        "before": "event 3 of 4 (#3)",
        "after": "event 3 of 4 (#3)",
        "hash": "#grid-section",
    }


def _phase_records(at: str = "main.go:37") -> list[dict[str, Any]]:
    figs = [(100_000, 0, 17_962_032, 13_600_000), (0, 47_000, 17_962_032, 0)]
    recs: list[dict[str, Any]] = [
        {
            "v": 2,
            "event": "phase",
            "phase": i,
            "at": at if i == 1 else "main.go:41",
            "location": {"function": "main.main", "file": "/src/main.go", "line": 36 + 4 * i},
            "live_entries": live,
            "capacity_slots": 131_072,
            "tombstones": tomb,
            "held_bytes": held,
            "needed_bytes": needed,
            "held_per_live_entry": None,
            "addr": "0xc000010000",
            "changed": "" if i == 1 else "live -100,000, tombstones +47,000, held unchanged",
            "state": {"count": live},
        }
        for i, (live, tomb, held, needed) in enumerate(figs, 1)
    ]
    recs.append(
        {
            "v": 2,
            "event": "phases",
            "map": "main.m",
            "go_version": "go1.26.8",
            "map_impl": "swiss",
            "pid": 4242,
            "asked": 3,
            "phases": [],
            "verdict": "live entries fell 100,000 -> 0 after phase 1 and the map freed nothing",
        }
    )
    return recs


def test_a_phases_file_makes_a_phase_page() -> None:
    """`snap --at A --at B --json` output: a static page (no script), the chart with the
    phase numbers on its axis, a row per phase, the verdict; what the program controls (a
    location as typed, here hostile) is text."""
    page = html.render(_phase_records(at="<script>alert(1)</script>"), "phases.jsonl")
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not re.search(r"\b(src|href)\s*=", page, re.I) and "default-src 'none'" in page
    chart = page[page.index('<svg id="chart"') : page.index("</svg>")]
    assert re.findall(r'y="207"[^>]*>([^<]*)</text>', chart) == ["1", "2"]
    assert 'id="cursor"' not in chart and "per phase" in chart
    rows = re.findall(r"<tr><td>(\d)</td>(.*?)</tr>", page)
    assert [r[0] for r in rows] == ["1", "2"]
    assert "<td>main.main main.go:44</td><td>0</td><td>131,072</td><td>47,000</td>" in rows[1][1]
    assert "freed nothing" in page and "pid 4242" in page and "of 3 asked" in page


def test_report_command_on_a_phases_file(tmp_path: Path) -> None:
    src = tmp_path / "phases.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in _phase_records()))
    out = tmp_path / "phases.html"
    p = _report(str(src), "-o", str(out))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"wrote {out}: {out.stat().st_size:,} bytes, 2 phases"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**_phase_records()[0], "live_entries": "many"}) + "\n")
    p = _report(str(bad), "-o", str(out))
    assert p.returncode == ExitCode.TARGET
    assert "live_entries" in p.stderr and len(p.stderr.strip().splitlines()) == 1


@pytest.mark.chromium
def test_phase_page_in_chromium(tmp_path: Path) -> None:
    page = tmp_path / "phases.html"
    html.write(page, _phase_records(), "phases.jsonl")
    p = run_chromium(tmp_path, page.as_uri(), "--dump-dom")
    assert p.stdout.count("<tr><td>") == 2 and "freed nothing" in p.stdout
    shot = tmp_path / "phases.png"
    run_chromium(tmp_path, page.as_uri(), f"--screenshot={shot}", "--window-size=1100,700")
    assert _png_size(shot) == (1100, 700)


@pytest.mark.chromium
def test_the_summarys_advice_is_shown_as_text(tmp_path: Path) -> None:
    """The watch's advice paragraph under the summary line; as text, whatever it holds."""
    recs = _small_run()
    said = "Go maps never shrink: <b>x</b> & more."
    for r in recs:
        if r["event"] == "summary":
            r["advice"] = said
    page = tmp_path / "report.html"
    html.write(page, recs, "run.jsonl")
    p = run_chromium(tmp_path, page.as_uri(), "--dump-dom")
    m = re.search(r'<p id="advice">(.*?)</p>', p.stdout, re.S)
    assert m and unescape(m[1]) == said and "<b>" not in m[1]
