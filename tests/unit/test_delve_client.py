"""The Delve client and the session's clean-up against a scripted peer (tests/unit/
fakedelve.py), without dlv: what dlvsnap sends, and what it leaves. The same behaviour
against a real dlv is in tests/live (test_interactive.py, test_leaving.py)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from dlvsnap.delve import release
from dlvsnap.delve.client import BreakpointSpec, DelveClient
from dlvsnap.delve.memory import DelveMem
from dlvsnap.delve.rpc import JsonRpcConnection
from dlvsnap.delve.types import Breakpoint, DebuggerState, LoadConfig, Version
from dlvsnap.errors import (
    DlvsnapError,
    ExitCode,
    MemoryReadError,
    ProgramExitedError,
    TargetError,
)
from dlvsnap.session import Session
from dlvsnap.target import TargetInfo
from tests.unit.fakedelve import JSON, FakeDelve, Refuse, breakpoint_json, fake_delve, stopped_state

MEMORY = bytes(range(256)) * 1024  # 256 KiB at 0x10000


def _examine(limit: int) -> Any:
    """ExamineMemory as Delve answers it, refusing more than ``limit`` bytes a call."""

    def answer(method: str, p: JSON) -> JSON:
        assert method == "ExamineMemory"
        if p["Length"] > limit:
            raise Refuse(f"len must be less than or equal to {limit}")
        at = p["Address"] - 0x10000
        if at < 0 or at + p["Length"] > len(MEMORY):
            raise Refuse("the specific range has exceeded readable area")
        return {"Mem": base64.b64encode(MEMORY[at : at + p["Length"]]).decode()}

    return answer


def _client(fake: FakeDelve) -> DelveClient:
    return DelveClient(JsonRpcConnection("127.0.0.1", fake.port), default_timeout=10.0)


def _connected(c: DelveClient, delve_version: str) -> Session:
    """A Session over the fake Delve, as `--connect` makes one (no dlv of its own)."""
    return Session(
        dlv=None,
        client=c,
        target=TARGET,
        version=Version(delve_version, 2, "", "", ""),
        pid=4242,
        dlv_path="",
        reader="delve",
        mode="connect",
    )


def test_memory_is_read_in_chunks_of_the_servers_limit() -> None:
    with fake_delve(_examine(65536)) as fake:
        c = _client(fake)
        assert DelveMem(c).read(0x10000 + 5, 150_000) == MEMORY[5 : 5 + 150_000]
        c.conn.close()
    assert [p["Length"] for p in fake.params("ExamineMemory")] == [65536, 65536, 18928]


def test_delve_120s_limit_of_1000_bytes_is_learnt_once() -> None:
    with fake_delve(_examine(1000)) as fake:
        c = _client(fake)
        assert c.read_memory(0x10000, 2500) == MEMORY[:2500]
        assert c.read_memory(0x10000 + 100, 1500) == MEMORY[100:1600]
        c.conn.close()
    assert [p["Length"] for p in fake.params("ExamineMemory")] == [2500, 1000, 1000, 500, 1000, 500]


def test_an_unreadable_region_is_a_memory_read_error() -> None:
    with fake_delve(_examine(65536)) as fake:
        c = _client(fake)
        with pytest.raises(MemoryReadError, match="read 16 bytes at 0x8: ExamineMemory: the spe"):
            DelveMem(c).read(8, 16)
        c.conn.close()


def test_a_breakpoint_is_sent_with_the_keys_delve_reads() -> None:
    """ "Cond" exactly (a misspelt key is dropped silently), the line 0 of a function."""

    def answer(method: str, p: JSON) -> JSON:
        return {"Breakpoint": {**p["Breakpoint"], "id": 7}}

    spec = BreakpointSpec(
        function_name="runtime.mapdelete_fast64",
        cond="uintptr(m) == 0xc000010000",
        name="dlvsnap1x1n1",
        stacktrace=12,
        variables=("runtime.curg.stack.hi",),
        load_args=LoadConfig(max_string_len=0, max_struct_fields=0),
    )
    with fake_delve(answer) as fake:
        c = _client(fake)
        bp = c.create_breakpoint(spec)
        c.conn.close()
    assert (bp.id, bp.name, bp.cond) == (7, "dlvsnap1x1n1", "uintptr(m) == 0xc000010000")
    assert fake.params("CreateBreakpoint") == [
        {
            "Breakpoint": {
                "functionName": "runtime.mapdelete_fast64",
                "line": 0,
                "Cond": "uintptr(m) == 0xc000010000",
                "name": "dlvsnap1x1n1",
                "stacktrace": 12,
                "variables": ["runtime.curg.stack.hi"],
                "LoadArgs": {
                    "FollowPointers": False,
                    "MaxVariableRecurse": 0,
                    "MaxStringLen": 0,
                    "MaxArrayValues": 0,
                    "MaxStructFields": 0,
                },
            }
        }
    ]


def test_amending_a_breakpoint_sends_the_whole_object_back() -> None:
    """AmendBreakpoint replaces every mutable field: what dlvsnap does not change is sent
    as Delve gave it (hit counts, file and line, user data), LoadArgs dropped on request."""
    raw = breakpoint_json(3, "dlvsnap1x1n3", file="main.go", line=14, hitCount={"1": 2})
    raw["LoadArgs"] = {"MaxStringLen": 0}
    with fake_delve(lambda m, p: {}) as fake:
        c = _client(fake)
        out = c.amend_breakpoint(Breakpoint.from_json(raw), "x == 1", ("k",), 0, load_args=False)
        c.conn.close()
    (sent,) = fake.params("AmendBreakpoint")
    want = {**raw, "Cond": "x == 1", "variables": ["k"], "stacktrace": 0, "LoadArgs": None}
    assert sent == {"Breakpoint": want}
    assert out.cond == "x == 1" and raw["Cond"] == ""  # Delve's object itself is not changed


def _debugger(breakpoints: list[JSON], running: bool = False) -> Any:
    """A stopped (or running) program with these breakpoints; halt stops it."""
    state = {"running": running}
    bps = {b["id"]: b for b in breakpoints}

    def answer(method: str, p: JSON) -> JSON:
        if method == "State":
            return {"State": stopped_state(running=state["running"])}
        if method == "Command":
            assert p["name"] == "halt"
            state["running"] = False
            return {"State": stopped_state()}
        if method == "ListBreakpoints":
            return {"Breakpoints": list(bps.values())}
        if method == "ClearBreakpoint":
            return {"Breakpoint": bps.pop(p["Id"])}
        raise AssertionError(f"unexpected {method} {p}")

    return answer, bps


BREAKPOINTS = [
    breakpoint_json(-1, "unrecovered-panic"),  # Delve's own
    breakpoint_json(1, ""),  # the user's
    breakpoint_json(2, "dlvsnap123x1n1"),
    breakpoint_json(3, "mine"),  # the user's, named
    breakpoint_json(4, "dlvsnap123x1n2"),
    breakpoint_json(5, "dlvsnap123x2n1"),  # another session of the same dlvsnap
    breakpoint_json(6, "dlvsnap99x1n1"),  # another dlvsnap process's
]


def test_clean_up_removes_only_this_sessions_breakpoints_and_never_halts_a_stopped_program() -> (
    None
):
    """A halt sent to a stopped program can leave a SIGTRAP pending that kills it once it
    is detached (dlvsnap/delve/release.py): none is sent here."""
    answer, left = _debugger(BREAKPOINTS)
    with fake_delve(answer) as fake:
        c = _client(fake)
        release.release(c, "dlvsnap123x1n", pid=0, detach=False)
        c.conn.close()
    assert sorted(left) == [-1, 1, 3, 5, 6]
    assert [p["Id"] for p in fake.params("ClearBreakpoint")] == [2, 4]
    assert "Command" not in fake.methods()


def test_a_running_program_is_halted_before_its_breakpoints_are_removed() -> None:
    answer, left = _debugger(BREAKPOINTS, running=True)
    with fake_delve(answer) as fake:
        c = _client(fake)
        release.release(c, "dlvsnap123x1n", pid=0, detach=False)
        c.conn.close()
    methods = fake.methods()
    assert methods[:2] == ["State", "Command"] and fake.params("Command") == [{"name": "halt"}]
    assert methods.index("Command") < methods.index("ClearBreakpoint")
    assert sorted(left) == [-1, 1, 3, 5, 6]


TARGET = TargetInfo("/nowhere/prog", "go1.26.8", (), "amd64", 8, True, "swiss")


def test_a_connect_session_names_its_breakpoints_and_leaves_the_users_on_close() -> None:
    """--connect: dlvsnap's breakpoints carry the session's prefix; closing removes those
    and leaves the program stopped: no Detach, no kill, the user's breakpoints kept."""
    answer, left = _debugger([breakpoint_json(1, ""), breakpoint_json(3, "mine")])

    def with_create(method: str, p: JSON) -> JSON:
        if method == "CreateBreakpoint":
            bp = {**p["Breakpoint"], "id": 10 + len(left), "addrs": [0x401000]}
            left[bp["id"]] = bp
            return {"Breakpoint": bp}
        return answer(method, p)

    with fake_delve(with_create) as fake:
        c = _client(fake)
        s = _connected(c, "1.27.2")
        bps = [s.create_breakpoint(BreakpointSpec(function_name=f)) for f in ("a", "b")]
        assert [b.name for b in bps] == [f"{s.bp_prefix}1", f"{s.bp_prefix}2"]
        assert s.bp_prefix.startswith("dlvsnap") and all(s.owns(b) for b in bps)
        assert not s.owns(Breakpoint.from_json(left[3])) and not s.owns(None)
        assert isinstance(s.memory(0x10000, 8), DelveMem)  # --reader delve: no /proc probe
        s.close()
        assert fake.closed_by_client.wait(10)
    assert sorted(left) == [1, 3]
    assert "Detach" not in fake.methods() and "Command" not in fake.methods()


