"""Progress on stderr: a status line while building and watching when stderr is a
terminal (a real pty here), nothing of it with --json or when stderr is not a terminal."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import FIXTURES, go_toolchain

pytestmark = pytest.mark.live


def _run_with_tty_stderr(*args: str) -> tuple[int, str, bytes]:
    master, slave = pty.openpty()
    env = {**os.environ, "PATH": f"{Path(go_toolchain()).parent}:{os.environ['PATH']}"}
    p = subprocess.Popen(
        [sys.executable, "-m", "dlvsnap", *args],
        stdout=subprocess.PIPE,
        stderr=slave,
        text=True,
        env=env,
    )
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    out, _ = p.communicate(timeout=300)
    os.close(master)
    return p.returncode, out, seen


def test_status_line_on_a_terminal(tmp_path: Path) -> None:
    rc, out, err = _run_with_tty_stderr(
        "watch",
        str(FIXTURES / "deletes"),
        "--map",
        "m",
        "--no-color",
        "--target-output",
        str(tmp_path / "prog.txt"),
    )
    assert rc == 0, err
    assert b"building deletes" in err and b"starting Delve" in err
    assert b"watching m: running to the first delete or clear" in err
    assert b"\r\x1b[K" in err  # rewritten in place, and cleared
    assert "#1 delete key=17" in out and "\x1b[K" not in out


def test_quiet_with_json(tmp_path: Path) -> None:
    rc, out, err = _run_with_tty_stderr(
        "watch",
        str(FIXTURES / "deletes"),
        "--map",
        "m",
        "--json",
        "--target-output",
        str(tmp_path / "prog.txt"),
    )
    assert rc == 0, err
    assert err == b"" and out.count('"event":"delete"') == 6
