"""`dlvsnap layouts verify` against real binaries of every release in the matrix."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dlvsnap.errors import ExitCode
from dlvsnap.layouts import layouts_dir
from tests.support import FIXTURES as FIXTURE_DIR
from tests.support import Variant, build_fixture, variants

pytestmark = pytest.mark.live

# every fixture program (clearmap needs the clear builtin's go1.21 or its fallback: both build)
ALL = sorted(p.parent.name for p in FIXTURE_DIR.glob("*/main.go") if p.parent.name != "oracle")


def _verify(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dlvsnap", "layouts", "verify", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("v", variants(), ids=lambda v: v.id)
def test_every_fixture_binary_matches_its_layout(v: Variant) -> None:
    progs = [str(build_fixture(f, variant=v)) for f in ALL]
    p = _verify(*progs)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == len(ALL) and all(ln.endswith(": ok") for ln in lines), lines
    assert all(f"({v.impl} maps)" in ln for ln in lines)


def test_an_altered_layout_file_fails_with_the_field_named(tmp_path: Path) -> None:
    prog = build_fixture("deletes")  # the machine's Go 1.26: swiss-go1.25
    altered = tmp_path / "layouts"
    shutil.copytree(layouts_dir(), altered)
    f = altered / "swiss-go1.25.toml"
    text = f.read_text()
    f.write_text(
        text.replace(
            '["growthLeft", "uint16"],\n  ["localDepth", "uint8"],',
            '["localDepth", "uint8"],\n  ["growthLeft", "uint16"],',
        )
    )
    assert f.read_text() != text
    p = _verify(str(prog), env={"DLVSNAP_LAYOUTS": str(altered)})
    assert p.returncode == ExitCode.DRIFT, p.stdout + p.stderr
    assert (
        "internal/runtime/maps.table.growthLeft: offset 4 in DWARF, 6 in swiss-go1.25" in p.stdout
    )
    assert "dlvsnap: 1 of 1 programs drift from their layout" in p.stderr
