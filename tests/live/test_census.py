"""`dlvsnap maps` (issue 15) against fixtures/census's own account of its maps: each map of
package main listed once, under the shortest path the program wrote down, with its len;
none of the maps it dropped; launched at a stop, and attached to while it runs (released
afterwards); on a classic and the swiss releases of the CI matrix."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Variant, build_fixture, dlv_for, run_dlvsnap, variants

pytestmark = pytest.mark.live

VARIANTS = variants()
ACCOUNT = re.compile(r"^DLVSNAP-CENSUS (\{.*\})$", re.M)
GOROUTINE = re.compile(r"^goroutine \d+ ")


def _records(stdout: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert lines and lines[-1]["event"] == "census", stdout[-500:]
    assert all(x["event"] == "map" for x in lines[:-1])
    return lines[:-1], lines[-1]


def _account(text: str) -> dict[str, Any]:
    m = ACCOUNT.search(text)
    assert m, text[-500:]
    got: dict[str, Any] = json.loads(m[1])
    return got


def _ours(path: str) -> bool:
    """A map of the fixture's own (package main's variables, its goroutines' frames)."""
    return path.startswith("main.") or GOROUTINE.sub("", path).startswith("main.")


def check_census(
    maps: list[dict[str, Any]], census: dict[str, Any], account: dict[str, Any]
) -> None:
    """The census says what the program says of itself."""
    by_addr = {int(m["addr"], 16): m for m in maps}
    assert len(by_addr) == len(maps), "a map listed twice"
    expected = {int(e["addr"], 16): e for e in account["maps"]}
    for addr, e in expected.items():
        m = by_addr.get(addr)
        assert m is not None, f"not listed: {e}"
        assert (GOROUTINE.sub("", m["path"]), m["live_entries"]) == (e["path"], e["len"]), (e, m)
        assert m["type"] == e["type"], (e, m)
        assert m["beyond_len"] == (e["path"] == "main.queue[2]"), m
    theirs = [m["path"] for a, m in by_addr.items() if a not in expected]
    assert not [p for p in theirs if _ours(p)], theirs  # the rest are the standard library's
    for u in account["unreachable"]:
        assert int(u, 16) not in by_addr, f"a dropped map is listed: {by_addr[int(u, 16)]}"
    assert census["maps"] == len(maps) and census["shown"] == len(maps)
    assert census["held_bytes"] == sum(m["held_bytes"] for m in maps)
    assert census["undecoded_maps"] == {}
    # most waste first: the map emptied of 100,000 entries, with the advice
    first = maps[0]
    assert first["path"] == "main.drained" and first["live_entries"] == 0
    assert first["held_bytes"] > 1_000_000 and first["waste_bytes"] == first["held_bytes"]
    assert str(first["advice"]).startswith("Deleting gave no memory back") or "never shrink" in str(
        first["advice"]
    )
    assert [m["waste_bytes"] for m in maps] == sorted(
        (m["waste_bytes"] for m in maps), reverse=True
    )


