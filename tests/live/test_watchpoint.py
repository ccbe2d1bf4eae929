"""`watch --mode watchpoint` (issue 13, docs/watchpoints.md): once the watched map is known,
a hardware write watchpoint on its header's writing flag replaces the breakpoints on the
runtime's entry points, so deletes of other maps no longer stop the program. Every delete
is checked with the invariants of invariants.py against the program's own view; the whole
live suite also runs in this mode with DLVSNAP_MODE=watchpoint (README "Tests")."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from dlvsnap.session import DR3_REPORTED_FROM
from dlvsnap.toolchain import DELVES, Variant
from tests.live.invariants import check_deletes
from tests.support import (
    WatchRun,
    build_fixture,
    dlv_for,
    parse_oracle,
    run_dlvsnap,
    run_watch,
    variants,
)

pytestmark = pytest.mark.live

VARIANTS = variants()
CHURN = re.compile(r"^churn: (\d+) deletes of another map in ([\d.]+) s", re.M)


def _watch(
    v: Variant, fixture: str, expr: str, tmp: Path, *args: str, prog: tuple[str, ...] = ()
) -> WatchRun:
    dlv_for(v)
    return run_watch(
        build_fixture(fixture, variant=v),
        expr,
        "--mode",
        "watchpoint",
        *args,
        tmp=tmp,
        program_args=prog,
        env={"DLVSNAP_CROSSCHECK": "1"},
    )


@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.id)
def test_other_maps_churn_while_a_package_map_is_watched(tmp_path: Path, v: Variant) -> None:
    """Armed at the first watched delete (which the fixture makes before its churn): the
    churn of other maps (in main and two other goroutines) then never stops the program,
    and every watched delete is reported and exact."""
    run = _watch(v, "churn", "main.watched", tmp_path, prog=("20000", "10"))
    assert run.returncode == 0, run.stderr
    assert run.mode == "watchpoint", run.of("note")
    assert [n["kind"] for n in run.of("note")] == ["mode"]
    check_deletes(run, parse_oracle(run.target_output), "int")
    assert CHURN.search(run.target_output), run.target_output
    assert "churn: done" in run.target_output


@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.id)
@pytest.mark.parametrize(
    ("fixture", "expr", "kind"),
    [("deletes", "m", "int"), ("strkeys", "names", "string"), ("goroutines", "mine", "int")],
)
def test_a_local_map_is_watched_by_watchpoint_after_its_first_delete(
    tmp_path: Path, v: Variant, fixture: str, expr: str, kind: str
) -> None:
    """A local is resolved at its first delete through breakpoints (and its first event
    recorded so); then a watchpoint takes over, on the heap or on a goroutine's stack."""
    run = _watch(v, fixture, expr, tmp_path, "--live-keys")
    assert run.returncode == 0, run.stderr
    check_deletes(run, parse_oracle(run.target_output), kind)
    notes = [n for n in run.of("note") if n["kind"] == "mode"]
    assert len(notes) == 1, run.of("note")
    assert "hardware write watchpoint" in notes[0]["message"]
    assert run.mode == "watchpoint"


@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.id)
def test_a_stack_header_is_followed_through_stack_copies_and_returning_frames(
    tmp_path: Path, v: Variant
) -> None:
    """fixtures/stackscope: the header is in round's frame, the delete one frame further in
    (drop). The stack watchpoint Delve sets goes out of scope when drop returns (set again:
    the header lives on in round's frame) and when round returns (the map is gone:
    breakpoints until round's next call, which re-arms); the stack grows and is copied
    between deletes. Every delete of the three rounds is reported and exact, the
    absent-key ones included."""
    run = _watch(v, "stackscope", "m", tmp_path, "--live-keys")
    assert run.returncode == 0, run.stderr
    oracle = parse_oracle(run.target_output)
    assert len(oracle) == 12
    check_deletes(run, oracle, "int")
    assert len(run.of("delete")) == 12
    modes = [n["message"].split(":")[0] for n in run.of("note") if n["kind"] == "mode"]
    armed, ended = "watchpoint mode", "the frame that held the map's header returned"
    assert modes == [armed, ended] * 3, modes
    assert any(n["kind"] == "moved" for n in run.of("note")), run.of("note")


@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.id)
def test_a_replaced_package_variable_moves_the_watchpoint(tmp_path: Path, v: Variant) -> None:
    run = _watch(v, "pkgvar", "main.Cache", tmp_path, "--live-keys")
    assert run.returncode == 0, run.stderr
    assert run.mode == "watchpoint"
    check_deletes(run, parse_oracle(run.target_output), "string")
    notes = run.notes()
    assert [n["kind"] for n in notes] == ["replaced"]
    assert notes[0]["new"] == run.of("delete")[2]["map_addr"]


