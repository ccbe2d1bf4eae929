"""dlvsnap beside an editor (issue 15, item 4): VS Code's Go extension debugs through Delve's
DAP server. A headless multiclient Delve (`dlv exec PROG --headless --accept-multiclient`)
serves the editor's DAP connection and dlvsnap's JSON-RPC one at once.

What is checked here, with the DAP client of tests/dap.py standing in for the editor:

* at a stop the editor made (its breakpoint, its pause), `snap --connect` reads the map
  right (the count the editor's own variables pane shows for len), and leaves the editor in
  charge: no event reaches it, its stack is where it was, the program printed nothing more,
  the breakpoints are the editor's and no others, and the editor's next `continue` stops
  at the next hit of its breakpoint;
* while the editor's `continue` runs the program, `snap`/`watch --connect` refuse at once
  (one line, exit 5) instead of halting it: a JSON-RPC halt then never returns (the last
  test shows Delve doing that), and the editor's pause still works afterwards; a dlvsnap
  connection open when the editor resumes the program leaves without halting it;
* `watch --connect` at the editor's stop moves the program without the editor hearing of
  it (docs/editors.md says so, and to give watch a server of its own).

``editor_stopped_at`` sets up "the editor stopped at breakpoint B on the user's server S";
a check of another read-only command (`maps --connect`) goes next to the snap one with
``run_beside`` and ``EditorStop.assert_untouched``.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

import dlvsnap
from dlvsnap.delve.client import DelveClient
from dlvsnap.delve.rpc import JsonRpcConnection
from dlvsnap.errors import ExitCode, RPCTimeoutError
from dlvsnap.toolchain import Variant, delve_for
from tests.dap import DapClient
from tests.support import (
    FIXTURES,
    build_fixture,
    dlv_for,
    run_dlvsnap,
    stop_users_server,
    variants,
)

pytestmark = pytest.mark.live

LISTEN_RE = re.compile(r"API server listening at: 127\.0\.0\.1:(\d+)")
# Delve's log of the JSON-RPC requests it is sent (--log-output=rpc): dlvsnap's, the test's
COMMAND_RE = re.compile(r'<- RPCServer\.Command\(api\.DebuggerCommand\{"name":"(\w+)"')
# dlvsnap's start-up (Python, imports) is most of it; the refusal itself is one State call
QUICK = 15.0
RUNNING = (
    "dlvsnap: the program behind {address} is running: stop it first (a breakpoint, or halt "
    "in your client); dlvsnap does not stop it for you\n"
)


def _one_per_delve() -> list[Variant]:
    """The first variant of the matrix for each Delve release it is tested with: how the
    server treats its two clients is Delve's doing, not the map layout's."""
    out: dict[str, Variant] = {}
    for v in variants():
        d = delve_for(v.go)
        if d is not None:
            out.setdefault(d.version, v)
    return list(out.values())


@dataclass
class UsersServer:
    """The user's `dlv exec PROG --headless --accept-multiclient` server; what the program
    prints (Delve passes it through to its own stdout) is collected line by line, and
    Delve's log of the JSON-RPC requests it gets (on its stderr) too."""

    proc: subprocess.Popen[bytes]
    port: int = 0
    lines: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def printed(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 30.0) -> None:
        """Until the program has printed ``text`` (its output comes through a pipe: it may
        trail what Delve tells its clients)."""
        deadline = time.monotonic() + timeout
        while text not in self.printed:
            assert time.monotonic() < deadline, f"not printed: {text!r} in {self.printed}"
            time.sleep(0.02)

    def quiet(self, settle: float = 0.3, timeout: float = 10.0) -> None:
        """Until nothing more comes through the pipes for ``settle`` seconds (the program
        is stopped: what it printed before may still be on its way)."""
        seen, since, deadline = (-1, -1), time.monotonic(), time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = (len(self.lines), len(self.log))
            if now != seen:
                seen, since = now, time.monotonic()
            elif time.monotonic() - since >= settle:
                return
            time.sleep(0.05)

    def wait_printed(self, more: int, timeout: float = 30.0) -> None:
        """Until the program has printed ``more`` lines more than now."""
        want, deadline = len(self.lines) + more, time.monotonic() + timeout
        while len(self.lines) < want:
            assert time.monotonic() < deadline, f"the program printed nothing: {self.printed}"
            time.sleep(0.02)

    def commands(self) -> list[str]:
        """The JSON-RPC Commands (continue, halt...) the server was sent: the editor's go
        through DAP and are not among them."""
        return [m.group(1) for line in self.log if (m := COMMAND_RE.search(line))]

    @contextlib.contextmanager
    def client(self) -> Iterator[DelveClient]:
        """A JSON-RPC connection of the test's own (as `dlv connect` would be)."""
        c = DelveClient(JsonRpcConnection("127.0.0.1", self.port), default_timeout=10.0)
        try:
            c.set_api_version(2)
            yield c
        finally:
            c.conn.close()

    def breakpoints(self) -> list[tuple[int, str, tuple[int, ...]]]:
        """Every breakpoint set on the server (a client's: Delve's own have ids < 0); the
        program must be stopped."""
        with self.client() as c:
            return sorted((b.id, b.name, b.addrs) for b in c.list_breakpoints() if b.id > 0)


