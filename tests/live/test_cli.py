"""The command line under real conditions: Ctrl-C and SIGTERM while a package TARGET is
built, output into a pipe its reader has closed (`| head -1`), a goroutine that does not
exist, a bad address to the Python API."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlvsnap.errors import ExitCode
from tests.support import build_fixture, go_toolchain, run_dlvsnap

pytestmark = pytest.mark.live


def _proc_stat(pid: str) -> list[str] | None:
    """state, ppid, pgrp, session, ... of /proc/PID/stat (after the command's name)."""
    try:
        return (Path("/proc") / pid / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _in_session(sid: int) -> list[str]:
    """Every live (not zombie) process of session ``sid``, with its command line."""
    out = []
    for d in Path("/proc").iterdir():
        st = _proc_stat(d.name) if d.name.isdigit() else None
        if st and int(st[3]) == sid and st[0] != "Z":
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                cmd = "?"
            out.append(f"{d.name} {cmd}")
    return out


def _one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.startswith("dlvsnap: ")]
    assert len(lines) == 1, stderr
    return lines[0]


# ------------------------------------------------------------------ interrupting a build

BIG_PACKAGE = """package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
)

var m = map[int]int{1: 1}

func main() {
	_ = tls.Config{}
	_ = httptest.NewRecorder()
	b, _ := json.Marshal(m)
	fmt.Println(string(b), http.StatusOK)
	delete(m, 1)
}
"""


@pytest.mark.parametrize(
    "how", ["ctrl-c", "sigterm"], ids=["ctrl-c-to-the-group", "sigterm-to-dlvsnap"]
)
def test_interrupting_the_build_leaves_nothing_behind(tmp_path: Path, how: str) -> None:
    """A package TARGET built with a fresh GOCACHE (a build of many seconds), interrupted
    while the compiler runs: dlvsnap exits 130 with no go, compile or link process left and
    no work directory (go-build*) or temp folder of its own in $TMPDIR."""
    go = go_toolchain()
    pkg = tmp_path / "big"
    pkg.mkdir()
    (pkg / "go.mod").write_text("module big\n\ngo 1.21\n")
    (pkg / "main.go").write_text(BIG_PACKAGE)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {
        **os.environ,
        "TMPDIR": str(tmpdir),  # go's work directory and dlvsnap's build folder go here
        "GOCACHE": str(tmp_path / "gocache"),
        "PATH": f"{Path(go).parent}:{os.environ['PATH']}",
    }
    env.pop("GOTMPDIR", None)
    p = subprocess.Popen(
        [sys.executable, "-m", "dlvsnap", "watch", str(pkg), "--map", "m", "--go", go],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own session: the test sees everything it starts
    )
    try:
        deadline = time.monotonic() + 120
        while not any("/compile " in c for c in _in_session(p.pid)):
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < deadline, "go build never ran the compiler"
            time.sleep(0.05)
        time.sleep(1.0)  # several packages in the compiler, the work directory filled
        assert any(tmpdir.glob("**/go-build*")), list(tmpdir.rglob("*"))
        if how == "ctrl-c":
            os.killpg(p.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        else:
            os.kill(p.pid, signal.SIGTERM)  # what `kill PID` does: dlvsnap alone
        _, err = p.communicate(timeout=60)
        left = _in_session(p.pid)  # at once: dlvsnap waited for them
        files = sorted(str(x.relative_to(tmpdir)) for x in tmpdir.iterdir())
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode == ExitCode.INTERRUPTED, err
    assert _one_line_error(err) == "dlvsnap: interrupted"
    assert not left, f"left running after dlvsnap exited: {left}"
    assert not files, f"left in $TMPDIR: {files}"
    shutil.rmtree(tmp_path / "gocache", ignore_errors=True)  # read-only files: go's own cache


# ------------------------------------------------------------------ snap: where to evaluate


_dlvsnap = run_dlvsnap


def test_snap_in_a_goroutine_that_does_not_exist(dlv: str) -> None:
    """The user's mistake about the program, like a --map that names nothing: exit 3, one
    line that says so (it was exit 6 with Delve's "Stacktrace: unknown goroutine")."""
    prog = build_fixture("interactive")
    p = _dlvsnap(
        "snap", str(prog), "--at", "main.checkpoint", "--map", "main.Inventory",
        "--goroutine", "999999", "--dlv", dlv, "--", "5",
    )  # fmt: skip
    assert p.returncode == ExitCode.MAP, p.stderr
    line = _one_line_error(p.stderr)
    assert line == "dlvsnap: no goroutine 999999 in the program: --map cannot be evaluated there"


# ------------------------------------------------------------------ a reader that goes away


def _in_dir(path: Path) -> list[str]:
    """Processes whose command line names something under ``path``."""
    out = []
    for d in Path("/proc").iterdir():
        st = _proc_stat(d.name) if d.name.isdigit() else None
        if st is None or st[0] == "Z":
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in cmd:
            out.append(f"{d.name} {cmd}")
    return out


@pytest.mark.parametrize(
    ("args", "first_line"),
    [
        (("watch", "--json"), b'{"v":2,"event":"start","map":"m"'),
        (("watch",), b"watching m in deletes: "),
        (("snap", "--at", "main.del"), b""),
    ],
    ids=["watch-json", "watch-text", "snap"],
)
def test_a_reader_that_goes_away(
    dlv: str, tmp_path: Path, args: tuple[str, ...], first_line: bytes
) -> None:
    """`dlvsnap watch ... | head -1`: exit 0, nothing on stderr, the program and dlv gone
    (it was exit 1). snap's reader closes before anything is written (`| head -0`)."""
    prog = tmp_path / "deletes"  # a path of its own: what runs from it is this test's
    shutil.copy(build_fixture("deletes"), prog)
    cmd, *rest = args
    out = tmp_path / "out.txt"  # the program's output: stderr is dlvsnap's own
    argv = [sys.executable, "-m", "dlvsnap", cmd, str(prog), "--map", "m", "--dlv", dlv]
    argv += [*rest, "--target-output", str(out)]
    r, w = os.pipe()
    p = subprocess.Popen(
        argv,
        stdout=w,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(w)
    with os.fdopen(r, "rb") as reader:
        first = reader.readline() if first_line else b""
    try:
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert first.startswith(first_line), first
    assert (p.returncode, err) == (0, ""), err
    assert not _in_dir(tmp_path), "left running after dlvsnap exited"