@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.id)
def test_census_of_a_launched_program(v: Variant, tmp_path: Path) -> None:
    prog = build_fixture("census", variant=v)
    out = tmp_path / "program.txt"
    r = run_dlvsnap(
        "maps", str(prog), "--at", "main.ready", "--json", "--top", "0",
        "--dlv", dlv_for(v), "--target-output", str(out), timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    maps, census = _records(r.stdout)
    account = _account(out.read_text())
    check_census(maps, census, account)
    assert census["source"] == "launch" and census["reader"] == "proc"
    graves = next(m for m in maps if m["path"] == "main.cfg.graves")
    if v.impl == "swiss":
        assert graves["tombstones"] > 0
    assert graves["live_entries"] == 224


@contextlib.contextmanager
def running_census(v: Variant, tmp: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """fixtures/census running on its own, its account printed (every map in place)."""
    out = tmp / "running.txt"
    with open(out, "wb") as sink:
        p = subprocess.Popen([str(build_fixture("census", variant=v))], stdout=sink)
    try:
        deadline = time.monotonic() + 60
        while not ACCOUNT.search(out.read_text()) and time.monotonic() < deadline:
            assert p.poll() is None, out.read_text()
            time.sleep(0.05)
        yield p, out
    finally:
        p.kill()
        p.wait(timeout=30)


def released(pid: int) -> bool:
    """Running on its own again: not traced, not stopped."""
    status = Path(f"/proc/{pid}/status").read_text()
    tracer = re.search(r"^TracerPid:\s*(\d+)", status, re.M)
    state = re.search(r"^State:\s*(\S)", status, re.M)
    return tracer is not None and tracer[1] == "0" and state is not None and state[1] in "SR"


@pytest.mark.parametrize("v", VARIANTS[:1] + VARIANTS[-1:], ids=lambda v: v.id)
def test_census_of_an_attached_program(v: Variant, tmp_path: Path) -> None:
    with running_census(v, tmp_path) as (p, out):
        r = run_dlvsnap(
            "maps", "--attach", str(p.pid), "--json", "--top", "0", "--dlv", dlv_for(v), timeout=300
        )
        assert r.returncode == 0, r.stderr
        maps, census = _records(r.stdout)
        check_census(maps, census, _account(out.read_text()))
        assert census["source"] == "attach" and census["pid"] == p.pid
        deadline = time.monotonic() + 10
        while not released(p.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert released(p.pid) and p.poll() is None


def test_census_text_top_and_min_bytes(tmp_path: Path) -> None:
    """The table: most waste first, --top and --min-bytes, the totals line, the advice for
    the map that wastes most."""
    v = VARIANTS[-1]
    prog = build_fixture("census", variant=v)
    r = run_dlvsnap(
        "maps", str(prog), "--at", "main.ready", "--top", "3", "--min-bytes", "1000",
        "--dlv", dlv_for(v), "--target-output", str(tmp_path / "out.txt"), timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("maps in pid ") and "go1." in lines[0]
    rows = lines[3:6]
    assert rows[0].rstrip().endswith("main.drained"), lines
    totals = next(ln for ln in lines if " maps (" in ln)
    assert re.match(r"^\d+ maps \(\d+ not shown: --top, --min-bytes\): [\d,]+ B held", totals), (
        totals
    )
    assert "main.drained:" in lines
    assert "Go maps never shrink" in " ".join(r.stdout.split())


def test_census_usage_errors() -> None:
    r = run_dlvsnap("maps", "fixtures/census")
    assert r.returncode == 2 and "--at LOCATION" in r.stderr
    r = run_dlvsnap("maps", "--attach", "1", "--connect", "127.0.0.1:1")
    assert r.returncode == 2 and "exactly one of" in r.stderr


@pytest.mark.parametrize("v", VARIANTS[:1] + VARIANTS[-1:], ids=lambda v: v.id)
def test_census_of_a_core_is_the_census_of_the_stop(v: Variant, tmp_path: Path) -> None:
    """A core written at a stop (Delve's dump) gives the census taken live at that stop:
    the same maps, paths and figures, read from the core file's segments."""
    from dlvsnap import snap as snapmod
    from dlvsnap.census.take import take
    from dlvsnap.dump import dump
    from dlvsnap.session import Session

    prog = build_fixture("census", variant=v)
    core = tmp_path / "census.core"
    out = tmp_path / "program.txt"
    with open(out, "wb") as sink, Session.launch(dlv_for(v), prog, [], sink=sink) as s:
        snapmod.run_to(s, "main.ready")
        live = take(s)
        dump(s, str(core))
    r = run_dlvsnap(
        "maps", "--core", str(core), str(prog), "--json", "--top", "0", "--dlv", dlv_for(v),
        timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    maps, census = _records(r.stdout)
    assert census["source"] == "core" and census["reader"] == "core"
    check_census(maps, census, _account(out.read_text()))
    assert [(m["path"], int(m["addr"], 16), m["live_entries"], m["held_bytes"]) for m in maps] == [
        (m.path, m.addr, m.figures.live, m.figures.held) for m in live.maps
    ]


@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.id)
def test_small_maps_read_in_bulk_have_snaps_figures(
    v: Variant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The census reads the small maps of a type in bulk (the decoders' small_maps): each
    map's figures are those of its own snapshot, as `snap` takes it."""
    import os

    from dlvsnap import snap as snapmod
    from dlvsnap.census.take import take
    from dlvsnap.decode.base import SmallMaps
    from dlvsnap.decode.classic import ClassicDecoder
    from dlvsnap.decode.swiss import SwissDecoder
    from dlvsnap.phases import Figures
    from dlvsnap.session import Session

    read_in_bulk: list[int] = []
    decoder = SwissDecoder if v.impl == "swiss" else ClassicDecoder
    small_maps = decoder.small_maps

    def counting(self: Any, addrs: Any) -> SmallMaps:
        got = small_maps(self, addrs)
        read_in_bulk.extend(a for a, ok in zip(addrs.tolist(), got.ok.tolist(), strict=True) if ok)
        return got

    monkeypatch.setattr(decoder, "small_maps", counting)
    prog = build_fixture("census", variant=v)
    with open(os.devnull, "wb") as sink, Session.launch(dlv_for(v), prog, [], sink=sink) as s:
        snapmod.run_to(s, "main.ready")
        c = take(s)
        for m in c.maps:
            ref = snapmod.MapRef(
                m.path, m.addr, snapmod.type_descriptor(s, m.type_name), m.type_name, 1, 0
            )
            snap, _, _ = snapmod.snapshot(s, ref)
            assert m.figures == Figures.of(snap), m.path
    assert len(read_in_bulk) >= 53  # main.shelves[0..52] at least
    assert set(read_in_bulk) <= {m.addr for m in c.maps}


def test_the_python_api_takes_a_census_live_and_of_a_core(tmp_path: Path) -> None:
    """`Debugger.maps()` on a launched program and on a core of it (`dlvsnap.core`): the
    fixture's maps, the same from both; a core cannot run."""
    import dlvsnap
    from dlvsnap.dump import dump
    from dlvsnap.errors import CoreCannotRunError

    v = VARIANTS[-1]
    prog = build_fixture("census", variant=v)
    core = tmp_path / "census.core"
    out = tmp_path / "program.txt"
    with open(out, "wb") as sink, dlvsnap.launch(prog, dlv=dlv_for(v), output=sink) as dbg:
        dbg.run_to("main.ready")
        live = dbg.maps()
        dump(dbg.session, str(core))
    account = _account(out.read_text())
    with dlvsnap.core(core, prog, dlv=dlv_for(v)) as dbg:
        from_core = dbg.maps(goroutines=False)
        assert dbg.map("main.drained").snapshot().count == 0
        with pytest.raises(CoreCannotRunError):
            dbg.run_to("main.main")
    ours = {e["path"]: e["len"] for e in account["maps"]}
    got = {GOROUTINE.sub("", m.path): m.figures.live for m in live.maps if _ours(m.path)}
    assert got == ours
    # without the goroutines' frames: every map but those only a frame holds
    framed = {"main.main mine", "main.worker local", "main.worker sess.cache"}
    assert {m.path: m.figures.live for m in from_core.maps if _ours(m.path)} == {
        p: n for p, n in ours.items() if p not in framed
    } | {'main.srv.sessions["bob"].cache': 2}


REALPROG_MAPS = {  # fixtures/realcode/realprog at its first churn(): every map 3 x 12 entries
    "main.main c.cache.items": 36,  # github.com/patrickmn/go-cache
    "main.main l.lru.items": 36,  # github.com/hashicorp/golang-lru/v2
    "main.Registry": 36,
    "main.main s.byID": 36,
    "main.main q": 36,  # url.Values
    "main.main h": 36,  # http.Header
    "main.main g.m": 36,
    "main.main outer": 2,
    'main.main outer["a"]': 36,
    'main.main outer["b"]': 36,
    "main.main w.base.inner.counts": 36,
    **{f"main.main shards[{i}]": 9 for i in range(4)},
}


@pytest.mark.parametrize("optimized", [False, True], ids=["debug", "optimised"])
def test_census_of_third_party_code(optimized: bool) -> None:
    """Maps of code nobody here wrote (a go-cache, a generic LRU, url.Values, http.Header)
    in fixtures/realcode/realprog. The optimised build keeps fewer of main's locals (the
    rest are counted as skipped); the caches' maps are found in both."""
    from dlvsnap.build import DEBUG_GCFLAGS, build_cached
    from tests.support import FIXTURES, go_toolchain

    prog = build_cached(
        FIXTURES / "realcode",
        "realprog",
        go_toolchain(),
        gcflags="" if optimized else DEBUG_GCFLAGS,
    )
    r = run_dlvsnap("maps", str(prog), "--at", "main.churn", "--json", "--top", "0", timeout=300)
    assert r.returncode == 0, r.stderr
    maps, census = _records(r.stdout)
    got = {GOROUTINE.sub("", m["path"]): m["live_entries"] for m in maps if _ours(m["path"])}
    if not optimized:
        assert got == REALPROG_MAPS
    else:
        kept = {p: n for p, n in got.items() if p in REALPROG_MAPS}
        assert kept == {p: REALPROG_MAPS[p] for p in kept} and kept == got
        for p in ("main.main c.cache.items", "main.main l.lru.items", "main.Registry"):
            assert got[p] == 36, got
        assert census["undecoded_maps"] == {}
