"""`dlvsnap setup` where no Go or Delve is needed: which Delve release it chooses for a Go
release, the hint a refusal carries, and its one-line errors (exit 2 for a bad command
line, 6 when Delve cannot be installed) before anything is built."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dlvsnap.errors import ExitCode
from dlvsnap.toolchain import DELVES, delve_for, pinned_delve, setup_hint


@pytest.mark.parametrize(
    ("go", "delve"),
    [
        ("1.27.3", "v1.27.2"),
        ("go1.26.8", "v1.27.2"),  # the pinned Delve first, where it accepts the release
        ("1.25", "v1.27.2"),
        ("go1.24.11 X:noswissmap", "v1.26.2"),
        ("1.23", "v1.25.2"),
        ("1.22.10", "v1.25.2"),
        ("1.21", "v1.25.0"),
        ("1.19", "1.20.2"),
    ],
)
def test_the_delve_for_a_go_release(go: str, delve: str) -> None:
    d = delve_for(go)
    assert d is not None and d.version == delve


def test_every_delve_says_which_go_builds_it() -> None:
    for d in DELVES:
        if d.source == "go-install":  # its go.mod's go line; older Delves build with older Go
            assert (1, 21) <= d.builds_with <= d.go_max, d
    assert pinned_delve().builds_with == (1, 25)


def test_the_hint_names_the_setup_command() -> None:
    assert setup_hint("go1.24.11").startswith("`dlvsnap setup --go 1.24` installs a Delve")
    assert delve_for("1.30") is None
    assert setup_hint("go1.30.1") == (
        "no Delve release dlvsnap knows accepts Go 1.30; pass --dlv PATH"
    )


def _setup(tmp_path: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "dlvsnap", "setup", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def _fake_go(tmp_path: Path, version: str) -> Path:
    """A `go` that says it is ``version`` and fails anything else."""
    go = tmp_path / "bin" / "go"
    go.parent.mkdir(exist_ok=True)
    go.write_text(f'#!/bin/sh\n[ "$*" = "env GOVERSION" ] && echo {version} && exit 0\nexit 3\n')
    go.chmod(0o755)
    return go


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--go", "1.30"), ExitCode.DELVE, "no Delve release dlvsnap knows accepts Go 1.30"),
        (("--go", "x1"), ExitCode.USAGE, "invalid value for --go: 'x1' is not a Go release"),
        (("--go", "1.22", "--for", "prog"), ExitCode.USAGE, "give --go VERSION or --for"),
        (("--for", "nowhere"), ExitCode.USAGE, "invalid value for --for: nowhere: no such file"),
        (("--build-go", "/no/such/go"), ExitCode.DELVE, "/no/such/go: no such go command"),
    ],
)
def test_errors_before_anything_is_built(
    tmp_path: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    p = _setup(tmp_path, *args)
    assert p.returncode == code, p.stderr
    (line,) = p.stderr.splitlines()
    assert line.startswith(f"dlvsnap: {message}"), line
    assert not (tmp_path / "cache" / "dlvsnap").exists()


def test_no_go_on_path(tmp_path: Path) -> None:
    p = _setup(tmp_path, path=str(tmp_path / "empty"))
    assert p.returncode == ExitCode.DELVE, p.stderr
    assert p.stderr == (
        "dlvsnap: go is not on PATH: Delve is built with go install (install Go, or "
        "--build-go PATH)\n"
    )


def test_a_go_too_old_to_build_the_delve(tmp_path: Path) -> None:
    go = _fake_go(tmp_path, "go1.24.11")
    p = _setup(tmp_path, "--build-go", str(go))  # the pinned Delve's go.mod says go 1.25.0
    assert p.returncode == ExitCode.DELVE, p.stderr
    assert p.stderr == (
        f"dlvsnap: {go} is go1.24.11: Delve v1.27.2 needs Go >= 1.25 to build (its go.mod); "
        "put a newer go on PATH or pass --build-go PATH\n"
    )
    # the same go builds the Delve for Go 1.22 targets (go 1.22.0 in its go.mod): it runs
    # (and this fake go fails the build, in one line)
    p = _setup(tmp_path, "--go", "1.22", "--build-go", str(go))
    assert p.returncode == ExitCode.DELVE, p.stderr
    assert p.stderr.splitlines()[-1] == (
        "dlvsnap: go install github.com/go-delve/delve/cmd/dlv@v1.25.2 failed: no output"
    )
    assert list((tmp_path / "cache" / "dlvsnap").iterdir()) == []  # nothing half-done
