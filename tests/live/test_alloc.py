"""Bytes held, the allocator's way (issue 14): what dlvsnap says a map holds against what
the Go runtime itself counts. fixtures/memstats makes maps of several shapes, each between
two runtime.MemStats readings taken right after runtime.GC(), and stops at
main.checkpoint with the differences in main.HeapDelta and main.ObjectDelta; dlvsnap then
snapshots the map. And the size classes against each installed release's own
sizeclasses.go."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dlvsnap import snap as snapmod
from dlvsnap.alloc import class_sizes, class_sizes_in
from dlvsnap.delve.types import LoadConfig
from dlvsnap.session import Session
from tests.support import Variant, build_fixture, dlv_for, go_for, variants

pytestmark = pytest.mark.live

VARIANTS = variants()
SHAPES = ("Ints", "Arrays", "StrPtr", "BigKeys", "Hinted", "Growing", "Small")


def _value(s: Session, expr: str) -> str:
    v = s.client.eval(expr, cfg=LoadConfig())
    assert not v.unreadable, (expr, v.unreadable)
    return v.value


@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.id)
def test_held_bytes_are_what_memstats_counts(tmp_path: Path, v: Variant) -> None:
    """Exact equality, no tolerance, in bytes and in objects: between its two readings
    the fixture allocates only the map (what the map points at is made before, the
    readings go to package variables, the line is printed after the stop), runtime.GC()
    returns after sweeping, so that HeapAlloc and HeapObjects count exactly the live
    objects, and the runtime's own allocations in the window (sudogs the collector may
    make, which stay cached) are made once, in a warm-up round, with one P
    (fixtures/memstats says how that was measured). A difference is an allocation dlvsnap
    does not know of, or one it rounds differently from the runtime."""
    binary = build_fixture("memstats", variant=v)
    seen: dict[str, tuple[int, int, int, int]] = {}
    growing: list[str] = []
    with (
        (tmp_path / "out.txt").open("wb") as sink,
        Session.launch(dlv_for(v), binary, [], sink=sink) as s,
    ):
        for _ in SHAPES:
            snapmod.run_to(s, "main.checkpoint")
            shape = _value(s, "main.Shape").strip('"')
            heap, objects = int(_value(s, "main.HeapDelta")), int(_value(s, "main.ObjectDelta"))
            snap, _, _ = snapmod.snapshot(s, snapmod.resolve(s, f"main.{shape}"))
            assert snap.impl == v.impl and snap.warnings == (), (shape, snap.warnings)
            if v.impl == "classic" and snap.header["oldbuckets"]:
                growing.append(shape)
            m = snap.memory
            seen[shape] = (m.held, heap, m.allocations, objects)
    wrong = {k: x for k, x in seen.items() if x[0] != x[1] or x[2] != x[3]}
    # (dlvsnap held, HeapAlloc delta, dlvsnap allocations, HeapObjects delta) per shape
    assert list(seen) == list(SHAPES) and wrong == {}, seen
    # a classic map caught growing, its old buckets counted too: Growing (55,000 entries,
    # grown to B = 14 at 53,249), or in go1.21, whose load factor is 6, Ints (100,000,
    # grown to B = 15 at 98,305)
    assert v.impl == "swiss" or growing, "no classic map was growing"


@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.id)
def test_the_size_classes_are_the_releases_own(v: Variant) -> None:
    """The installed toolchain's sizeclasses.go (runtime/ up to Go 1.24,
    internal/runtime/gc/ from 1.25) holds the classes dlvsnap.alloc has for its release."""
    go = go_for(v)
    goroot = Path(
        subprocess.run(
            [go, "env", "GOROOT"],
            capture_output=True,
            text=True,
            check=True,
            env={"GOTOOLCHAIN": "local", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
        ).stdout.strip()
    )
    files = [
        goroot / "src/runtime/sizeclasses.go",
        goroot / "src/internal/runtime/gc/sizeclasses.go",
    ]
    text = next(f for f in files if f.exists()).read_text()
    assert class_sizes_in(text) == class_sizes(v.release)
