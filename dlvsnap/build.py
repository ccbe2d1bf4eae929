"""Build a Go package for debugging: ``go build -gcflags=all=-N -l`` into a private folder."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from dlvsnap.errors import TargetError

DEBUG_GCFLAGS = "all=-N -l"


def find_go(go: str | None = None) -> str:
    path = go or shutil.which("go")
    if not path or not os.access(path, os.X_OK):
        raise TargetError(
            "go not found on PATH: needed to build a package (or pass a built binary)"
        )
    return path


def build_package(
    pkg_dir: Path, out: Path, go: str | None = None, extra_env: dict[str, str] | None = None
) -> Path:
    """Build the Go package in ``pkg_dir`` to ``out``; a failed build is a TargetError."""
    env = {**os.environ, "GOTOOLCHAIN": "local", **(extra_env or {})}
    cmd = [find_go(go), "build", f"-gcflags={DEBUG_GCFLAGS}", "-o", str(out), "."]
    proc = subprocess.run(cmd, cwd=pkg_dir, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("#")]
        raise TargetError(f"go build {pkg_dir} failed: {lines[0] if lines else 'no output'}")
    return out
