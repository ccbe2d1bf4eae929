"""The interactive ways in (issue 5): a user's own Delve server and client (--connect), a
running program (--attach), a launch stopped at a location (--at), snapshot files saved
at a live stop and decoded again, and the Python API example of the README."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import dlvsnap
from dlvsnap.delve.client import BreakpointSpec, DelveClient
from dlvsnap.delve.rpc import JsonRpcConnection
from tests import readme
from tests.support import (
    FIXTURES,
    ROOT,
    Variant,
    build_fixture,
    dlv_binary,
    dlv_for,
    go_toolchain,
    run_dlvsnap,
    variants,
)

pytestmark = pytest.mark.live

LISTEN_RE = re.compile(rb"API server listening at: 127\.0\.0\.1:(\d+)")


_dlvsnap = run_dlvsnap


@contextlib.contextmanager
def users_delve_server(tmp: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """What a user runs: `dlv debug --headless --accept-multiclient` on the fixture."""
    go = go_toolchain()
    env = {**os.environ, "PATH": f"{Path(go).parent}:{os.environ['PATH']}"}
    cmd = [dlv_binary(), "debug", "./interactive", "--headless", "--accept-multiclient"]
    cmd += ["--output", str(tmp / "interactive-debug")]
    cmd += ["--api-version=2", "--listen=127.0.0.1:0", "--", "1000"]
    proc = subprocess.Popen(
        cmd, cwd=FIXTURES, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        assert proc.stdout is not None
        seen = b""
        deadline = time.monotonic() + 120
        while not (m := LISTEN_RE.search(seen)):
            line = proc.stdout.readline()
            assert line or proc.poll() is None, seen.decode(errors="replace")
            assert time.monotonic() < deadline, "dlv debug did not start"
            seen += line
        yield int(m.group(1)), proc
    finally:
        proc.terminate()  # dlv's own clean-up: kills the program, removes its binary
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def _breakpoints(c: DelveClient) -> list[tuple[int, str, int, tuple[int, ...], str]]:
    """The user's breakpoints (Delve's own have negative ids): where and what."""
    return sorted(
        (b.id, b.raw.get("file", ""), int(b.raw.get("line", 0)), b.addrs, b.cond)
        for b in c.list_breakpoints()
        if b.id > 0
    )


def _where(c: DelveClient) -> tuple[str, int, int]:
    st = c.state(non_blocking=True)
    th = st.current_thread
    assert th is not None and not st.running
    return th.function, th.line, st.pid


def test_snap_and_watch_connect_leave_the_users_session_as_it_was(tmp_path: Path) -> None:
    with users_delve_server(tmp_path) as (port, _server):
        user = DelveClient(JsonRpcConnection("127.0.0.1", port))
        user.set_api_version(2)
        user.create_breakpoint(BreakpointSpec(function_name="main.checkpoint"))
        user.command("continue")
        user.command("continue")  # the second round: checkpoint(1)
        bps, where = _breakpoints(user), _where(user)
        assert where[0] == "main.checkpoint"
        address = f"127.0.0.1:{port}"

        saved = tmp_path / "inventory.json"
        snap = _dlvsnap(
            "snap", "--connect", address, "--map", "main.Inventory", "--save", str(saved)
        )
        assert snap.returncode == 0, snap.stderr
        assert "main.Inventory (map[string]int)" in snap.stdout and "40 full" in snap.stdout
        assert _breakpoints(user) == bps and _where(user) == where
        assert dlvsnap.load(saved).snapshot.count == 40

        watch = _dlvsnap("watch", "--connect", address, "--map", "main.Inventory", "--json")
        assert watch.returncode == 0, watch.stderr
        records = [json.loads(ln) for ln in watch.stdout.splitlines()]
        deletes = [r for r in records if r["event"] == "delete"]
        # from checkpoint(1) to checkpoint(2): the program deleted item-01 once
        assert [(d["key"], d["key_present"]) for d in deletes] == [("item-01", True)]
        notes = [r for r in records if r["event"] == "note" and r["kind"] == "stopped"]
        assert len(notes) == 1 and "main.checkpoint" in notes[0]["message"]
        # the user's breakpoint stopped the program again: same place, same breakpoints
        assert _breakpoints(user) == bps
        assert _where(user) == where
        # and the program is alive and healthy: the user's client takes it to the end
        for bp_id, *_ in bps:
            user.clear_breakpoint(bp_id)
        st = user.command("continue")
        assert st.exited and st.exit_status == 0
        user.conn.close()


@pytest.mark.parametrize("v", variants(), ids=lambda v: v.id)
def test_snap_at_a_location_saved_and_decoded_again(tmp_path: Path, v: Variant) -> None:
    """Every release of the matrix: the type descriptor found through DWARF, a local map
    read in the caller's frame, the state as JSON, and the saved file decoded offline."""
    saved = tmp_path / "local.json"
    r = _dlvsnap(
        "snap",
        str(build_fixture("interactive", variant=v)),
        "--dlv",
        dlv_for(v),
        "--at",
        "main.checkpoint",
        "--map",
        "local",
        "--frame",
        "1",
        "--json",
        "--save",
        str(saved),
        "--target-output",
        os.devnull,
    )
    assert r.returncode == 0, r.stderr
    state = json.loads(r.stdout)
    assert state["impl"] == v.impl
    assert state["count"] == 20 and sorted(state["live_keys"]) == list(range(20))
    assert state["states"].count("F") == 20
    offline = dlvsnap.load(saved).snapshot
    assert sorted(offline.live_keys()) == list(range(20))  # type: ignore[type-var]
    assert offline.layout == state["layout"] and offline.count == 20


