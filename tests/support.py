"""Test support: the live-test gate, fixture builds cached per toolchain, and running the CLI.

Live tests are gated by DLVSNAP_LIVE (as drgn's tests are):
  unset  run when dlv and go are there, skip (saying how to force them) when not;
  1      missing dlv or go is a failure;
  0      skip.
CI=true counts as DLVSNAP_LIVE=1: in CI a missing dlv or Go toolchain fails, never skips.

A test that needs dlv or a Go toolchain is marked ``live``, one that needs chromium
``chromium``: `make check` runs the rest. The helpers here that find dlv, Go or chromium
fail a test that lacks its marker, so that none slips into the fast tier.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dlvsnap.build import DEBUG_GCFLAGS, build_cached
from dlvsnap.toolchain import Variant, cache_dir, default_dlv, matrix, pick_dlv

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


def live_mode() -> str:
    if os.environ.get("CI") == "true" or os.environ.get("DLVSNAP_LIVE") == "1":
        return "require"
    if os.environ.get("DLVSNAP_LIVE") == "0":
        return "skip"
    return "auto"


def missing(what: str) -> None:
    mode = live_mode()
    if mode == "require":
        pytest.fail(f"{what} (CI=true or DLVSNAP_LIVE=1: live tests must run; run `make setup`)")
    pytest.skip(f"{what}; set DLVSNAP_LIVE=1 to make this a failure")


# The markers of the test running now (tests/conftest.py sets them); None outside a test.
current_markers: frozenset[str] | None = None


def require_live(marker: str = "live") -> None:
    """Before looking for dlv or Go (``live``) or chromium (``chromium``): the test must
    carry that marker (else it would run in `make check`, which has none of them)."""
    if current_markers is not None and marker not in current_markers:
        pytest.fail(
            f"this test needs {'chromium' if marker == 'chromium' else 'dlv or Go'}: mark it "
            f"@pytest.mark.{marker} (unmarked tests run in `make check`, without them)"
        )
    if live_mode() == "skip":
        pytest.skip("DLVSNAP_LIVE=0")


def variants() -> list[Variant]:
    """CI's matrix (dlvsnap.toolchain.CI_GOS), or every release with DLVSNAP_MATRIX=full."""
    return matrix(full=os.environ.get("DLVSNAP_MATRIX") == "full")


def go_for(v: Variant) -> str:
    require_live()
    path = v.go_path()
    if path is None or not path.exists():
        missing(f"Go {v.go} is not installed ({path}); run scripts/toolchains")
    return str(path)


def dlv_for(v: Variant) -> str:
    require_live()
    dlv = pick_dlv(v.go)
    if dlv is None:
        missing(f"no installed Delve accepts Go {v.go}; run scripts/toolchains")
    assert dlv
    return dlv


def go_toolchain(version: str | None = None) -> str:
    """The `go` command: the machine's own, or a release from the per-user cache."""
    require_live()
    if version is None:
        go = shutil.which("go")
        if not go:
            missing("go is not on PATH")
        assert go
        return go
    go = cache_dir() / "go" / f"go{version}" / "go" / "bin" / "go"
    if not go.exists():
        missing(f"Go {version} is not installed in {go.parent.parent.parent} (scripts/setup --dev)")
    return str(go)


def dlv_binary() -> str:
    require_live()
    dlv = default_dlv()
    if not os.access(dlv, os.X_OK):
        missing(f"dlv is not installed at {dlv}")
    return dlv


def _go_version(go: str) -> str:
    return subprocess.run(
        [go, "version"], capture_output=True, text=True, check=True
    ).stdout.strip()


def build_fixture(
    name: str,
    go: str | None = None,
    env: dict[str, str] | None = None,
    ldflags: str = "",
    variant: Variant | None = None,
    *,
    optimized: bool = False,
) -> Path:
    """Build fixtures/<name> with -gcflags=all=-N -l (``optimized``: with the compiler's
    defaults, inlining included), cached by sources, toolchain and flags."""
    if variant is not None:
        go, env = go_for(variant), {**variant.env(), **(env or {})}
    gcflags = "" if optimized else DEBUG_GCFLAGS
    return build_cached(FIXTURES, name, go or go_toolchain(), env, ldflags, gcflags=gcflags)


ORACLE_RE = re.compile(
    r"^DLVSNAP-ORACLE seq=(\d+) key=(\S*) present=(true|false) len=(\d+) digest=([0-9a-f]+)$"
)


@dataclass
class OracleLine:
    seq: int
    key: str
    present: bool
    length: int
    digest: str


def parse_oracle(text: str) -> list[OracleLine]:
    out = []
    for line in text.splitlines():
        m = ORACLE_RE.match(line.strip())
        if m:
            out.append(OracleLine(int(m[1]), m[2], m[3] == "true", int(m[4]), m[5]))
    return out


@dataclass
class WatchRun:
    returncode: int
    events: list[dict[str, Any]]
    stdout: str
    stderr: str
    target_output: str

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == kind]

    def notes(self) -> list[dict[str, Any]]:
        """The notes, without the one that says how calls stop (``mode``: watchpoint mode
        armed, or why not), which a run in either mode may have."""
        return [e for e in self.of("note") if e["kind"] != "mode"]

    @property
    def mode(self) -> str:
        """How the watched map's calls stopped the program in the end (the summary's word)."""
        summary = self.of("summary")
        return str(summary[-1]["mode"]) if summary else ""

    @property
    def ops(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] in ("delete", "clear")]


def run_dlvsnap(
    *args: str,
    timeout: float = 120,
    user: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`python -m dlvsnap ARGS` as a user runs it (a real process, output captured);
    ``user``: a command to run it through (setpriv as another user); ``env``: added to the
    environment."""
    return subprocess.run(
        [*(user or []), sys.executable, "-m", "dlvsnap", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )


def run_watch(
    target: Path | str,
    expr: str,
    *extra: str,
    tmp: Path,
    timeout: float = 300,
    program_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> WatchRun:
    """Run `dlvsnap watch TARGET --map EXPR --json` as a user would (a real process)."""
    out_file = tmp / "target-output.txt"
    cmd = [
        sys.executable,
        "-m",
        "dlvsnap",
        "watch",
        str(target),
        "--map",
        expr,
        "--json",
        "--target-output",
        str(out_file),
        *extra,
    ]
    if program_args:
        cmd += ["--", *program_args]
    p = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )
    events = [json.loads(ln) for ln in p.stdout.splitlines() if ln.strip()]
    target_out = out_file.read_text(errors="replace") if out_file.exists() else ""
    return WatchRun(p.returncode, events, p.stdout, p.stderr, target_out)


def stop_users_server(server: subprocess.Popen[bytes], prog: Path) -> None:
    """End a user's `dlv exec` server the tests started, and the program it launched: SIGTERM
    (Delve then kills its target), SIGKILL after 10 s; then the program itself if it is
    still there (a Delve that is SIGKILLed leaves its target running, detached)."""
    children = []
    for task in Path(f"/proc/{server.pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            children += [int(c) for c in (task / "children").read_text().split()]
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=30)
    for pid in children:
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            continue  # gone
        if os.path.realpath(exe.removesuffix(" (deleted)")) == os.path.realpath(prog):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
