"""Build a Go package for debugging: ``go build -gcflags=all=-N -l`` into a private folder.

``go build`` runs as a process group of its own (compile, link and asm are its children),
with its work directory in a temporary folder of dlvsnap's. On Ctrl-C, SIGTERM or any
other exception while it runs, the group gets SIGINT (go then stops its children and
removes its work directory), then SIGKILL if it lingers, and dlvsnap waits until no
process of the group is left: nothing outlives the interrupted build.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from dlvsnap.errors import TargetError
from dlvsnap.toolchain import cache_dir

DEBUG_GCFLAGS = "all=-N -l"
STOP_GRACE = 10.0  # seconds go has to stop its children and remove its work directory


def _group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group ``pgid``."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            st = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(st[2]) == pgid and st[0] != "Z":
            out.append(int(d.name))
    return out


def _stop_group(proc: subprocess.Popen[str]) -> None:
    """SIGINT to the build's process group, SIGKILL after STOP_GRACE, then wait until the
    group is empty. Ctrl-C and SIGTERM are held meanwhile (delivered afterwards)."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        pgid = proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=STOP_GRACE)
        deadline = time.monotonic() + STOP_GRACE
        while _group_members(pgid) and time.monotonic() < deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            time.sleep(0.02)
        proc.communicate()  # reaps go; its pipes are closed once the group is gone
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def run_go(cmd: Sequence[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a go command (output captured) in a process group of its own, its work
    directory (GOTMPDIR) in a temporary folder that is removed whatever happens; stopped
    and waited for on any exception, Ctrl-C and SIGTERM included."""
    with tempfile.TemporaryDirectory(prefix="dlvsnap-go-", dir=env.get("GOTMPDIR") or None) as tmp:
        proc = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env={**env, "GOTMPDIR": tmp},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            process_group=0,  # Ctrl-C at a terminal reaches dlvsnap, which stops the build
        )
        try:
            out, err = proc.communicate()
        except BaseException:
            _stop_group(proc)
            raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


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
    proc = run_go(cmd, pkg_dir, env)
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
    place and sources, the toolchain, GOEXPERIMENT, GOARCH and flags (as Delve's own test
    fixtures are)."""
    env = {"GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod", "GOEXPERIMENT": "", **(env or {})}
    h = hashlib.sha256()
    # the binary's DWARF names its sources by absolute path: another checkout, another build
    h.update(str(module_dir.resolve()).encode() + b"\0")
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
    proc = run_go([*cmd, f"./{package}"], module_dir, {**os.environ, **env})
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("#")]
        raise TargetError(f"go build ./{package} failed: {lines[0] if lines else 'no output'}")
    tmp.rename(out)
    return out
