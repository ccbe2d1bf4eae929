"""A watch that ends where the user says (issue 14): `watch --until LOCATION` ends when the
program reaches LOCATION, with a final snapshot of each watched map there, in both modes
and the three ways in; after `--max-events` or `--until` a launched program runs on to its
end unwatched (its output and exit status kept) unless `--kill`; nothing is left running.

fixtures/until deletes 4 keys from main's stack map m and one from the package map Pkg,
prints its own view of both at `// until:first`, deletes 2 keys from scratch's own stack
map s, deletes 3 more from m and exits with status 3."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dlvsnap.delve.client import BreakpointSpec, DelveClient
from dlvsnap.errors import ExitCode
from tests.live.test_interrupt import _children, _running
from tests.live.test_leaving import _client, _users, running, users_server
from tests.support import (
    FIXTURES,
    Variant,
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
MODES = ["watchpoint", "breakpoints"]
# one classic and one swiss release of CI's matrix: where a test is not about the layouts
CHEAP = [
    next(v for v in VARIANTS if v.impl == "classic"),
    next(v for v in VARIANTS if v.impl == "swiss" and not v.experiment),
]


def _line(fixture: str, marker: str) -> int:
    """The line of the `// until:MARKER` comment in fixtures/<fixture>/main.go."""
    text = (FIXTURES / fixture / "main.go").read_text().splitlines()
    return next(i for i, t in enumerate(text, 1) if t.rstrip().endswith(f"// until:{marker}"))


def _watch(v: Variant, *args: str, tmp: Path) -> WatchRun:
    dlv_for(v)  # fails (CI) or skips (locally) when no installed Delve accepts v.go
    return run_watch(build_fixture("until", variant=v), *args, tmp=tmp)


def _summaries(run: WatchRun) -> dict[str, dict[str, Any]]:
    """Each watched map's summary by its name (one map: by "")."""
    return {s.get("map", ""): s for s in run.of("summary")}


def _program_says(run: WatchRun) -> tuple[int, int]:
    """len(m) and len(Pkg) as the program printed them at `// until:first`."""
    m = re.search(r"^until: first len\(m\) = (\d+) len\(Pkg\) = (\d+)$", run.target_output, re.M)
    assert m, run.target_output
    return int(m[1]), int(m[2])


