"""dlvsnap watch against real Delve releases and real Go programs built from fixtures/, on
every Go release of the matrix (CI: dlvsnap.toolchain.CI_GOS; DLVSNAP_MATRIX=full: all)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.live.invariants import EMPTY_STATES, check_deletes
from tests.support import (
    FIXTURES,
    Variant,
    build_fixture,
    dlv_for,
    go_toolchain,
    parse_oracle,
    run_watch,
    variants,
)

pytestmark = pytest.mark.live

VARIANTS = variants()
CASES = [
    # fixture, --map, key encoding
    ("deletes", "m", "int"),
    ("strkeys", "names", "string"),
    ("set64", "seen", "int"),
    ("bigkey", "big", "bytes"),
    ("smallempty", "small", "int"),
    ("large", "main.table", "int"),
    ("stackgrow", "local", "int"),
    ("goroutines", "mine", "int"),
    ("pkgvar", "main.Cache", "string"),
    ("growing", "m", "int"),
    ("drain", "m", "int"),
]


def _watch(v: Variant, fixture: str, expr: str, tmp: Path, *extra: str):  # type: ignore[no-untyped-def]
    dlv_for(v)  # fails (CI) or skips (locally) when no installed Delve accepts v.go
    return run_watch(build_fixture(fixture, variant=v), expr, *extra, tmp=tmp)


def _only(impl: str) -> list[Variant]:
    return [v for v in VARIANTS if v.impl == impl]


@pytest.mark.parametrize("mode", ["watchpoint", "breakpoints"])
@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.id)
@pytest.mark.parametrize(("fixture", "expr", "kind"), CASES, ids=[c[0] for c in CASES])
def test_every_delete_satisfies_the_invariants(  # noqa: PLR0917
    tmp_path: Path, v: Variant, fixture: str, expr: str, kind: str, mode: str
) -> None:
    """In both modes (watchpoint, the default; breakpoints, its fallback)."""
    run = _watch(v, fixture, expr, tmp_path, "--live-keys", "--mode", mode)
    assert run.returncode == 0, run.stderr
    check_deletes(run, parse_oracle(run.target_output), kind)
    start, summary = run.of("start")[0], run.of("summary")[0]
    assert start["mode"] == mode
    assert summary["mode"] == mode, run.of("note")
    assert start["map_impl"] == v.impl
    assert start["go_version"].startswith("go" + ".".join(v.go.split(".")[:2]))
    assert (v.experiment in start["experiments"]) if v.experiment else True
    assert summary["deletes"] == len(run.of("delete"))
    assert summary["memory_reader"] == "proc"
    assert run.stdout.count("\n") == len(run.events)  # stdout carries only JSON lines
    assert "DLVSNAP-ORACLE" not in run.stdout


@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.id)
@pytest.mark.parametrize(
    ("expr", "kind", "first", "n"),
    [("floats", "float", 0, 4), ("flags", "bool", 4, 2), ("ids", "int", 6, 4)],
)
def test_key_kinds(tmp_path: Path, v: Variant, expr: str, kind: str, first: int, n: int) -> None:  # noqa: PLR0917
    run = _watch(v, "kinds", expr, tmp_path, "--live-keys")
    assert run.returncode == 0, run.stderr
    # kinds prints the oracle lines of all its maps, in program order
    check_deletes(run, parse_oracle(run.target_output)[first : first + n], kind)
    want = "runtime.mapdelete_fast32" if expr == "ids" else "runtime.mapdelete"
    assert {e["entry"] for e in run.of("delete")} == {want}


@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.id)
def test_delete_through_reflect_is_reported_via_reflect(tmp_path: Path, v: Variant) -> None:
    run = _watch(v, "kinds", "viaReflect", tmp_path, "--live-keys")
    assert run.returncode == 0, run.stderr
    check_deletes(run, parse_oracle(run.target_output)[10:12], "string")
    assert [e["via"] for e in run.of("delete")] == ["reflect.mapdelete_faststr"] * 2


@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.id)
def test_small_map_emptied_is_reseeded(tmp_path: Path, v: Variant) -> None:
    run = _watch(v, "smallempty", "small", tmp_path)
    deletes = run.of("delete")
    assert [e["count_after"] for e in deletes] == [4, 3, 2, 1, 0]
    assert [e["reseeded"] for e in deletes] == [False] * 4 + [True]
    seed = "seed" if v.impl == "swiss" else "hash0"
    assert seed in deletes[-1]["header_changes"]
    changes = [c for e in deletes for c in e["changes"]]
    if v.impl == "swiss":  # a small map never holds a tombstone
        assert all(c["after_state"] == "empty" and c["table"] is None for c in changes)
    else:  # one bucket: the last delete turns the trailing emptyOne run into emptyRest
        assert {c["after_state"] for c in changes} <= {"emptyOne", "emptyRest"}
        assert all(c["bucket"] == 0 for c in changes)


@pytest.mark.parametrize("v", _only("swiss"), ids=lambda v: v.id)
def test_multi_table_map(tmp_path: Path, v: Variant) -> None:
    run = _watch(v, "large", "main.table", tmp_path)
    first = run.of("delete")[0]
    assert first["header"]["dirLen"] > 1
    tables = {c["table"] for e in run.of("delete") for c in e["changes"]}
    assert len(tables) > 1, tables
    summary = run.of("summary")[0]
    assert summary["memory"]["held_bytes"] > summary["memory"]["needed_bytes"]


@pytest.mark.parametrize("v", _only("classic"), ids=lambda v: v.id)
def test_classic_deletes_during_growth_evacuate(tmp_path: Path, v: Variant) -> None:
    run = _watch(v, "growing", "m", tmp_path, "--live-keys")
    check_deletes(run, parse_oracle(run.target_output), "int")
    deletes = run.of("delete")
    assert deletes[0]["header"]["oldbuckets"] != 0, "the fixture did not delete during a grow"
    moved = [
        c for e in deletes for c in e["changes"] if c["after_state"] in ("evacuatedX", "evacuatedY")
    ]
    assert moved, "no evacuation seen"
    assert deletes[-1]["header"]["oldbuckets"] == 0, "the grow should have finished"
    absent = deletes[-1]
    assert absent["key_present"] is False


@pytest.mark.parametrize("v", _only("classic"), ids=lambda v: v.id)
def test_classic_empty_rest_cascades_across_overflow_buckets(tmp_path: Path, v: Variant) -> None:
    run = _watch(v, "drain", "m", tmp_path, "--live-keys")
    check_deletes(run, parse_oracle(run.target_output), "int")
    cascades = [
        [
            c
            for c in e["changes"]
            if c["before_state"] == "emptyOne" and c["after_state"] == "emptyRest"
        ]
        for e in run.of("delete")
    ]
    assert any(cascades), "no emptyOne -> emptyRest cascade"
    crossing = [
        cs
        for cs, e in zip(cascades, run.of("delete"), strict=True)
        if any(c["overflow"] for c in e["changes"] if c["after_state"] in EMPTY_STATES)
        and any(c["overflow"] == 0 for c in cs)
    ]
    assert crossing, "no cascade walked back from an overflow bucket into its main bucket"


@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.id)
def test_header_on_a_growing_stack_is_followed(tmp_path: Path, v: Variant) -> None:
    run = _watch(v, "stackgrow", "local", tmp_path, "--live-keys")
    assert run.returncode == 0, run.stderr
    check_deletes(run, parse_oracle(run.target_output), "int")
    addrs = [e["map_addr"] for e in run.of("delete")]
    assert len(set(addrs)) > 1, "the fixture's stack did not move: the test proves nothing"
    assert [n["kind"] for n in run.notes()] == ["moved"] * (len(set(addrs)) - 1)


@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.id)
def test_other_goroutines_deletes_are_not_reported(tmp_path: Path, v: Variant) -> None:
    run = _watch(v, "goroutines", "mine", tmp_path, "--live-keys")
    assert run.returncode == 0, run.stderr
    check_deletes(run, parse_oracle(run.target_output), "int")
    assert [e["key"] for e in run.of("delete")] == list(range(0, 100, 9))
    assert {e["goroutine"] for e in run.of("delete")} == {1}


@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.id)
def test_package_variable_replaced_by_a_new_map_is_followed(tmp_path: Path, v: Variant) -> None:
    run = _watch(v, "pkgvar", "main.Cache", tmp_path, "--live-keys")
    check_deletes(run, parse_oracle(run.target_output), "string")
    notes = run.notes()
    assert [n["kind"] for n in notes] == ["replaced"]
    assert notes[0]["new"] == run.of("delete")[2]["map_addr"]


@pytest.mark.parametrize("v", [v for v in VARIANTS if v.release >= (1, 21)], ids=lambda v: v.id)
def test_clear(tmp_path: Path, v: Variant) -> None:
    run = _watch(v, "clearmap", "m", tmp_path)
    assert run.returncode == 0, run.stderr
    ops = run.ops
    assert [e["event"] for e in ops] == ["delete", "clear", "delete"]
    clear = ops[1]
    assert clear["count_before"] == 1999 and clear["count_after"] == 0
    assert clear["key"] is None
    left = [c for c in clear["changes"] if c["before_state"] == "full"]
    # classic: overflow buckets allocated on their own are cut off the chains (unlinked)
    assert len(left) == 1999
    assert all(c["after_state"] in EMPTY_STATES | {"unlinked"} for c in left)
    assert clear["reseeded"]
    if "clearSeq" in clear["header"]:  # swiss, and classic from go1.24 (noswissmap)
        seq = clear["header_changes"]["clearSeq"]
        assert seq[1] == seq[0] + 1
    # clear frees nothing either: the same tables/groups or bucket array are held
    assert clear["memory"]["group_bytes"] == ops[0]["memory"]["group_bytes"]
    assert run.of("summary")[0]["clears"] == 1


def test_human_view(dlv: str, tmp_path: Path) -> None:
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
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert p.returncode == 0, p.stderr
    assert "\x1b[" not in p.stdout
    assert "#1 delete key=17  main.del main.go:14  (runtime.mapdelete_fast64)" in p.stdout
    assert "full(h2=" in p.stdout and "-> " in p.stdout
    assert "deletes seen" in p.stdout and "deletes freed nothing" in p.stdout


def test_package_directory_is_built_and_program_args_are_passed(dlv: str, tmp_path: Path) -> None:
    go_toolchain()
    run = run_watch(
        FIXTURES / "large", "main.table", "--live-keys", tmp=tmp_path, program_args=("300",)
    )
    assert run.returncode == 0, run.stderr
    check_deletes(run, parse_oracle(run.target_output), "int")
    assert [e["key"] for e in run.of("delete")] == [0, 97, 194, 291, -1]
    assert run.of("delete")[0]["count_before"] == 300


def test_max_events_ends_the_watch_and_the_program_runs_on(dlv: str, tmp_path: Path) -> None:
    """The watch ends at the 3rd delete; the program runs on to its end, unwatched
    (tests/live/test_until.py: --kill, and the program's own output after the watch)."""
    run = run_watch(build_fixture("large"), "main.table", "--max-events", "3", tmp=tmp_path)
    assert run.returncode == 0, run.stderr
    assert len(run.of("delete")) == 3
    summary = run.of("summary")[0]
    assert summary["stopped_early"] is True and summary["ended"] == "max_events"
    assert (summary["after_watch"], summary["exit_status"]) == ("ran_on", 0)
    assert len(parse_oracle(run.target_output)) == 53  # 52 deletes and the absent key


def _site_lines(fixture: str) -> dict[str, int]:
    """Line numbers of the `// site:NAME` markers in fixtures/<fixture>/main.go."""
    text = (FIXTURES / fixture / "main.go").read_text().splitlines()
    return {
        line.split("// site:")[1].split()[0]: i
        for i, line in enumerate(text, 1)
        if "// site:" in line and not line.lstrip().startswith("//")
    }


@pytest.mark.parametrize("optimized", [False, True], ids=["debug-build", "optimized-build"])
@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.id)
def test_every_call_site_is_located(tmp_path: Path, v: Variant, optimized: bool) -> None:
    """The caller of each delete (its function and line, and the reflect entry on the way) is
    where the source deletes: through a direct call, a helper called from two places
    (inlined in the optimised build) and from other goroutines, a generic function,
    reflect, twice from a loop, a goroutine's closure, and a helper that deletes from the
    watched map and another in turn. The watched map is known before the first delete, so
    each call site's location is looked up once from its return address, and its calls
    end at a breakpoint there (their goroutine in its condition) instead of stepOut: the
    deletes from the other map end that for their call site. Every delete of the watched
    map is seen once, with its count going down by one, and the program is not disturbed."""
    dlv_for(v)
    binary = build_fixture("callers", variant=v, optimized=optimized)
    run = run_watch(binary, "main.m", tmp=tmp_path)
    assert run.returncode == 0, run.stderr
    lines = _site_lines("callers")
    want = {
        1: ("main.main", lines["direct"], None),
        2: ("main.del", lines["helper"], None),
        3: ("main.del", lines["helper"], None),
        4: ("main.drop", lines["generic"], None),
        5: ("main.main", lines["reflect"], "reflect."),
        6: ("main.main", lines["loop"], None),
        7: ("main.main", lines["loop"], None),
        8: ("main.main", lines["direct2"], None),
        9: ("main.dropFrom", lines["shared"], None),
        10: ("main.dropFrom", lines["shared"], None),
        11: ("main.dropFrom", lines["shared"], None),
        12: ("main.main.func1", lines["goroutine"], None),
        13: ("main.del", lines["helper"], None),
        14: ("main.del", lines["helper"], None),
    }
    got = {
        e["key"]: (e["function"], e["line"], e["via"])
        for e in run.of("delete")
        if e["file"].endswith("callers/main.go")
    }
    assert sorted(got) == sorted(want), run.stdout
    counts = [(e["count_before"], e["count_after"]) for e in run.of("delete")]
    assert counts == [(64 - i, 63 - i) for i in range(len(want))], counts
    assert "callers: 50 entries left" in run.target_output
    assert not [e for e in run.of("delete") if e.get("warnings")], run.stdout
    for key, (fn, line, via) in want.items():
        gfn, gline, gvia = got[key]
        assert gfn == fn or gfn.startswith(fn + "["), (key, got[key])  # drop[...]: generic
        assert gline == line, (key, got[key])
        assert (gvia or "").startswith(via) if via else gvia is None, (key, got[key])