@contextlib.contextmanager
def running_program(pause_ms: int) -> Iterator[subprocess.Popen[str]]:
    """fixtures/interactive running on its own (not under a debugger), one round printed."""
    prog = build_fixture("interactive")
    p = subprocess.Popen(
        [str(prog), "100000", str(pause_ms)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert p.stdout is not None
        assert p.stdout.readline().startswith("interactive: round 0")
        yield p
    finally:
        p.kill()
        p.wait(timeout=30)


def _goes_on_running(p: subprocess.Popen[str]) -> None:
    """Released, with no breakpoint left in it (one left behind would kill it with SIGTRAP
    at the next delete): it goes on printing rounds."""
    assert p.stdout is not None
    rounds = [p.stdout.readline() for _ in range(5)]
    assert all(x.startswith("interactive: round") for x in rounds), rounds
    assert p.poll() is None


def test_snap_attach_releases_the_running_program() -> None:
    with running_program(20) as p:
        r = _dlvsnap("snap", "--attach", str(p.pid), "--map", "main.Inventory", "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["count"] in (39, 40)  # attached between or in a round
        _goes_on_running(p)


def test_saved_snapshot_decodes_again_to_the_live_one(tmp_path: Path) -> None:
    prog = build_fixture("interactive")
    with open(os.devnull, "wb") as sink, dlvsnap.launch(prog, ["5"], output=sink) as dbg:
        dbg.run_to("main.checkpoint")
        m = dbg.map("main.Inventory")
        m.save(tmp_path / "a.json")
        live = m.snapshot()
        for _ in dbg.watch(m, max_events=1):
            pass
        m.save(tmp_path / "b.json")
    offline = dlvsnap.load(tmp_path / "a.json").snapshot
    d = dlvsnap.compare(offline, live)
    assert (d.changes, d.header_changes, d.table_changes) == ((), {}, {})
    assert offline.live_keys() == live.live_keys() and len(live.live_keys()) == 40
    # the CLI compares the two saved stops: item-00 was deleted between them
    r = _dlvsnap("diff", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--no-color")
    assert r.returncode == 0, r.stderr
    assert 'key "item-00"' in r.stdout and "used 40 -> 39" in r.stdout


def test_readme_python_example_runs() -> None:
    example = readme.block("api")
    assert example.lang == "python"
    env = {**os.environ, "PATH": f"{Path(go_toolchain()).parent}:{os.environ['PATH']}"}
    r = subprocess.run(
        [sys.executable, "-c", example.text],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    # 40 string keys in one table of 8 groups of 200 B: 1,600 B with pointers, + an 8-byte
    # malloc header = class 1,792; with the Map (48), directory (8) and table (32): 1,880
    assert '#1 delete key="item-00"' in r.stdout and "holds 1,880 B" in r.stdout
    assert "\nsummary\ndeletes seen            2\n" in r.stdout  # str(watch.summary)


def test_ctrl_c_during_watch_connect_halts_and_removes_only_dlvsnaps_breakpoints(
    tmp_path: Path,
) -> None:
    with users_delve_server(tmp_path) as (port, _server):
        user = DelveClient(JsonRpcConnection("127.0.0.1", port))
        user.set_api_version(2)
        first = user.create_breakpoint(BreakpointSpec(function_name="main.checkpoint"))
        user.command("continue")
        user.clear_breakpoint(first.id)
        # a breakpoint of the user's whose condition never holds while dlvsnap watches
        user.create_breakpoint(BreakpointSpec(function_name="main.checkpoint", cond="round < 0"))
        bps = _breakpoints(user)
        p = subprocess.Popen(
            [
                *(sys.executable, "-m", "dlvsnap", "watch", "--connect", f"127.0.0.1:{port}"),
                *("--map", "main.Inventory", "--json"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert p.stdout is not None
        while '"event":"delete"' not in p.stdout.readline():  # watching: deletes come in
            assert p.poll() is None, p.stderr.read() if p.stderr else ""
        os.killpg(p.pid, signal.SIGINT)
        _, err = p.communicate(timeout=60)
        assert p.returncode == 130, err
        # the program is stopped (halted), alive, with the user's breakpoints and no other
        st = user.state(non_blocking=True)
        assert not st.running and not st.exited
        assert _breakpoints(user) == bps
        assert user.command("continue").exited  # the user's client takes it to the end
        user.conn.close()


def test_watch_attach_then_release() -> None:
    with running_program(5) as p:
        r = _dlvsnap(
            "watch",
            "--attach",
            str(p.pid),
            "--map",
            "main.Inventory",
            "--json",
            "--max-events",
            "2",
        )
        assert r.returncode == 0, r.stderr
        deletes = [json.loads(ln) for ln in r.stdout.splitlines() if '"event":"delete"' in ln]
        assert len(deletes) == 2 and all(d["key_present"] for d in deletes)
        assert int(deletes[1]["key"][-2:]) == (int(deletes[0]["key"][-2:]) + 1) % 40
        _goes_on_running(p)


def test_watch_connect_ends_at_a_users_breakpoint_on_the_return_address(tmp_path: Path) -> None:
    """The user's breakpoint is on the line right after a watched delete, where the call
    returns: dlvsnap cannot put its own return breakpoint there, steps out instead, reports
    the delete, and ends the watch at the user's breakpoint instead of passing it."""
    line = next(
        i
        for i, text in enumerate((FIXTURES / "interactive" / "main.go").read_text().splitlines(), 1)
        if "delete(local, r%20)" in text
    )
    with users_delve_server(tmp_path) as (port, _server):
        user = DelveClient(JsonRpcConnection("127.0.0.1", port))
        user.set_api_version(2)
        user.create_breakpoint(BreakpointSpec(function_name="main.checkpoint"))
        user.command("continue")  # checkpoint(0)
        for bp_id, *_ in _breakpoints(user):
            user.clear_breakpoint(bp_id)
        after = user.find_location(f"main.go:{line}")
        user.create_breakpoint(BreakpointSpec(addrs=tuple(after)))
        bps, address = _breakpoints(user), f"127.0.0.1:{port}"
        watch = _dlvsnap("watch", "--connect", address, "--map", "main.Inventory", "--json")
        assert watch.returncode == 0, watch.stderr
        records = [json.loads(ln) for ln in watch.stdout.splitlines()]
        deletes = [r for r in records if r["event"] == "delete"]
        assert [(d["key"], d["key_present"]) for d in deletes] == [("item-00", True)]
        notes = [r for r in records if r["event"] == "note" and r["kind"] == "stopped"]
        assert len(notes) == 1 and f"main.go:{line}" in notes[0]["message"], records
        assert _breakpoints(user) == bps
        assert _where(user)[:2] == ("main.main", line)
        for bp_id, *_ in bps:
            user.clear_breakpoint(bp_id)
        st = user.command("continue")
        assert st.exited and st.exit_status == 0
        user.conn.close()


def test_the_api_watches_two_maps_at_once() -> None:
    """Debugger.watch with a sequence of maps: each event says which, each map has its own
    summary (fixtures/twomaps: 6 deletes from each, in turn)."""
    prog = build_fixture("twomaps")
    with open(os.devnull, "wb") as sink, dlvsnap.launch(prog, output=sink) as dbg:
        w = dbg.watch(["main.A", "b"])
        got = [(ev.map, ev.seq) for ev in w]
    assert got == [("main.A" if i % 2 else "b", i) for i in range(1, 13)]
    assert [s.deletes for s in w.summaries] == [6, 6]
    assert [s.mode for s in w.summaries] == ["watchpoint", "watchpoint"]
    with pytest.raises(ValueError, match="same map twice"):
        dbg.watch(["b", "b"])