@pytest.mark.parametrize(("delve", "refused"), [("1.20.2", True), ("1.23.0", False)])
def test_a_4th_watchpoint_is_refused_where_delve_never_reports_its_traps(
    delve: str, refused: bool
) -> None:
    """Delve before 1.23 never reports a trap of x86's 4th debug register (DR3): with 3
    watchpoints set (the user's count too), dlvsnap does not ask for another, and the
    caller falls back to breakpoints; a newer Delve is asked."""
    set_ = [breakpoint_json(i, "mine" if i == 1 else f"w{i}", WatchType=2) for i in (1, 2, 3)]

    def answer(method: str, p: JSON) -> JSON:
        if method == "ListBreakpoints":
            return {"Breakpoints": [*set_, breakpoint_json(4, "a breakpoint")]}
        if method == "CreateWatchpoint":
            return {"Breakpoint": breakpoint_json(5, p["Expr"], WatchType=2)}
        assert method == "AmendBreakpoint"
        return {}

    with fake_delve(answer) as fake:
        c = _client(fake)
        s = _connected(c, f"Version: {delve}\nBuild: x")
        if refused:
            with pytest.raises(DlvsnapError, match=r"^3 watchpoints are set and Delve 1\.20\.2 "):
                s.create_watchpoint(0xC000010008, "uint8")
        else:
            assert s.create_watchpoint(0xC000010008, "uint8").name == f"{s.bp_prefix}1"
        c.conn.close()
    assert ("CreateWatchpoint" in fake.methods()) is not refused