@pytest.mark.parametrize("mode", ["watchpoint", "breakpoints"])
@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.id)
def test_two_maps_watched_at_once(tmp_path: Path, v: Variant, mode: str) -> None:
    """fixtures/twomaps: a package map and a local on main's stack, deleted from in turn
    while another goroutine churns a third map. Each map's events carry its name and
    satisfy the invariants against its own oracle lines; one summary record per map; in
    watchpoint mode each map gets its own watchpoint (3 debug registers: the variable's
    too)."""
    run = _watch(v, "twomaps", "main.A", tmp_path, "--map", "b", "--live-keys", "--mode", mode)
    assert run.returncode == 0, run.stderr
    start = run.of("start")[0]
    assert start["maps"] == ["main.A", "b"] and start["mode"] == mode
    oracle = parse_oracle(run.target_output)
    assert len(oracle) == 12
    for name, parity, kind in (("main.A", 1, "int"), ("b", 0, "string")):
        mine = dataclasses.replace(
            run, events=[e for e in run.events if e.get("map", name) == name]
        )
        check_deletes(mine, [o for o in oracle if o.seq % 2 == parity], kind)
        (summary,) = mine.of("summary")
        assert summary["deletes"] == 6 and summary["mode"] == mode and summary["missed"] == 0
        assert len(mine.of("snapshot")) == 1  # the map before its first delete (report)
    assert [d["seq"] for d in run.of("delete")] == list(range(1, 13))
    if mode == "watchpoint":
        modes = {n["map"] for n in run.of("note") if n["kind"] == "mode"}
        assert modes == {"main.A", "b"}, run.of("note")


def test_two_maps_in_the_text_view_and_the_report(tmp_path: Path) -> None:
    """The text view names each event's map and sums each map up on its own; `report` of
    the JSON shows one map (the first, or --map's) and says so."""
    v = next(v for v in VARIANTS if v.go == "1.26")
    prog = build_fixture("twomaps", variant=v)
    dlv_for(v)
    out = str(tmp_path / "target-output.txt")
    text = run_dlvsnap("watch", str(prog), "--map", "main.A", "--map", "b", "--target-output", out)
    assert text.returncode == 0, text.stderr
    assert re.search(r"^#1 main\.A delete key=0 ", text.stdout, re.M), text.stdout
    assert re.search(r'^#2 b delete key="k0" ', text.stdout, re.M), text.stdout
    assert "summary of main.A" in text.stdout and "summary of b" in text.stdout
    run = _watch(v, "twomaps", "main.A", tmp_path, "--map", "b")
    events = tmp_path / "two.jsonl"
    events.write_text(run.stdout)
    for chosen, n in ((None, "main.A"), ("b", "b")):
        page = tmp_path / f"{n}.html"
        extra = ["--map", chosen] if chosen else []
        r = run_dlvsnap("report", str(events), "-o", str(page), *extra)
        assert r.returncode == 0, r.stderr
        assert f"watched 2 maps: reporting {n}" in r.stderr
        assert "6 events" in r.stdout


def _delve_release(v: Variant) -> tuple[int, ...]:
    """(1, 20, 2): the release of the Delve that debugs ``v`` (tests.support.dlv_for)."""
    dlv = dlv_for(v)
    d = next(d for d in DELVES if str(d.path()) == dlv)
    return tuple(int(x) for x in d.version.removeprefix("v").split("."))


@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.id)
def test_a_map_that_finds_no_debug_register_left_stays_on_breakpoints(
    tmp_path: Path, v: Variant
) -> None:
    """Three package maps need 6 debug registers, x86-64 has 4: the third map's watchpoint
    is refused by Delve, it stays on breakpoints (a fallback note and its summary say why),
    and every delete of the three is reported, in order. A Delve that never reports the
    4th register's traps (Go 1.19's) gets 3 watchpoints at most: the second map stays on
    breakpoints too (dlvsnap refuses it, session.DR3_REPORTED_FROM)."""
    run = _watch(v, "threevars", "main.A", tmp_path, "--map", "main.B", "--map", "main.C")
    assert run.returncode == 0, run.stderr
    maps = ("main.A", "main.B", "main.C")
    got = [(d["map"], d["key"], d["count_after"]) for d in run.of("delete")]
    assert got == [(m, k, 3 - k) for k in (1, 2, 3) for m in maps]
    armed = 2 if _delve_release(v) >= DR3_REPORTED_FROM else 1
    modes = {s["map"]: (s["mode"], s["mode_why"]) for s in run.of("summary")}
    assert all(modes[m] == ("watchpoint", None) for m in maps[:armed]), modes
    assert all(modes[m][0] == "breakpoints" and "watchpoint" in modes[m][1] for m in maps[armed:])
    fallbacks = [n for n in run.of("note") if n.get("fallback")]
    assert [n["map"] for n in fallbacks] == list(maps[armed:]), fallbacks
    assert all("breakpoints stay" in n["message"] for n in fallbacks)
