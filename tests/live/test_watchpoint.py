"""`watch --mode watchpoint` (issue 13, docs/watchpoints.md): once the watched map is known,
a hardware write watchpoint on its header's writing flag replaces the breakpoints on the
runtime's entry points, so deletes of other maps no longer stop the program. Every delete
is checked with the invariants of invariants.py against the program's own view; the whole
live suite also runs in this mode with DLVSNAP_MODE=watchpoint (README "Tests")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dlvsnap.toolchain import Variant
from tests.live.invariants import check_deletes
from tests.support import WatchRun, build_fixture, dlv_for, parse_oracle, run_watch, variants

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
