"""`dlvsnap regress` over CI's matrix against the committed goldens, and drift detection."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dlvsnap.errors import ExitCode
from tests.support import ROOT, dlv_binary, variants

pytestmark = pytest.mark.live


def _regress(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dlvsnap", "regress", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )


def test_ci_matrix_matches_the_goldens() -> None:
    dlv_binary()
    gos = sorted({v.go for v in variants()})
    p = _regress(*(a for g in gos for a in ("--go", g)))
    assert p.returncode == 0, p.stdout + p.stderr
    rows = [ln.split() for ln in p.stdout.splitlines()[2:]]
    assert {r[0] for r in rows} == {v.id for v in variants()}
    assert all(cell in ("ok", "-") for r in rows for cell in r[1:]), p.stdout


def test_a_changed_golden_is_drift_with_the_first_differing_event(tmp_path: Path) -> None:
    dlv_binary()
    goldens = tmp_path / "goldens"
    shutil.copytree(ROOT / "goldens" / "go1.26", goldens / "go1.26")
    g = goldens / "go1.26" / "deletes.txt"
    g.write_text(
        g.read_text().replace(
            "#2 delete key=42 present used 99->98", "#2 delete key=42 present used 99->97"
        )
    )
    p = _regress("--go", "1.26", "--goldens", str(goldens))
    assert p.returncode == ExitCode.DRIFT, p.stdout + p.stderr
    assert "golden: #2 delete key=42 present used 99->97" in p.stdout
    assert "now:    #2 delete key=42 present used 99->98" in p.stdout
    row = next(ln for ln in p.stdout.splitlines() if ln.startswith("go1.26 "))
    assert row.split()[1] == "drift"
