"""`dlvsnap layouts verify` against real binaries of every release in the matrix, and a
release newer than layouts/index.toml checked against the binary's DWARF on every path."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import dlvsnap
from dlvsnap.dwarf import read_structs, struct_types_present
from dlvsnap.errors import ExitCode, LayoutDriftError
from dlvsnap.layouts import layouts_dir
from dlvsnap.target import IMPL_TYPES, identify
from tests.support import FIXTURES as FIXTURE_DIR
from tests.support import (
    Variant,
    build_fixture,
    dlv_binary,
    run_dlvsnap,
    run_watch,
    variants,
)

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


@pytest.mark.parametrize("v", variants(), ids=lambda v: v.id)
def test_the_map_implementation_is_read_from_dwarf_as_a_full_walk_reads_it(v: Variant) -> None:
    """identify() finds the runtime's map header type by its bytes in .debug_info (fast);
    a walk of every DIE must find the same types, on every release and experiment."""
    for name in ("deletes", "kinds"):
        prog = build_fixture(name, variant=v)
        walked = set(read_structs(prog, lambda n: n in IMPL_TYPES))
        assert struct_types_present(prog, IMPL_TYPES) == walked
        assert identify(prog).map_impl == v.impl == IMPL_TYPES[walked.pop()]


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


def _newer_than_the_index(tmp_path: Path, *, drift: bool) -> dict[str, str]:
    """Layouts whose index stops at Go 1.25 for swiss maps, so that the machine's Go 1.26
    is a release newer than the index (1.25's layout is then the nearest); ``drift``: with
    that layout altered, as a runtime change the index does not know of would be."""
    d = tmp_path / ("drifting" if drift else "layouts")
    shutil.copytree(layouts_dir(), d)
    index = d / "index.toml"
    index.write_text(index.read_text().replace('"1.26" = "swiss-go1.25"\n', ""))
    if drift:
        f = d / "swiss-go1.25.toml"
        f.write_text(
            f.read_text().replace(
                '["growthLeft", "uint16"],\n  ["localDepth", "uint8"],',
                '["localDepth", "uint8"],\n  ["growthLeft", "uint16"],',
            )
        )
    return {"DLVSNAP_LAYOUTS": str(d)}


def _snap(prog: Path, saved: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    args = ["snap", str(prog), "--at", "main.checkpoint", "--map", "main.Inventory", "-v"]
    args += ["--json", "--save", str(saved), "--target-output", os.devnull]
    return run_dlvsnap(*args, env=env)


def test_a_release_newer_than_the_index_is_verified_on_every_path(tmp_path: Path) -> None:
    """snap, a saved file, watch and the Python API decode Go 1.26 with 1.25's layout once
    the binary's DWARF agrees with it (README "Bumping Go")."""
    dlv_binary()
    env = _newer_than_the_index(tmp_path, drift=False)
    prog = build_fixture("interactive")
    r = _snap(prog, tmp_path / "a.json", env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["layout"] == "swiss-go1.25"
    assert re.search(
        r"Go 1\.26 is not in layouts/index\.toml: using swiss-go1\.25, verified against the "
        r"binary's DWARF \(\d+ types\)",
        r.stderr,
    ), r.stderr
    d = run_dlvsnap("diff", str(tmp_path / "a.json"), str(tmp_path / "a.json"), env=env)
    assert d.returncode == 0, d.stderr
    run = run_watch(build_fixture("deletes"), "m", "--max-events", "2", tmp=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    assert [n["layout"] for n in run.of("note") if n["kind"] == "layout"] == ["swiss-go1.25"]
    assert {e["layout"] for e in run.ops} == {"swiss-go1.25"}


def test_a_release_newer_than_the_index_that_drifts_is_refused_on_every_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same with 1.25's layout altered: snap, watch and the Python API refuse (exit 7,
    LayoutDriftError) naming the first difference, and decode nothing."""
    dlv_binary()
    env = _newer_than_the_index(tmp_path, drift=True)
    prog = build_fixture("interactive")
    want = (
        "dlvsnap: Go 1.26 is not in layouts/index.toml and swiss-go1.25 differs from the "
        "binary's DWARF ("
    )
    r = _snap(prog, tmp_path / "a.json", env)
    assert r.returncode == ExitCode.DRIFT, r.stderr
    assert want in r.stderr and r.stdout == "" and not (tmp_path / "a.json").exists()
    run = run_watch(build_fixture("deletes"), "m", tmp=tmp_path, env=env)
    assert run.returncode == ExitCode.DRIFT, run.stderr
    assert want in run.stderr and run.ops == []
    monkeypatch.setenv("DLVSNAP_LAYOUTS", env["DLVSNAP_LAYOUTS"])
    with open(os.devnull, "wb") as sink, dlvsnap.launch(prog, ["5"], output=sink) as dbg:
        dbg.run_to("main.checkpoint")
        m = dbg.map("main.Inventory")
        with pytest.raises(LayoutDriftError, match=r"swiss-go1\.25 differs from the binary.s"):
            m.snapshot()