def _connecting(multiclient: bool, running: bool) -> Any:
    def answer(method: str, p: JSON) -> JSON:
        return {
            "SetApiVersion": {},
            "GetVersion": {"DelveVersion": "Version: 1.27.2\nBuild: x", "APIVersion": 2},
            "IsMulticlient": {"IsMulticlient": multiclient},
            "State": {"State": stopped_state(running=running)},
        }[method]

    return answer


def test_connect_refuses_a_running_program_and_says_why() -> None:
    with fake_delve(_connecting(multiclient=True, running=True)) as fake:
        with pytest.raises(TargetError) as e:
            Session.connect(f"127.0.0.1:{fake.port}")
        assert fake.closed_by_client.wait(10)  # dlvsnap's connection is closed
    assert str(e.value).startswith(f"the program behind 127.0.0.1:{fake.port} is running: stop")
    assert fake.methods() == ["SetApiVersion", "GetVersion", "IsMulticlient", "State"]


def test_connect_to_a_program_that_has_exited_says_so() -> None:
    """Delve answers State for an exited program with an error: that is the answer."""

    def answer(method: str, p: JSON) -> JSON:
        if method == "State":
            raise Refuse("Process 4242 has exited with status 3")
        return dict(_connecting(multiclient=True, running=False)(method, p))

    with fake_delve(answer) as fake:
        with pytest.raises(ProgramExitedError) as e:
            Session.connect(f"127.0.0.1:{fake.port}")
        assert fake.closed_by_client.wait(10)
    assert str(e.value) == (
        f"the program behind 127.0.0.1:{fake.port} exited (status 3): nothing to watch or "
        "read; `restart` it in your client and stop it where you want"
    )
    assert (e.value.status, e.value.exit_code) == (3, ExitCode.TARGET)
    assert fake.methods() == ["SetApiVersion", "GetVersion", "IsMulticlient", "State"]


