"""Build a Go package for debugging: ``go build -gcflags=all=-N -l`` into a private folder."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from dlvsnap.errors import TargetError
from dlvsnap.toolchain import cache_dir

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


def build_cached(
    module_dir: Path,
    package: str,
    go: str,
    env: dict[str, str] | None = None,
    ldflags: str = "",
    *,
    gcflags: str = DEBUG_GCFLAGS,
) -> Path:
    """Build ``./package`` of the Go module in ``module_dir`` with -gcflags=all=-N -l (or
    ``gcflags``; "" for an optimised build), cached in the per-user cache by the module's
    sources, the toolchain, GOEXPERIMENT, GOARCH and flags (as Delve's own test fixtures
    are)."""
    env = {"GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod", "GOEXPERIMENT": "", **(env or {})}
    h = hashlib.sha256()
    for p in sorted(module_dir.rglob("*")):
        if p.is_file() and p.suffix in (".go", ".mod"):
            h.update(str(p.relative_to(module_dir)).encode() + b"\0" + p.read_bytes())
    version = subprocess.run([go, "version"], capture_output=True, text=True, check=False)
    h.update(version.stdout.encode())
    for k in ("GOEXPERIMENT", "GOARCH"):
        h.update(f"{k}={env.get(k, '')}".encode())
    h.update(ldflags.encode())
    if gcflags != DEBUG_GCFLAGS:
        h.update(f"gcflags={gcflags}".encode())
    out_dir = cache_dir() / "fixtures" / h.hexdigest()[:16]
    out = out_dir / package
    if out.exists():
        return out
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{package}.{os.getpid()}"
    cmd = [go, "build", *([f"-gcflags={gcflags}"] if gcflags else []), "-o", str(tmp)]
    if ldflags:
        cmd.append(f"-ldflags={ldflags}")
    proc = subprocess.run(
        [*cmd, f"./{package}"],
        cwd=module_dir,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("#")]
        raise TargetError(f"go build ./{package} failed: {lines[0] if lines else 'no output'}")
    tmp.rename(out)
    return out
