"""Ctrl-C and SIGTERM during a watch leave nothing running: no dlv, no target."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlvsnap.errors import ExitCode
from tests.support import build_fixture

pytestmark = pytest.mark.live


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(d.name))
    return out


def _running(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_signal_during_watch_leaves_nothing_running(
    dlv: str, tmp_path: Path, sig: signal.Signals
) -> None:
    prog = build_fixture("slow")
    # A session of its own, and the signal to the whole group: what a terminal's Ctrl-C does.
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dlvsnap",
            "watch",
            str(prog),
            "--map",
            "m",
            "--json",
            "--target-output",
            str(tmp_path / "out.txt"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert p.stdout is not None
        seen = 0
        for line in p.stdout:
            if '"event":"delete"' in line:
                seen += 1
                if seen == 3:
                    break
        assert seen == 3, p.stderr.read() if p.stderr else ""
        dlvs = _children(p.pid)
        targets = [c for d in dlvs for c in _children(d)]
        assert dlvs and targets, (dlvs, targets)
        time.sleep(0.02)  # most likely while the target runs between two deletes
        os.killpg(p.pid, sig)
        rc = p.wait(timeout=30)
        err = p.stderr.read() if p.stderr else ""
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rc == ExitCode.INTERRUPTED, err
    assert "dlvsnap: interrupted" in err
    assert "Traceback" not in err
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_running(x) for x in dlvs + targets):
        time.sleep(0.1)
    assert not [x for x in dlvs + targets if _running(x)], "dlv or the target outlived dlvsnap"
