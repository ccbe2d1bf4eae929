"""`dlvsnap setup`: build a Delve release with ``go install`` into the per-user cache
(``${XDG_CACHE_HOME:-~/.cache}/dlvsnap/dlv-<version>/bin/dlv``), where dlvsnap looks for
it (toolchain.pick_dlv). Which release accepts which Go is toolchain.DELVES.

``go install`` runs through build.run_go: a process group of its own, interrupted and
waited for on Ctrl-C or SIGTERM. It installs into a private folder next to the final one;
the binary is moved into place only once it is built and answers ``dlv version``, so an
interrupted or failed install leaves nothing half-done.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dlvsnap.build import run_go
from dlvsnap.errors import DelveError
from dlvsnap.goversion import release_of, release_text
from dlvsnap.toolchain import DELVES, DelveRelease, delve_for, pinned_delve

DLV_PACKAGE = "github.com/go-delve/delve/cmd/dlv"


class SetupError(DelveError):
    """Delve could not be installed: no go, a go too old to build it, go install failing."""


@dataclass(frozen=True)
class Installed:
    delve: DelveRelease
    path: Path
    built: bool  # False: it was installed already


def choose(go_version: str | None) -> DelveRelease:
    """The Delve release for targets built with ``go_version`` (None: the pinned one)."""
    if go_version is None:
        return pinned_delve()
    d = delve_for(go_version)
    if d is None:
        rel = release_text(release_of(go_version))
        raise SetupError(f"no Delve release dlvsnap knows accepts Go {rel} (it knows {_known()})")
    return d


def _known() -> str:
    lo = min(d.go_min for d in DELVES)
    hi = max(d.go_max for d in DELVES)
    return f"Go {release_text(lo)}-{release_text(hi)}"


def install(
    d: DelveRelease, go: str | None = None, say: Callable[[str], None] = lambda s: None
) -> Installed:
    """Install ``d`` unless it is there already. ``go``: the go command that builds it
    (default: go on PATH). A SetupError (exit 6) names what is missing."""
    path = d.path()
    if os.access(path, os.X_OK):
        return Installed(d, path, built=False)
    if d.source == "debian":
        raise SetupError(
            f"Delve {d.version} ({d.window}) is Debian's package: apt-get install delve "
            f"(as root) puts it at {path}"
        )
    go_cmd = go_command(go)
    have = version_of(go_cmd)
    if release_of(have) < d.builds_with:
        raise SetupError(
            f"{go_cmd} is {have}: Delve {d.version} needs Go >= {release_text(d.builds_with)} "
            "to build (its go.mod); put a newer go on PATH or pass --build-go PATH"
        )
    dest = path.parent.parent  # .../dlv-<version>
    dest.parent.mkdir(parents=True, exist_ok=True)
    say(f"building Delve {d.version} ({d.window}) with {have}: go install into {dest} …")
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}-", dir=dest.parent) as tmp:
        env = {
            **os.environ,
            "GOTOOLCHAIN": "local",  # this go, not one go.mod's line would download
            "GOFLAGS": "-mod=mod",
            "GOEXPERIMENT": "",
            "GOBIN": tmp,
        }
        proc = run_go([go_cmd, "install", f"{DLV_PACKAGE}@{d.version}"], Path(tmp), env)
        if proc.returncode != 0:
            raise SetupError(f"go install {DLV_PACKAGE}@{d.version} failed: {_first_error(proc)}")
        built = Path(tmp) / "dlv"
        check = subprocess.run(
            [str(built), "version"], capture_output=True, text=True, check=False, timeout=60
        )
        if check.returncode != 0 or d.version.lstrip("v") not in check.stdout:
            raise SetupError(f"the dlv go install built does not say it is {d.version}")
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(built, path)  # atomic: another setup may have put one there meanwhile
    return Installed(d, path, built=True)


def go_command(go: str | None) -> str:
    found = shutil.which(go) if go else shutil.which("go")
    if not found:
        what = f"{go}: no such go command" if go else "go is not on PATH"
        raise SetupError(f"{what}: Delve is built with go install (install Go, or --build-go PATH)")
    return found


def version_of(go: str) -> str:
    """``go1.26.8``: the release of the go command (``go env GOVERSION``)."""
    try:
        p = subprocess.run(
            [go, "env", "GOVERSION"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env={**os.environ, "GOTOOLCHAIN": "local"},
        )
    except OSError as e:
        raise SetupError(f"cannot run {go}: {e.strerror}") from None
    version = p.stdout.strip()
    try:
        release_of(version, require_go=True)
    except ValueError:
        raise SetupError(f"{go} does not say which Go it is (go env GOVERSION)") from None
    return version


def _first_error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("#")]
    return lines[0] if lines else "no output"