@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.id)
def test_a_nil_package_variable_matches_other_nil_maps_first(tmp_path: Path, v: Variant) -> None:
    """While main.Watched is nil, deletes on nil maps of other types (map[int]int, and
    map[string]bool through the same entry point as Watched's) match its breakpoint
    condition: they are not reported, and the map type dlvsnap keeps for later hits is
    Watched's own, so its two deletes decode right."""
    run = _watch(v, "nilfirst", "main.Watched", tmp_path)
    assert run.returncode == 0, run.stderr
    deletes = run.of("delete")
    assert [(d["key"], d["count_before"], d["count_after"]) for d in deletes] == [
        ("a", 3, 2),
        ("b", 2, 1),
    ], run.stdout
    assert not [d for d in deletes if d.get("warnings")], run.stdout
    assert "nilfirst: 1 left" in run.target_output


@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.id)
def test_a_delete_that_panics_inside_the_runtime(tmp_path: Path, v: Variant) -> None:
    """map[any]int: deleting a slice key panics inside the runtime (hash of unhashable
    type) and the caller recovers. That call never returns to its call site: dlvsnap must
    not wait for it there. Each of the three deletes is reported, the panicking one with
    the map unchanged, and the program runs to its end. In watchpoint mode the panicking
    delete is not seen: the hash panics before the call sets the map's writing flag."""
    run = _watch(v, "panicky", "main.M", tmp_path)
    assert run.returncode == 0, run.stderr
    counts = [(d["count_before"], d["count_after"]) for d in run.of("delete")]
    seen = [(3, 2), (2, 1)] if run.mode == "watchpoint" else [(3, 2), (2, 2), (2, 1)]
    assert counts == seen, run.stdout
    assert "panicky: 1 left" in run.target_output
