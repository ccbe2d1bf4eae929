"""dlvsnap watch against a real dlv and real Go 1.26 programs built from fixtures/."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.live.invariants import check_deletes
from tests.support import build_fixture, parse_oracle, run_watch

pytestmark = pytest.mark.live

CASES = [
    # fixture, --map, key encoding, extra checks
    ("deletes", "m", "int"),
    ("strkeys", "names", "string"),
    ("set64", "seen", "int"),
    ("bigkey", "big", "bytes"),
    ("smallempty", "small", "int"),
    ("large", "main.table", "int"),
    ("stackgrow", "local", "int"),
    ("goroutines", "mine", "int"),
    ("pkgvar", "main.Cache", "string"),
]


@pytest.mark.parametrize(("fixture", "expr", "kind"), CASES, ids=[c[0] for c in CASES])
def test_every_delete_satisfies_the_invariants(
    dlv: str, tmp_path: Path, fixture: str, expr: str, kind: str
) -> None:
    run = run_watch(build_fixture(fixture), expr, "--live-keys", tmp=tmp_path)
    assert run.returncode == 0, run.stderr
    check_deletes(run, parse_oracle(run.target_output), kind)
    start, summary = run.of("start")[0], run.of("summary")[0]
    assert start["map_impl"] == "swiss" and start["go_version"].startswith("go1.26")
    assert summary["deletes"] == len(run.of("delete"))
    assert summary["memory_reader"] == "proc"
    assert run.stdout.count("\n") == len(run.events)  # stdout carries only JSON lines
    assert "DLVSNAP-ORACLE" not in run.stdout


@pytest.mark.parametrize(
    ("expr", "kind", "entry"),
    [
        ("floats", "float", "runtime.mapdelete"),
        ("flags", "bool", "runtime.mapdelete"),
        ("ids", "int", "runtime.mapdelete_fast32"),
    ],
)
def test_key_kinds(dlv: str, tmp_path: Path, expr: str, kind: str, entry: str) -> None:
    run = run_watch(build_fixture("kinds"), expr, "--live-keys", tmp=tmp_path)
    assert run.returncode == 0, run.stderr
    oracle = parse_oracle(run.target_output)
    # kinds reports every map's deletes; keep the lines of the watched map (same keys, order).
    keys_order = {"floats": 4, "flags": 2, "ids": 4}
    first = {"floats": 0, "flags": 4, "ids": 6}[expr]
    check_deletes(run, oracle[first : first + keys_order[expr]], kind)
    assert {e["entry"] for e in run.of("delete")} == {entry}


def test_delete_through_reflect_is_reported_via_reflect(dlv: str, tmp_path: Path) -> None:
    run = run_watch(build_fixture("kinds"), "viaReflect", "--live-keys", tmp=tmp_path)
    assert run.returncode == 0, run.stderr
    check_deletes(run, parse_oracle(run.target_output)[10:12], "string")
    assert [e["via"] for e in run.of("delete")] == ["reflect.mapdelete_faststr"] * 2


def test_small_map_emptied_is_reseeded(dlv: str, tmp_path: Path) -> None:
    run = run_watch(build_fixture("smallempty"), "small", tmp=tmp_path)
    deletes = run.of("delete")
    assert [e["count_after"] for e in deletes] == [4, 3, 2, 1, 0]
    assert [e["reseeded"] for e in deletes] == [False] * 4 + [True]
    assert "seed" in deletes[-1]["header_changes"]
    # a small map never holds a tombstone: every slot goes back to empty (0x80)
    assert all(
        c["after_state"] == "empty" and c["table"] is None for e in deletes for c in e["changes"]
    )


def test_multi_table_map(dlv: str, tmp_path: Path) -> None:
    run = run_watch(build_fixture("large"), "main.table", tmp=tmp_path)
    first = run.of("delete")[0]
    assert first["header"]["dirLen"] > 1
    tables = {c["table"] for e in run.of("delete") for c in e["changes"]}
    assert len(tables) > 1, tables
    summary = run.of("summary")[0]
    assert summary["memory"]["held_bytes"] > summary["memory"]["needed_bytes"]


def test_header_on_a_growing_stack_is_followed(dlv: str, tmp_path: Path) -> None:
    run = run_watch(build_fixture("stackgrow"), "local", "--live-keys", tmp=tmp_path)
    assert run.returncode == 0, run.stderr
    check_deletes(run, parse_oracle(run.target_output), "int")
    addrs = [e["map_addr"] for e in run.of("delete")]
    assert len(set(addrs)) > 1, "the fixture's stack did not move: the test proves nothing"
    assert [n["kind"] for n in run.of("note")] == ["moved"] * (len(set(addrs)) - 1)


def test_other_goroutines_deletes_are_not_reported(dlv: str, tmp_path: Path) -> None:
    run = run_watch(build_fixture("goroutines"), "mine", "--live-keys", tmp=tmp_path)
    assert run.returncode == 0, run.stderr
    check_deletes(run, parse_oracle(run.target_output), "int")
    assert [e["key"] for e in run.of("delete")] == list(range(0, 100, 9))
    assert {e["goroutine"] for e in run.of("delete")} == {1}


def test_package_variable_replaced_by_a_new_map_is_followed(dlv: str, tmp_path: Path) -> None:
    run = run_watch(build_fixture("pkgvar"), "main.Cache", "--live-keys", tmp=tmp_path)
    check_deletes(run, parse_oracle(run.target_output), "string")
    notes = run.of("note")
    assert [n["kind"] for n in notes] == ["replaced"]
    assert notes[0]["new"] == run.of("delete")[2]["map_addr"]


def test_clear(dlv: str, tmp_path: Path) -> None:
    run = run_watch(build_fixture("clearmap"), "m", tmp=tmp_path)
    assert run.returncode == 0, run.stderr
    ops = run.ops
    assert [e["event"] for e in ops] == ["delete", "clear", "delete"]
    clear = ops[1]
    assert clear["count_before"] == 1999 and clear["count_after"] == 0
    assert clear["key"] is None
    left = [c for c in clear["changes"] if c["before_state"] == "full"]
    assert len(left) == 1999 and all(c["after_state"] == "empty" for c in left)
    assert clear["reseeded"]
    assert clear["header_changes"]["clearSeq"][1] == clear["header_changes"]["clearSeq"][0] + 1
    # clear frees nothing either: the same tables and groups are held
    assert clear["memory"]["group_bytes"] == ops[0]["memory"]["group_bytes"]
    assert run.of("summary")[0]["clears"] == 1


def test_human_view(dlv: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "dlvsnap",
            "watch",
            str(build_fixture("deletes")),
            "--map",
            "m",
            "--target-output",
            str(tmp_path / "out.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**__import__("os").environ, "NO_COLOR": "1"},
    )
    assert p.returncode == 0, p.stderr
    assert "\x1b[" not in p.stdout
    assert "#1 delete key=17  main.del main.go:14  (runtime.mapdelete_fast64)" in p.stdout
    assert "full(h2=" in p.stdout and "-> " in p.stdout
    assert "deletes seen" in p.stdout and "deletes freed nothing" in p.stdout


def test_package_directory_is_built_and_program_args_are_passed(dlv: str, tmp_path: Path) -> None:
    from tests.support import FIXTURES, go_toolchain

    go_toolchain()
    run = run_watch(
        FIXTURES / "large", "main.table", "--live-keys", tmp=tmp_path, program_args=("300",)
    )
    assert run.returncode == 0, run.stderr
    oracle = parse_oracle(run.target_output)
    check_deletes(run, oracle, "int")
    assert [e["key"] for e in run.of("delete")] == [0, 97, 194, 291, -1]
    assert run.of("delete")[0]["count_before"] == 300


def test_max_events_stops_the_program(dlv: str, tmp_path: Path) -> None:
    run = run_watch(build_fixture("large"), "main.table", "--max-events", "3", tmp=tmp_path)
    assert run.returncode == 0, run.stderr
    assert len(run.of("delete")) == 3
    summary = run.of("summary")[0]
    assert summary["stopped_early"] is True and summary["exit_status"] is None