def _ran_on(run: WatchRun, summary: dict[str, Any]) -> None:
    """The program ran to its end after the watch: every line it prints, its status 3."""
    assert summary["after_watch"] == "ran_on" and summary["exit_status"] == 3, summary
    assert "until: last len(m) = 57" in run.target_output
    assert len(parse_oracle(run.target_output)) == 7
    assert "DLVSNAP-ORACLE done deletes=7" in run.target_output


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.id)
def test_until_ends_the_watch_there_with_the_maps_as_the_program_sees_them(
    tmp_path: Path, v: Variant, mode: str
) -> None:
    """m (main's stack map) and main.Pkg (a package map), both in scope at LOCATION: the
    final snapshots are what the program prints there; no delete after LOCATION is
    reported, and the program runs on to its end."""
    first = _line("until", "first")
    spec = f"main.go:{first}"
    run = _watch(v, "m", "--map", "main.Pkg", "--until", spec, "--mode", mode, tmp=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.of("start")[0]["until"] == spec
    assert [(e.get("map"), e["key"]) for e in run.of("delete")] == [
        ("m", 5),
        ("m", 17),
        ("m", 33),
        ("m", 60),
        ("main.Pkg", "k3"),
    ]
    want = dict(zip(("m", "main.Pkg"), _program_says(run), strict=True))
    last = {e["map"]: e for e in run.of("delete")}
    for name, s in _summaries(run).items():
        assert (s["ended"], s["stopped_early"]) == ("until", True), s
        at = s["ended_at"]
        assert at["file"].endswith("until/main.go") and at["line"] == first, at
        assert (at["function"], at["goroutine"]) == ("main.main", 1)
        final = s["final"]
        assert (final["how"], final["note"]) == ("named", None), final
        assert final["count"] == want[name] == last[name]["count_after"] == s["count"]
        assert final["map_addr"] == last[name]["map_addr"]
        assert final["memory"] == last[name]["memory"]  # nothing changed it since
        assert final["memory"]["live_entries"] == want[name]
        assert final["count"] <= final["capacity"] and final["capacity"] % 8 == 0
        assert final["tombstones"] == last[name]["tombstones"]
        _ran_on(run, s)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("v", CHEAP, ids=lambda v: v.id)
def test_until_where_the_local_is_out_of_scope_reads_where_the_watch_last_saw_it(
    tmp_path: Path, v: Variant, mode: str
) -> None:
    """At main.checkpoint m is not in scope, but main's frame, which holds it, is live."""
    run = _watch(v, "m", "--until", "main.checkpoint", "--mode", mode, tmp=tmp_path)
    assert run.returncode == 0, run.stderr
    s = run.of("summary")[0]
    assert s["ended_at"]["function"] == "main.checkpoint"
    final = s["final"]
    assert final["how"] == "last_seen", final
    assert "m is not in scope there" in final["note"] and "main.main's frame" in final["note"]
    assert final["count"] == _program_says(run)[0] == run.of("delete")[-1]["count_after"]
    assert final["map_addr"] == run.of("delete")[-1]["map_addr"]
    _ran_on(run, s)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("v", CHEAP, ids=lambda v: v.id)
def test_until_after_the_maps_frame_returned_says_the_map_is_gone(
    tmp_path: Path, v: Variant, mode: str
) -> None:
    """s lived in scratch's frame: at LOCATION, back in main after scratch returned (and
    more calls reused that stack), it is gone, and nothing is read."""
    second = _line("until", "second")
    run = _watch(v, "s", "--until", f"main.go:{second}", "--mode", mode, tmp=tmp_path)
    assert run.returncode == 0, run.stderr
    assert [(e["key"], e["count_after"]) for e in run.of("delete")] == [(2, 3), (4, 2)]
    assert "until: scratch left 2" in run.target_output
    s = run.of("summary")[0]
    assert (s["ended"], s["ended_at"]["line"]) == ("until", second)
    final = s["final"]
    assert final["how"] == "none" and final["count"] is None and final["memory"] is None, final
    assert "the map is gone" in final["note"] and "returned" in final["note"], final
    _ran_on(run, s)


@pytest.mark.parametrize("mode", MODES)
def test_max_events_then_the_program_runs_on_unwatched(dlv: str, tmp_path: Path, mode: str) -> None:
    run = run_watch(build_fixture("until"), "m", "--max-events", "2", "--mode", mode, tmp=tmp_path)
    assert run.returncode == 0, run.stderr
    assert [e["key"] for e in run.of("delete")] == [5, 17]
    s = run.of("summary")[0]
    assert (s["ended"], s["ended_at"], s["final"]) == ("max_events", None, None)
    _ran_on(run, s)
    assert "until: first len(m) = 60 len(Pkg) = 19" in run.target_output


def _alive_running(binary: Path) -> list[int]:
    """Processes of ``binary`` still running (not zombies)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(d / "exe") == str(binary) and _running(int(d.name)):
                    out.append(int(d.name))
    return out


@pytest.mark.parametrize(
    "ending", [("--max-events", "2"), ("--until", "main.checkpoint")], ids=["max-events", "until"]
)
def test_kill_ends_the_program_with_the_watch(
    dlv: str, tmp_path: Path, ending: tuple[str, str]
) -> None:
    binary = build_fixture("until")
    run = run_watch(binary, "m", *ending, "--kill", tmp=tmp_path)
    assert run.returncode == 0, run.stderr
    s = run.of("summary")[0]
    assert (s["after_watch"], s["exit_status"], s["stopped_early"]) == ("killed", None, True)
    assert "until: first" not in run.target_output  # never printed: killed before
    assert "DLVSNAP-ORACLE done" not in run.target_output
    assert not _alive_running(binary)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("main.nosuch", 'location "main.nosuch" not found'),
        ("nosuch.go:3", 'location "nosuch.go:3" not found'),
        ("main.go:2", "could not find statement at "),
    ],
)
def test_until_an_unknown_location_is_one_line_and_exit_2(
    dlv: str, tmp_path: Path, spec: str, words: str
) -> None:
    """Refused before the program runs (README, "Exit codes": 2), in Delve's words."""
    binary = build_fixture("until")
    run = run_watch(binary, "m", "--until", spec, tmp=tmp_path)
    assert run.returncode == ExitCode.USAGE, run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dlvsnap: --until {spec}: {words}"), lines
    assert not run.of("summary") and not run.target_output
    assert not _alive_running(binary)


def _local_delete_line() -> int:
    """The line of `delete(local, r%20)` in fixtures/interactive: there, in any round,
    main.Inventory has lost one key of its 40 and local still has its 20."""
    text = (FIXTURES / "interactive" / "main.go").read_text().splitlines()
    return next(i for i, t in enumerate(text, 1) if "delete(local, r%20)" in t)


def test_until_with_attach_releases_the_program_running(dlv: str) -> None:
    """A running fixtures/interactive, whatever round the watch starts in: the final
    snapshots are as the program has its maps there (local is in scope there, even if no
    delete named it yet)."""
    line = _local_delete_line()
    with running("interactive", "1000000000", "0") as prog:
        r = run_dlvsnap(
            "watch",
            "--json",
            "--attach",
            str(prog.proc.pid),
            "--map",
            "main.Inventory",
            "--map",
            "local",
            "--until",
            f"main.go:{line}",
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
        prog.assert_released("after --until")
    records = [json.loads(ln) for ln in r.stdout.splitlines()]
    summaries = {x["map"]: x for x in records if x["event"] == "summary"}
    assert summaries["main.Inventory"]["final"]["count"] == 39, summaries
    assert summaries["local"]["final"]["count"] == 20, summaries
    for s in summaries.values():
        assert (s["ended"], s["ended_at"]["line"], s["after_watch"]) == ("until", line, "released")
        assert s["final"]["how"] == "named" and s["exit_status"] is None


def _watch_in_users_server(
    port: int, cond: str, until: str
) -> tuple[DelveClient, list[tuple[int, str, str]], subprocess.CompletedProcess[str]]:
    """The user's client stops the program at its first checkpoint, then leaves a
    breakpoint of its own there with ``cond``; dlvsnap watches main.Inventory in that server
    --until ``until``. The user's client, its breakpoints as they were, and dlvsnap's run."""
    user = _client(port)
    first = user.create_breakpoint(BreakpointSpec(function_name="main.checkpoint"))
    assert not user.command("continue").exited
    user.clear_breakpoint(first.id)
    user.create_breakpoint(BreakpointSpec(function_name="main.checkpoint", cond=cond))
    mine = _users(user)
    r = run_dlvsnap(
        "watch", "--json", "--connect", f"127.0.0.1:{port}", "--map", "main.Inventory",
        "--until", until,
    )  # fmt: skip
    return user, mine, r


def test_until_with_connect_leaves_the_program_stopped_there() -> None:
    """In the user's server: the program is left stopped at LOCATION, in the goroutine that
    reached it, with the user's breakpoints and none of dlvsnap's. LOCATION is where the
    watched delete returns to: the call ends there, and the watch with it."""
    line = _local_delete_line()
    with users_server(build_fixture("interactive"), "20") as port:
        user, mine, r = _watch_in_users_server(port, "round < 0", f"main.go:{line}")
        assert r.returncode == 0, r.stderr
        st = user.state(non_blocking=True)
        assert not st.running and not st.exited
        here = st.current_thread
        assert here is not None and (here.function, here.line) == ("main.main", line)
        assert _users(user) == mine
        user.conn.close()
    records = [json.loads(ln) for ln in r.stdout.splitlines()]
    s = next(x for x in records if x["event"] == "summary")
    assert [d["key"] for d in records if d["event"] == "delete"] == ["item-00"]
    assert not [x for x in records if x["event"] == "note" and x["kind"] == "until"]
    assert (s["ended"], s["after_watch"], s["final"]["count"]) == ("until", "stopped", 39)


def test_until_at_a_users_breakpoint_under_connect_ends_where_it_stops() -> None:
    """Delve allows one breakpoint per address: the user's conditional one at LOCATION
    stands for it, its condition included (round 2's checkpoint, not round 1's), and is
    left as it was."""
    with users_server(build_fixture("interactive"), "20") as port:
        user, mine, r = _watch_in_users_server(port, "round == 2", "main.checkpoint")
        assert r.returncode == 0, r.stderr
        round_now = user.eval("round").as_int()
        assert _users(user) == mine
        user.conn.close()
    records = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert [d["key"] for d in records if d["event"] == "delete"] == ["item-00", "item-01"]
    assert not [x for x in records if x["event"] == "note" and x["kind"] == "stopped"]
    s = next(x for x in records if x["event"] == "summary")
    assert (s["ended"], s["ended_at"]["function"], s["final"]["count"]) == (
        "until",
        "main.checkpoint",
        40,
    )
    assert round_now == 2


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_while_the_program_runs_on_kills_it_after_the_summary(
    tmp_path: Path, dlv: str, sig: signal.Signals
) -> None:
    """After --max-events the program runs on under dlv: Ctrl-C then ends both, after the
    watch's summary (the watch itself had ended)."""
    out = tmp_path / "out.txt"
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dlvsnap",
            "watch",
            str(build_fixture("slow")),
            "--map",
            "m",
            "--json",
            "--max-events",
            "1",
            "--target-output",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert p.stdout is not None and p.stderr is not None
        assert any('"event":"delete"' in line for line in p.stdout), p.stderr.read()
        dlvs = _children(p.pid)
        targets = [c for d in dlvs for c in _children(d)]
        assert dlvs and targets, (dlvs, targets)
        # running on: the program prints a line a second, unwatched
        size, deadline = out.stat().st_size, time.monotonic() + 30
        while out.stat().st_size == size and time.monotonic() < deadline:
            time.sleep(0.1)
        assert out.stat().st_size > size, "the program did not run on"
        os.killpg(p.pid, sig)
        rc = p.wait(timeout=30)
        err, rest = p.stderr.read(), p.stdout.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rc == ExitCode.INTERRUPTED, err
    assert "dlvsnap: interrupted" in err and "Traceback" not in err
    summary = json.loads(rest.splitlines()[-1])
    assert summary["event"] == "summary" and summary["deletes"] == 1, rest
    assert (summary["ended"], summary["after_watch"]) == ("max_events", "interrupted")
    assert summary["exit_status"] is None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_running(x) for x in dlvs + targets):
        time.sleep(0.1)
    assert not [x for x in dlvs + targets if _running(x)], "dlv or the target outlived dlvsnap"


def test_the_python_api_watches_until_a_location_and_leaves_the_program_there(
    dlv: str,
) -> None:
    import dlvsnap

    with (
        open(os.devnull, "wb") as sink,
        dlvsnap.launch(build_fixture("until"), output=sink) as prog,
    ):
        watch = prog.watch(["m", "main.Pkg"], until="main.checkpoint")
        assert [e.key for e in watch] == [5, 17, 33, 60, "k3"]
        m, pkg = watch.summaries
        assert m.ended == "until" and m.ended_at is not None
        assert m.ended_at.function == "main.checkpoint"
        assert m.final is not None and m.final.how == "last_seen" and m.final.snapshot
        assert m.final.snapshot.count == 60
        assert pkg.final is not None and pkg.final.how == "named" and pkg.final.snapshot
        assert pkg.final.snapshot.count == 19
        assert watch.exit_status is None  # left stopped there: it does not run on
        assert prog.location().function == "main.checkpoint"
        assert prog.map("main.Pkg").snapshot().count == 19
        assert "at --until: entries     60 live in" in str(m)
