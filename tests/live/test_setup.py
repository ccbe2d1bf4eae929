"""`dlvsnap setup` for real: the command a refusal names installs (one `go install` of a
Delve, into a temporary cache) a Delve that watch then picks; a second run says it is
there; a go too old to build the Delve is one line; Ctrl-C leaves no process and no
half-installed Delve."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlvsnap.errors import ExitCode
from dlvsnap.toolchain import Variant, default_dlv
from tests.support import build_fixture, dlv_binary, go_for, go_toolchain, run_dlvsnap, run_watch

pytestmark = pytest.mark.live

GO_122 = Variant("1.22.10")  # in CI's matrix: Delve v1.25.2's sources are in the module cache


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp / "cache"), **extra}
    env.pop("DLVSNAP_DLV", None)
    return env


def test_the_command_a_refusal_names_installs_a_delve_that_watch_picks(tmp_path: Path) -> None:
    old = build_fixture("deletes", variant=GO_122)
    refused = run_watch(old, "m", "--dlv", dlv_binary(), tmp=tmp_path)
    assert refused.returncode == ExitCode.DELVE, refused.stderr
    m = re.search(r"`dlvsnap (setup [^`]*)`", refused.stderr)
    assert m is not None and m.group(1) == "setup --go 1.22", refused.stderr

    cache = tmp_path / "cache" / "dlvsnap"
    installed = cache / "dlv-v1.25.2" / "bin" / "dlv"
    setup = subprocess.run(
        [sys.executable, "-m", "dlvsnap", *m.group(1).split()],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=_env(tmp_path),
    )
    assert setup.returncode == 0, setup.stderr
    assert setup.stdout == f"Delve v1.25.2 (Go 1.22-1.25) installed: {installed}\n"
    assert setup.stderr.startswith("dlvsnap: building Delve v1.25.2 (Go 1.22-1.25) with go1.")
    assert sorted(p.name for p in cache.iterdir()) == ["dlv-v1.25.2"]  # no work folder left

    again = run_dlvsnap("setup", "--for", str(old), env=_env(tmp_path))
    assert (again.returncode, again.stderr) == (0, ""), again.stderr
    assert again.stdout == f"Delve v1.25.2 (Go 1.22-1.25) already installed: {installed}\n"

    # without --dlv, watch picks the Delve that setup installed, and the watch runs
    run = run_watch(old, "m", "-v", tmp=tmp_path, env=_env(tmp_path))
    assert run.returncode == 0, run.stderr
    assert f"with {installed}" in run.stderr
    assert len(run.ops) == 6


def test_setup_again_says_it_is_installed(dlv: str) -> None:
    """The pinned Delve, in the per-user cache (`make setup` installed it)."""
    r = run_dlvsnap("setup")
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    assert r.stdout == f"Delve v1.27.2 (Go 1.25-1.27) already installed: {default_dlv()}\n"
    assert default_dlv() == dlv


def test_a_go_too_old_to_build_the_pinned_delve(tmp_path: Path) -> None:
    go = go_for(GO_122)
    r = run_dlvsnap("setup", "--build-go", go, env=_env(tmp_path))
    assert r.returncode == ExitCode.DELVE, r.stderr
    assert r.stderr == (
        f"dlvsnap: {go} is go1.22.10: Delve v1.27.2 needs Go >= 1.25 to build (its go.mod); "
        "put a newer go on PATH or pass --build-go PATH\n"
    )
    assert r.stdout == ""


def _group(pgid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        try:
            st = (d / "stat").read_text().rsplit(")", 1)[1].split() if d.name.isdigit() else []
        except OSError:
            continue
        if st and int(st[2]) == pgid and st[0] != "Z":
            out.append(int(d.name))
    return out


def _go_child(pid: int) -> int | None:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def test_ctrl_c_during_setup_leaves_nothing_behind(tmp_path: Path) -> None:
    """With a fresh GOCACHE the build takes minutes: interrupted while the compiler runs,
    setup exits 130 with no process of go's group left and nothing in the cache."""
    go = go_toolchain()
    env = _env(tmp_path, GOCACHE=str(tmp_path / "gocache"))
    env["PATH"] = f"{Path(go).parent}:{env['PATH']}"
    p = subprocess.Popen(
        [sys.executable, "-m", "dlvsnap", "setup", "--go", "1.22"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while (gid := _go_child(p.pid)) is None or not any(
            b"/compile" in Path(f"/proc/{c}/cmdline").read_bytes()
            for c in _group(gid)
            if Path(f"/proc/{c}/cmdline").exists()
        ):
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < deadline, "go install never ran the compiler"
            time.sleep(0.05)
        os.killpg(p.pid, signal.SIGINT)  # a terminal's Ctrl-C: dlvsnap's session
        _, err = p.communicate(timeout=60)
        left = _group(gid)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode == ExitCode.INTERRUPTED, err
    assert err.splitlines()[-1] == "dlvsnap: interrupted"
    assert not left, f"left running after dlvsnap exited: {left}"
    assert list((tmp_path / "cache" / "dlvsnap").iterdir()) == []
    shutil.rmtree(tmp_path / "gocache", ignore_errors=True)  # read-only files: go's own cache
