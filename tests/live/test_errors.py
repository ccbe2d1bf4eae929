"""Bad input and failing tools: one clear line on stderr, a documented exit code, nothing left
running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dlvsnap.errors import ExitCode
from tests.support import build_fixture, go_toolchain, run_watch

pytestmark = pytest.mark.live


def _one_line_error(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("dlvsnap: ")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize(
    ("expr", "code", "words"),
    [
        ("main.nosuch", ExitCode.MAP, "unknown variable: main.nosuch"),
        ("nosuch", ExitCode.MAP, "unknown variable: nosuch"),
        ("main.NotAMap", ExitCode.MAP, "not a map: main.NotAMap is []int"),
        ("nilMap", ExitCode.MAP, "nil map: nilMap"),
        ("main.Never", ExitCode.NO_DELETES, "exited (status 0) before any delete"),
        # a package variable's field that does not exist: Delve's reason, before the run
        ("main.Never.items", ExitCode.MAP, "cannot evaluate main.Never.items: main.Never"),
        ("used[", ExitCode.USAGE, "--map used[ is not an expression: 1:6: expected operand"),
    ],
)
def test_bad_map(dlv: str, tmp_path: Path, expr: str, code: int, words: str) -> None:
    run = run_watch(build_fixture("errcases"), expr, tmp=tmp_path)
    assert run.returncode == code, run.stderr
    assert words in _one_line_error(run.stderr)


def test_in_a_function_the_binary_does_not_have(dlv: str, tmp_path: Path) -> None:
    run = run_watch(build_fixture("errcases"), "used", "--in", "main.nosuch", tmp=tmp_path)
    assert run.returncode == ExitCode.USAGE, run.stderr
    line = _one_line_error(run.stderr)
    assert "--in main.nosuch: the binary has no function of that name" in line
    assert run.target_output == ""  # refused before the program ran (it prints at its end)


def _children(pid: int, comm: str | None = None) -> list[int]:
    """A process's children (of every thread: a child belongs to the thread that started
    it), only those named ``comm`` if given."""
    kids = [
        int(x)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for x in (task / "children").read_text().split()
    ]
    return [k for k in kids if comm is None or Path(f"/proc/{k}/comm").read_text().strip() == comm]


def test_a_program_killed_during_the_watch(dlv: str, tmp_path: Path) -> None:
    """The events seen are reported, then a note and an error line say how it ended."""
    prog, out_file = build_fixture("slow"), tmp_path / "out.txt"
    cmd = [sys.executable, "-m", "dlvsnap", "watch", str(prog), "--map", "m", "--json"]
    p = subprocess.Popen(
        [*cmd, "--target-output", str(out_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert p.stdout is not None
    while '"event":"delete"' not in p.stdout.readline():
        assert p.poll() is None
    (dlv_pid,) = _children(p.pid, "dlv")
    (target,) = _children(dlv_pid)
    os.kill(target, signal.SIGKILL)
    out, err = p.communicate(timeout=60)
    assert p.returncode == ExitCode.TARGET, err
    assert "killed by SIGKILL (signal 9) during the watch" in _one_line_error(err)
    records = [json.loads(ln) for ln in out.splitlines()]
    notes = [r for r in records if r["event"] == "note" and r["kind"] == "exited"]
    assert len(notes) == 1 and "killed by SIGKILL" in notes[0]["message"]
    assert records[-1]["event"] == "summary" and records[-1]["exit_status"] == -9


def test_binary_without_debug_info(dlv: str, tmp_path: Path) -> None:
    run = run_watch(build_fixture("deletes", ldflags="-w"), "m", tmp=tmp_path)
    assert run.returncode == ExitCode.TARGET
    assert "no DWARF debug info" in _one_line_error(run.stderr)


def test_dlv_not_installed(tmp_path: Path) -> None:
    run = run_watch(build_fixture("deletes"), "m", "--dlv", str(tmp_path / "no-dlv"), tmp=tmp_path)
    assert run.returncode == ExitCode.DELVE
    assert "dlv not found" in _one_line_error(run.stderr)


def test_delve_refusing_the_go_version(dlv: str, tmp_path: Path) -> None:
    """Delve v1.27 accepts Go 1.25-1.27: a Go 1.24 binary is refused, in Delve's words.
    (Without --dlv, dlvsnap would pick an installed Delve that accepts Go 1.24, if any.)"""
    old = build_fixture("deletes", go=go_toolchain("1.24.11"))
    run = run_watch(old, "m", "--dlv", dlv, tmp=tmp_path)
    assert run.returncode == ExitCode.DELVE, run.stderr
    line = _one_line_error(run.stderr)
    assert "too old for this version of Delve" in line, line
    # and the command that installs a Delve that accepts it (tests/live/test_setup.py runs it)
    assert "(`dlvsnap setup --go 1.24` installs a Delve that accepts it, " in line, line


def test_build_failure_of_a_package(tmp_path: Path) -> None:
    go_toolchain()
    pkg = tmp_path / "broken"
    pkg.mkdir()
    (pkg / "go.mod").write_text("module broken\n\ngo 1.21\n")
    (pkg / "main.go").write_text("package main\n\nfunc main() { undefined() }\n")
    run = run_watch(pkg, "m", tmp=tmp_path)
    assert run.returncode == ExitCode.TARGET
    assert "go build" in _one_line_error(run.stderr)


def test_missing_target_is_a_usage_error(tmp_path: Path) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "dlvsnap", "watch", str(tmp_path / "nope"), "--map", "m"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert p.returncode == ExitCode.USAGE
    assert "no such file or directory" in p.stderr