def test_connect_to_a_single_client_server_says_the_session_ended_with_it() -> None:
    """Without --accept-multiclient, Delve ends the session when dlvsnap's connection
    closes, however it closes: the error says so, with the same exit code."""
    with (
        fake_delve(_connecting(multiclient=False, running=True)) as fake,
        pytest.raises(DlvsnapError) as e,
    ):
        Session.connect(f"127.0.0.1:{fake.port}")
    assert str(e.value).endswith("(and the single-client Delve session ended with it)")
    assert e.value.exit_code == ExitCode.TARGET


def test_a_stop_lists_every_thread_at_a_breakpoint() -> None:
    """Simultaneous hits are all reported; threads are parsed only when asked for."""
    st = DebuggerState.from_json(
        {
            "Pid": 1,
            "Running": False,
            "currentGoroutine": {"id": 7},
            "Threads": [
                {"id": 1, "goroutineID": 7, "breakPoint": breakpoint_json(2, "dlvsnap1x1n1")},
                {"id": 2, "goroutineID": 0},
                {"id": 3, "goroutineID": 9, "breakPoint": breakpoint_json(2, "dlvsnap1x1n1")},
            ],
        }
    )
    hits = st.threads_at_breakpoints()
    assert [(t.id, t.goroutine_id) for t in hits] == [(1, 7), (3, 9)]
    assert st.current_goroutine_id == 7 and len(st.threads) == 3


def test_pipelined_calls_keep_their_order_and_a_window() -> None:
    """A census asks for every goroutine's frames, then the variables of the program's own
    frames, pipelined: answers come back to the right request, in order, however many
    (more than the window), and a refusal is the refused call's error."""
    from dlvsnap.delve.client import PIPELINE

    def answer(method: str, p: dict[str, Any]) -> dict[str, Any]:
        if method == "Stacktrace":
            fn = {"name": f"main.f{p['Id']}"}
            return {"Locations": [{"pc": p["Id"], "function": fn, "file": "m.go", "line": 1}]}
        scope = p["Scope"]
        assert p["Cfg"]["MaxStructFields"] == 0  # identities only
        v = {"name": f"{method}{scope['GoroutineID']}", "addr": scope["Frame"], "type": "int"}
        return {"Args": [v]} if method == "ListFunctionArgs" else {"Variables": [v, v]}

    with fake_delve(answer) as fake:
        c = _client(fake)
        ids = list(range(1, 3 * PIPELINE + 2))
        frames = c.stacktraces(ids, 10)
        assert [f[0].function for f in frames] == [f"main.f{i}" for i in ids]
        got = c.frame_vars([(g, 7) for g in ids])
        assert [[v.name for v in vs] for vs in got] == [
            [f"ListFunctionArgs{g}", f"ListLocalVars{g}", f"ListLocalVars{g}"] for g in ids
        ]
        assert all(v.addr == 7 for vs in got for v in vs)
        assert fake.methods().count("Stacktrace") == len(ids)
