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
from tests.support import go_toolchain

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