@contextlib.contextmanager
def users_server(prog: Path, dlv: str, *args: str) -> Iterator[UsersServer]:
    cmd = [dlv, "exec", str(prog), "--headless", "--accept-multiclient", "--api-version=2"]
    cmd += ["--listen=127.0.0.1:0", "--log", "--log-output=rpc", "--", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    server = UsersServer(proc)

    def drain(pipe: IO[bytes] | None, into: list[str]) -> None:
        assert pipe is not None
        for raw in pipe:
            into.append(raw.decode(errors="replace"))

    for pipe, into in ((proc.stdout, server.lines), (proc.stderr, server.log)):
        threading.Thread(target=drain, args=(pipe, into), daemon=True).start()
    try:
        deadline = time.monotonic() + 60
        while not (m := LISTEN_RE.search(server.printed)):
            said = server.printed + "".join(server.log)
            assert proc.poll() is None, f"dlv exited: {said}"
            assert time.monotonic() < deadline, f"dlv did not start: {said}"
            time.sleep(0.02)
        server.port = int(m.group(1))
        del server.lines[:]  # from here on: what the program prints
        yield server
    finally:
        stop_users_server(proc, prog)


@dataclass
class EditorStop:
    """The editor (a DAP client attached with mode "remote") and the stop it made."""

    server: UsersServer
    dap: DapClient
    thread_id: int  # Delve's DAP threads are goroutines

    def frames(self, goroutine: int | None = None) -> list[dict[str, Any]]:
        return self.dap.stack_trace(goroutine or self.thread_id)

    def top(self, goroutine: int | None = None) -> tuple[str, int]:
        f = self.frames(goroutine)[0]
        return f["name"], f["line"]

    def _scope(self, prefix: str) -> list[dict[str, Any]]:
        scopes = self.dap.scopes(self.frames()[0]["id"])
        scope = next(s for s in scopes if s["name"].startswith(prefix))
        return self.dap.variables(scope["variablesReference"])

    def local(self, name: str) -> str:
        """The value of a local or argument of the top frame, as the editor shows it."""
        return str(next(v for v in self._scope("Locals") if v["name"] == name)["value"])

    def map_len(self, name: str) -> int:
        """len() of a package map of the stopped frame's package, as the editor's variables
        pane shows it (with `showGlobalVariables`): the map's indexed children, and the
        `len()` row Delve adds under a map that has entries."""
        var = next(v for v in self._scope("Globals") if v["name"] == name)
        n = int(var.get("indexedVariables", 0))
        if n:
            named = self.dap.variables(var["variablesReference"], filter="named")
            assert [(v["name"], v["value"]) for v in named] == [("len()", str(n))], named
        else:
            assert var["value"].endswith(" []"), var  # an empty map, not a nil one
        return n

    def cont(self) -> dict[str, Any]:
        """The editor's continue, to the program's next stop: the stopped event."""
        self.dap.continue_(self.thread_id)
        ev = self.dap.wait_event("stopped", timeout=60)
        self.thread_id = int(ev["body"].get("threadId") or self.thread_id)
        return ev

    def session(self) -> tuple[Any, ...]:
        """What dlvsnap must leave as it found it: where the editor's goroutine stands, the
        breakpoints, how much the program has printed, the JSON-RPC Commands sent."""
        bps = self.server.breakpoints()
        self.server.quiet()
        return self.top(), bps, len(self.server.lines), self.server.commands()

    def assert_untouched(self, before: tuple[Any, ...]) -> None:
        """Since ``before`` (``session()``): dlvsnap sent no Command (neither continue nor
        halt), no event reached the editor, and the stack, the breakpoints (none of
        dlvsnap's) and the program's output are as they were."""
        events = self.dap.drain_events(settle=0.2)
        assert [e["event"] for e in events] == [], events
        now = self.session()
        assert now == before
        assert not [bp for bp in now[1] if bp[1].startswith("dlvsnap")]


@contextlib.contextmanager
def editor_stopped_at(function: str, prog: Path, dlv: str, *args: str) -> Iterator[EditorStop]:
    """The user's server on ``prog``, and the editor attached to it as VS Code attaches with
    `"request": "attach", "mode": "remote"`, stopped at its function breakpoint."""
    with users_server(prog, dlv, *args) as server:
        dap = DapClient("127.0.0.1", server.port)
        try:
            assert dap.initialize().get("supportsFunctionBreakpoints")
            dap.attach_remote(showGlobalVariables=True)
            [bp] = dap.set_function_breakpoints(function)
            assert bp["verified"], bp
            dap.configuration_done()  # Delve resumes the program here (no stopOnEntry)
            ev = dap.wait_event("stopped", timeout=60)
            assert ev["body"]["reason"] == "function breakpoint", ev
            assert ev["body"]["hitBreakpointIds"] == [bp["id"]], ev
            stop = EditorStop(server, dap, int(ev["body"]["threadId"]))
            assert stop.top()[0] == function
            yield stop
        finally:
            dap.close()


def run_beside(
    stop: EditorStop, command: str, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`dlvsnap COMMAND --connect <the editor's server> ARGS`; a hang fails the test."""
    try:
        return run_dlvsnap(command, "--connect", stop.server.address, *args, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"dlvsnap {command} --connect hung for {timeout} s beside the editor")


@pytest.mark.parametrize("v", variants(), ids=lambda v: v.id)
def test_snap_at_the_editors_breakpoints_leaves_the_editor_in_charge(v: Variant) -> None:
    # phases: 1000 entries, all deleted, 10 inserted; stage() after each step
    prog = build_fixture("phases", variant=v)
    with editor_stopped_at("main.stage", prog, dlv_for(v), "1000") as stop:
        assert stop.map_len("m") == 1000
        before = stop.session()
        snap = run_beside(stop, "snap", "--map", "main.m", "--json")
        assert snap.returncode == 0, snap.stderr
        assert snap.stderr == ""
        state = json.loads(snap.stdout)
        assert (state["impl"], state["count"], state["memory"]["live_entries"]) == (
            v.impl,
            1000,
            1000,
        )
        stop.assert_untouched(before)

        # the editor's continue: the program runs to the next hit of the editor's breakpoint
        ev = stop.cont()
        assert ev["body"]["reason"] == "function breakpoint", ev
        assert stop.top()[0] == "main.stage"
        assert stop.local("name") == '"emptied"'
        stop.server.wait_for("phases: filled len=1000 ")
        assert stop.map_len("m") == 0
        before = stop.session()
        text = run_beside(stop, "snap", "--map", "main.m")
        assert text.returncode == 0, text.stderr
        first, *_ = text.stdout.splitlines()
        assert first.startswith("main.m (map[int][128]uint8) at 0x"), first
        assert ", main.stage main.go:" in first
        assert " for 0 live entries\n" in text.stdout
        stop.assert_untouched(before)

        ev = stop.cont()
        assert ev["body"]["reason"] == "function breakpoint", ev
        assert stop.local("name") == '"refilled"' and stop.map_len("m") == 10
        stop.server.wait_for("phases: emptied len=0 ")
        # and on to the end, as the editor would (Delve 1.25 sends no `exited` event)
        stop.dap.continue_(stop.thread_id)
        stop.dap.wait_event("terminated", timeout=60)
        stop.server.wait_for("phases: refilled len=10 ")
        with stop.server.client() as c:
            assert c.exit_status() == 0
        stops = [e for e in stop.dap.seen if e["event"] == "stopped"]
        assert len(stops) == 3  # the editor's three, and none of dlvsnap's


def _line_of(fixture: str, text: str) -> int:
    lines = (FIXTURES / fixture / "main.go").read_text().splitlines()
    [n] = [i for i, line in enumerate(lines, 1) if line.strip() == text]
    return n


@pytest.mark.parametrize("v", _one_per_delve(), ids=lambda v: v.id)
def test_dlvsnap_refuses_quickly_while_the_editor_runs_the_program(v: Variant) -> None:
    # interactive: a round every 20 ms, each calling checkpoint and printing a line
    prog = build_fixture("interactive", variant=v)
    with editor_stopped_at("main.checkpoint", prog, dlv_for(v), "1000000", "20") as stop:
        source = stop.frames()[1]["source"]["path"]  # main.go as the binary names it
        assert stop.dap.set_function_breakpoints() == []
        stop.dap.continue_(stop.thread_id)  # and now no breakpoint stops the program
        stop.server.wait_printed(3)
        for command in ("snap", "watch"):
            t0 = time.monotonic()
            r = run_beside(stop, command, "--map", "main.Inventory", timeout=60)
            took = time.monotonic() - t0
            assert r.returncode == ExitCode.TARGET, r.stderr
            assert r.stderr == RUNNING.format(address=stop.server.address)
            assert r.stdout == ""
            assert took < QUICK, f"{command}: refused after {took:.1f} s"
        # dlvsnap neither halted the program nor told the editor anything
        stop.server.wait_printed(3)
        assert stop.dap.drain_events() == [] and stop.server.commands() == []

        # the editor's pause works as ever; dlvsnap reads at that stop
        stop.dap.pause(stop.thread_id)
        ev = stop.dap.wait_event("stopped")
        assert ev["body"]["reason"] == "pause", ev
        names = [f["name"] for f in stop.frames(1)]  # goroutine 1: main
        assert "main.main" in names, names
        before = stop.session()
        snap = run_beside(stop, "snap", "--map", "main.Inventory", "--json")
        assert snap.returncode == 0, snap.stderr
        # each round deletes a key and puts it back: 40 unless paused between the two
        assert json.loads(snap.stdout)["count"] in (39, 40)
        stop.assert_untouched(before)

        # a line breakpoint, the kind an editor sets most, stops the program as before
        line = _line_of("interactive", "delete(Inventory, key)")
        [bp] = stop.dap.set_breakpoints(source, line)
        assert bp["verified"] and bp["line"] == line, bp
        ev = stop.cont()
        assert ev["body"]["reason"] == "breakpoint", ev
        assert stop.top() == ("main.main", line)
        # the editor leaves; the server goes on serving the program, stopped where it was
        stop.dap.disconnect(terminate_debuggee=False)
        with stop.server.client() as c:
            st = c.state(non_blocking=True)
            assert not st.running and st.current_thread is not None
            assert st.current_thread.line == line


@pytest.mark.parametrize("v", _one_per_delve(), ids=lambda v: v.id)
def test_watch_beside_the_editor_moves_the_program_without_telling_it(v: Variant) -> None:
    """What docs/editors.md warns of: `watch --connect` resumes the program and stops it
    again at the editor's own breakpoint, and the editor hears nothing of it."""
    prog = build_fixture("interactive", variant=v)
    with editor_stopped_at("main.checkpoint", prog, dlv_for(v), "100") as stop:
        assert stop.local("round") == "0"
        bps = stop.server.breakpoints()
        watch = run_beside(stop, "watch", "--map", "main.Inventory", "--json")
        assert watch.returncode == 0, watch.stderr
        records = [json.loads(ln) for ln in watch.stdout.splitlines()]
        deletes = [(r["key"], r["key_present"]) for r in records if r["event"] == "delete"]
        assert deletes == [("item-00", True)]  # round 0's, up to checkpoint(1)
        assert "continue" in stop.server.commands()  # dlvsnap's, over JSON-RPC
        # the program ran and stopped again; the editor got no event, so VS Code would
        # still show round 0 until it asks again
        assert stop.dap.drain_events(settle=0.2) == []
        assert stop.top()[0] == "main.checkpoint" and stop.local("round") == "1"
        assert stop.server.breakpoints() == bps
        stop.server.wait_for("interactive: round 0 ")
        # the editor's continue still works: the next hit of its breakpoint
        ev = stop.cont()
        assert ev["body"]["reason"] == "function breakpoint", ev
        assert stop.local("round") == "2"


@pytest.mark.parametrize("v", _one_per_delve(), ids=lambda v: v.id)
def test_leaving_while_the_editor_runs_the_program_leaves_it_running(v: Variant) -> None:
    """A dlvsnap connection open while the editor presses continue (the Python API in a
    notebook; a snap being read): leaving does not halt the program dlvsnap never resumed.
    It used to, and the halt did not return (the test below): 20 s of timeouts, dlvsnap's
    and then its guardian's, which said "could not release"."""
    prog = build_fixture("interactive", variant=v)
    with editor_stopped_at("main.checkpoint", prog, dlv_for(v), "1000000", "20") as stop:
        debugger = dlvsnap.connect(stop.server.address)
        try:
            assert debugger.map("main.Inventory").snapshot().count == 40
            stop.dap.set_function_breakpoints()
            stop.dap.continue_(stop.thread_id)
            stop.server.wait_printed(3)
        finally:
            t0 = time.monotonic()
            debugger.close()
            took = time.monotonic() - t0
        assert took < 5.0, f"leaving took {took:.1f} s"
        stop.server.wait_printed(3)  # still running, as the editor left it
        assert stop.server.commands() == []
        assert stop.dap.drain_events() == []
        stop.dap.pause(stop.thread_id)
        assert stop.dap.wait_event("stopped")["body"]["reason"] == "pause"
        assert stop.server.breakpoints() == []  # the editor's are gone, and none of dlvsnap's


@pytest.mark.parametrize("v", _one_per_delve(), ids=lambda v: v.id)
def test_a_halt_during_the_editors_continue_does_not_return(v: Variant) -> None:
    """Why dlvsnap refuses rather than halts (docs/census-research.md section 5): Delve's
    DAP continue takes a halt it did not ask for as a spurious stop and resumes, and the
    JSON-RPC halt waits for the target lock that continue holds. If a Delve release changes
    this, docs/editors.md has to change with it."""
    prog = build_fixture("interactive", variant=v)
    with editor_stopped_at("main.checkpoint", prog, dlv_for(v), "1000000", "20") as stop:
        stop.dap.set_function_breakpoints()
        stop.dap.continue_(stop.thread_id)
        stop.server.wait_printed(3)
        with stop.server.client() as c:
            assert c.state(non_blocking=True).running
            with pytest.raises(RPCTimeoutError):
                c.command("halt", timeout=5.0)
        assert stop.server.commands() == ["halt"]  # Delve got it
        stop.server.wait_printed(3)  # still running
        assert stop.dap.drain_events() == []
        # the editor's pause still stops it
        stop.dap.pause(stop.thread_id)
        assert stop.dap.wait_event("stopped")["body"]["reason"] == "pause"


@pytest.mark.parametrize("v", _one_per_delve(), ids=lambda v: v.id)
def test_maps_at_the_editors_breakpoint_leaves_the_editor_in_charge(v: Variant) -> None:
    """`maps --connect` where the editor stopped fixtures/census (its breakpoint on
    main.ready): the census the program gives of itself, and the editor's session as it
    was (no Command sent, no event, same stack and breakpoints); the editor's Pause and
    continue go on working afterwards."""
    from tests.live.test_census import _account, _records, check_census

    prog = build_fixture("census", variant=v)
    with editor_stopped_at("main.ready", prog, dlv_for(v)) as stop:
        before = stop.session()
        r = run_beside(stop, "maps", "--json", "--top", "0")
        assert r.returncode == 0, r.stderr
        maps, census = _records(r.stdout)
        stop.server.wait_for("DLVSNAP-CENSUS ")
        check_census(maps, census, _account("".join(stop.server.lines)))
        assert census["source"] == "connect"
        stop.assert_untouched(before)
        # the editor still drives: its continue runs the program (which sleeps for good),
        # and its Pause stops it again
        stop.dap.continue_(stop.thread_id)
        stop.dap.pause(stop.thread_id)
        ev = stop.dap.wait_event("stopped", timeout=60)
        assert ev["body"]["reason"] == "pause", ev
