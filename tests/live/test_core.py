"""Core files (issue 15): a core written by Delve at a live stop decodes, through
`dlvsnap snap --core`, to the state the live snapshot had, from the same bytes;
`dlvsnap dump` of a running program leaves it running and writes a core `snap --core`
reads; Ctrl-C cancels a dump and releases the program; a core cannot run (watch, --at,
breakpoints, continue: one line, exit 2); a file that is not a core of that binary is
one line, exit 5. Nothing is left running."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dlvsnap import snap as snapmod
from dlvsnap import snapfile
from dlvsnap.coremem import CoreMem
from dlvsnap.delve.client import BreakpointSpec, DelveClient
from dlvsnap.delve.rpc import JsonRpcConnection
from dlvsnap.dump import dump
from dlvsnap.errors import CoreCannotRunError, ExitCode
from dlvsnap.session import Session
from tests import readme
from tests.live.test_interactive import LISTEN_RE
from tests.support import (
    ROOT,
    Variant,
    build_fixture,
    dlv_for,
    run_dlvsnap,
    stop_users_server,
    variants,
)

pytestmark = pytest.mark.live


def _one_line_error(p: subprocess.CompletedProcess[str]) -> str:
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dlvsnap: "), p.stderr
    return lines[0].removeprefix("dlvsnap: ")


def _dlv_processes_of(*words: str) -> list[str]:
    """The command lines of running dlv processes that name all of ``words``."""
    out = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            args = cmdline.read_bytes().decode(errors="replace").split("\0")
            if args and Path(args[0]).name == "dlv" and all(w in args for w in words):
                out.append(" ".join(args))
    return out


@contextlib.contextmanager
def running(prog: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    """``prog`` running on its own (no debugger), its first line printed."""
    p = subprocess.Popen(
        [str(prog), *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert p.stdout is not None
        assert p.stdout.readline()
        yield p
    finally:
        p.kill()
        p.wait(timeout=30)


def _goes_on_running(p: subprocess.Popen[str], word: str) -> None:
    """Detached (no tracer), not stopped, and printing rounds."""
    status = Path(f"/proc/{p.pid}/status").read_text()
    assert re.search(r"^TracerPid:\s+0$", status, re.M), status
    assert re.search(r"^State:\s+[RSD]", status, re.M), status
    assert p.stdout is not None
    rounds = [p.stdout.readline() for _ in range(3)]
    assert all(r.startswith(f"{word}: round") for r in rounds), rounds
    assert p.poll() is None


def _snap_core(core: Path, prog: Path, v: Variant, *args: str) -> dict[str, object]:
    r = run_dlvsnap("snap", "--core", str(core), str(prog), "--dlv", dlv_for(v), *args, "--json")
    assert r.returncode == 0, r.stderr
    assert _dlv_processes_of(str(core)) == []  # dlv core is gone
    state: dict[str, object] = json.loads(r.stdout)
    return state


@pytest.mark.parametrize("v", variants(), ids=lambda v: v.id)
def test_a_core_written_at_a_stop_decodes_to_the_live_snapshot(tmp_path: Path, v: Variant) -> None:
    """At main.checkpoint: the package map main.Inventory, and main.main's local map (frame
    1 of the goroutine that stopped there, which a core does not keep as its current one),
    snapshotted live, then from a core Delve wrote at that stop: the same decoded state, and
    the core holds the very bytes the live snapshot was decoded from. Delve's reading of
    the core (--reader delve) agrees."""
    prog = build_fixture("interactive", variant=v)
    core = tmp_path / "interactive.core"
    maps = [("main.Inventory", 0), ("local", 1)]
    live: dict[str, dict[str, object]] = {}
    held: dict[str, dict[int, bytes]] = {}
    with Session.launch(dlv_for(v), prog, ["5"], sink=None) as s:
        snapmod.run_to(s, "main.checkpoint")
        g = s.client.state().current_goroutine_id
        for expr, frame in maps:
            ref = snapmod.resolve(s, expr, g, frame)
            taken, mem, _ = snapmod.snapshot(s, ref)
            live[expr] = snapfile.state_of(taken)
            held[expr] = dict(mem.regions)
        done = dump(s, str(core))
        assert done.state.all_done and not done.state.err and core.stat().st_size > 0
    assert live["main.Inventory"]["count"] == 40 and live["local"]["count"] == 20

    with CoreMem(core, prog) as cm:
        for expr, regions in held.items():
            assert regions, expr
            for addr, data in regions.items():
                assert cm.read(addr, len(data)) == data, (expr, hex(addr))

    assert _snap_core(core, prog, v, "--map", "main.Inventory") == live["main.Inventory"]
    got = _snap_core(core, prog, v, "--map", "local", "--goroutine", str(g), "--frame", "1")
    assert got == live["local"]

    with Session.core(dlv_for(v), core, prog, reader="delve") as c:
        ref = snapmod.resolve(c, "main.Inventory")
        taken, mem, _ = snapmod.snapshot(c, ref)
        assert mem.name == "delve"
        assert snapfile.state_of(taken) == live["main.Inventory"]
        dlv = c.dlv
    assert dlv is not None and dlv.proc.poll() is not None


@pytest.mark.parametrize("v", variants(), ids=lambda v: v.id)
def test_dump_of_a_running_program_leaves_it_running(tmp_path: Path, v: Variant) -> None:
    prog = build_fixture("interactive", variant=v)
    core = tmp_path / "running.core"
    with running(prog, "100000", "20") as p:
        r = run_dlvsnap("dump", str(p.pid), "-o", str(core), "--dlv", dlv_for(v))
        assert r.returncode == 0, r.stderr
        assert re.fullmatch(
            rf"wrote {re.escape(str(core))}: [\d,]+ bytes of memory, \d+ threads, in [\d.]+ s; "
            rf"pid {p.pid} released, running\n",
            r.stdout,
        ), r.stdout
        _goes_on_running(p, "interactive")
        assert _dlv_processes_of("attach", str(p.pid)) == []
    state = _snap_core(core, prog, v, "--map", "main.Inventory")
    assert state["count"] in (39, 40)  # dumped between a delete and its insert, or not
    with Session.core(dlv_for(v), core, prog) as s:  # where main.main is on goroutine 1
        frames = [f.function for f in s.client.stacktrace(1, depth=50)]
    frame = frames.index("main.main")
    local = _snap_core(core, prog, v, "--map", "local", "--goroutine", "1", "--frame", str(frame))
    assert local["count"] in (19, 20)


def test_readme_core_examples(tmp_path: Path) -> None:
    """The README's "Core files" block: `12345` is the pid of `./prog` running (as for the
    snap block), the core written in the directory the commands run in."""
    shutil.copy(build_fixture(readme.README_PROG), tmp_path / "prog")
    commands = readme.block("core").commands
    assert commands
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with running(tmp_path / "prog", "100000", "20") as p:
        outputs = []
        for cmd in commands:
            line = re.sub(r"^dlvsnap ", f"{shlex.quote(sys.executable)} -m dlvsnap ", cmd)
            r = subprocess.run(
                ["bash", "-c", line.replace("12345", str(p.pid))],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert r.returncode == 0, (cmd, r.stderr)
            outputs.append(r.stdout)
        _goes_on_running(p, "interactive")
    assert outputs[0].startswith("wrote prog.core: ")
    assert outputs[1].startswith("main.Inventory (map[string]int) at 0x")
    assert re.search(r"\b(39|40) full\b", outputs[1]), outputs[1]


def test_ctrl_c_cancels_a_dump_and_releases_the_program(tmp_path: Path) -> None:
    """A core of 1 GiB (an untouched ballast) takes seconds to write: Ctrl-C once Delve
    writes it cancels the dump, removes the partial file and releases the program."""
    prog = build_fixture("ballast")
    core = tmp_path / "ballast.core"
    with running(prog, "1024", "20") as p:
        d = subprocess.Popen(
            [sys.executable, "-m", "dlvsnap", "dump", str(p.pid), "-o", str(core), "-v"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            assert d.stderr is not None
            seen = []
            while not any("is writing the core" in ln for ln in seen):
                line = d.stderr.readline()
                assert line, seen
                seen.append(line)
            t = time.monotonic()
            d.send_signal(signal.SIGINT)
            out, err = d.communicate(timeout=120)
        finally:
            if d.poll() is None:
                d.kill()
                d.wait()
        assert d.returncode == ExitCode.INTERRUPTED, err
        assert err.splitlines()[-1] == "dlvsnap: interrupted" and out == ""
        assert time.monotonic() - t < 30
        assert not core.exists()
        _goes_on_running(p, "ballast")
        assert _dlv_processes_of("attach", str(p.pid)) == []


@contextlib.contextmanager
def users_server(prog: Path, v: Variant) -> Iterator[tuple[str, DelveClient]]:
    """A user's `dlv exec --headless --accept-multiclient`, stopped by the user's client at
    main.checkpoint."""
    cmd = [dlv_for(v), "exec", str(prog), "--headless", "--accept-multiclient"]
    cmd += ["--api-version=2", "--listen=127.0.0.1:0", "--", "1000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    user: DelveClient | None = None
    try:
        assert proc.stdout is not None
        seen = b""
        while not (m := LISTEN_RE.search(seen)):
            line = proc.stdout.readline()
            assert line, seen.decode(errors="replace")
            seen += line
        user = DelveClient(JsonRpcConnection("127.0.0.1", int(m.group(1))))
        user.set_api_version(2)
        user.create_breakpoint(BreakpointSpec(function_name="main.checkpoint"))
        user.command("continue")
        yield f"127.0.0.1:{int(m.group(1))}", user
    finally:
        if user is not None:
            user.conn.close()
        stop_users_server(proc, prog)


def test_dump_connect_writes_on_the_server_and_leaves_the_program_stopped(
    tmp_path: Path,
) -> None:
    v = variants()[-1]
    prog = build_fixture("interactive", variant=v)
    core = tmp_path / "server.core"
    with users_server(prog, v) as (address, user):
        before = user.state()
        r = run_dlvsnap("dump", "--connect", address, "-o", str(core))
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith(f"wrote {core} on the server's machine: ")
        assert r.stdout.endswith("left stopped\n")
        after = user.state()
        assert not after.running and after.current_thread is not None
        assert before.current_thread is not None
        assert after.current_thread.pc == before.current_thread.pc
        assert [b.function_name for b in user.list_breakpoints() if b.id > 0] == ["main.checkpoint"]
    assert _snap_core(core, prog, v, "--map", "main.Inventory")["count"] == 40


@pytest.fixture(scope="module")
def a_core(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Variant]:
    """A core of fixtures/interactive at main.checkpoint, and its binary."""
    v = variants()[0]
    prog = build_fixture("interactive", variant=v)
    core = tmp_path_factory.mktemp("core") / "interactive.core"
    with Session.launch(dlv_for(v), prog, ["5"], sink=None) as s:
        snapmod.run_to(s, "main.checkpoint")
        dump(s, str(core))
    return core, prog, v


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ("watch", "--core", "{core}", "{prog}", "--map", "main.Inventory"),
            ExitCode.USAGE,
            "--core: a core file cannot run, and watch runs the program (snap --core reads a "
            "map in it) (dlvsnap watch --help)",
        ),
        (
            ("snap", "--core", "{core}", "{prog}", "--map", "main.Inventory", "--at", "main.main"),
            ExitCode.USAGE,
            "--core: a core file cannot run, and --at runs the program (--core reads it where "
            "it stopped) (dlvsnap snap --help)",
        ),
        (
            ("snap", "--core", "{core}", "{prog}", "--map", "m", "--reader", "proc"),
            ExitCode.USAGE,
            "--reader proc reads a running program's /proc/PID/mem: a core is read from its "
            "file (auto) or through Delve (delve)",
        ),
        (
            ("snap", "--core", "{tmp}/missing.core", "{prog}", "--map", "main.Inventory"),
            ExitCode.USAGE,
            "invalid value for '--core': File '{tmp}/missing.core' does not exist",
        ),
        (
            ("snap", "--core", "{tmp}/garbage.core", "{prog}", "--map", "main.Inventory"),
            ExitCode.TARGET,
            "core file {tmp}/garbage.core: not an ELF file",
        ),
        (
            ("snap", "--core", "{prog}", "{prog}", "--map", "main.Inventory"),
            ExitCode.TARGET,
            "{prog}: an ELF file, not a core file (type 2)",
        ),
        (
            ("snap", "--core", "{core}", "{ballast}", "--map", "main.Inventory"),
            ExitCode.TARGET,
            "{core} was not dumped from {ballast}: the core's entry point is 0x",
        ),
        (
            ("snap", "--core", "{core}", "{prog}", "--map", "main.Nothing"),
            ExitCode.MAP,
            "cannot evaluate main.Nothing here",
        ),
        (
            ("dump", "--connect", "127.0.0.1:1", "1", "-o", "x"),
            ExitCode.USAGE,
            "give exactly one of PID, --connect HOST:PORT (dlvsnap dump --help)",
        ),
    ],
    ids=[
        "watch",
        "snap-at",
        "reader-proc",
        "missing",
        "garbage",
        "not-a-core",
        "another-binary",
        "no-variable",
        "dump-both",
    ],
)
def test_what_a_core_cannot_do_is_one_line(
    tmp_path: Path,
    a_core: tuple[Path, Path, Variant],
    args: tuple[str, ...],
    code: int,
    message: str,
) -> None:
    core, prog, v = a_core
    (tmp_path / "garbage.core").write_bytes(b"\x00garbage " * 100)
    where = {"core": str(core), "prog": str(prog), "tmp": str(tmp_path)}
    if "{ballast}" in " ".join(args):
        where["ballast"] = str(build_fixture("ballast", variant=v))
    r = run_dlvsnap(*(a.format(**where) for a in args), "--dlv", dlv_for(v))
    assert r.returncode == code, r.stderr
    assert _one_line_error(r).startswith(message.format(**where))
    assert _dlv_processes_of(str(core)) == []


def test_what_would_run_a_core_is_refused_in_the_api(a_core: tuple[Path, Path, Variant]) -> None:
    core, prog, v = a_core
    with Session.core(dlv_for(v), core, prog) as s:
        assert s.mode == "core" and s.pid > 0
        with pytest.raises(CoreCannotRunError, match="cannot set a breakpoint: the program is"):
            snapmod.run_to(s, "main.checkpoint")
        with pytest.raises(CoreCannotRunError, match="can not continue execution of core"):
            s.client.command("continue")
        with pytest.raises(CoreCannotRunError, match="cannot write a breakpoint to a core"):
            s.client.create_breakpoint(BreakpointSpec(function_name="main.checkpoint"))
        with pytest.raises(CoreCannotRunError, match="cannot dump a core"):
            dump(s, str(core) + ".again")
        ref = snapmod.resolve(s, "main.Inventory")
        assert s.memory(ref.addr, 8).name == "core"  # it agreed with Delve on the header
        dlv = s.dlv
    assert dlv is not None and dlv.proc.poll() is not None
    assert _dlv_processes_of(str(core)) == []
