"""Issue 4's exactness check: the invariants hold on a 1,000,000-entry map with the fast
paths on (the /proc reader, probe reads of only what each delete can touch), and every
probe diff equals the diff of two whole snapshots taken at the same stops."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.live.invariants import check_deletes
from tests.support import Variant, build_fixture, dlv_for, parse_oracle, run_watch, variants

pytestmark = pytest.mark.live

ENTRIES = 1_000_000
STEP = 99_991  # 11 present keys, then one absent


def _one_per_impl() -> list[Variant]:
    out: dict[str, Variant] = {}
    for v in variants():
        if not v.experiment:
            out.setdefault(v.impl, v)
    return list(out.values())


@pytest.mark.parametrize("v", _one_per_impl(), ids=lambda v: v.id)
def test_million_entry_map_probe_reads_are_exact(tmp_path: Path, v: Variant) -> None:
    dlv_for(v)
    run = run_watch(
        build_fixture("large", variant=v),
        "main.table",
        tmp=tmp_path,
        program_args=(str(ENTRIES), str(STEP)),
        env={"DLVSNAP_CROSSCHECK": "1"},
        timeout=900,
    )
    assert run.returncode == 0, run.stderr
    oracle = parse_oracle(run.target_output)
    check_deletes(run, oracle, "int")  # includes: no warnings, so no crosscheck difference
    deletes = run.of("delete")
    assert len(deletes) == ENTRIES // STEP + 2
    assert deletes[0]["count_before"] == ENTRIES
    # the first delete checks the hash against a whole snapshot; every later one is a probe
    assert not deletes[0]["partial"]
    assert all(d["partial"] for d in deletes[1:]), [d["seq"] for d in deletes if not d["partial"]]
    assert [n for n in run.of("note") if n["kind"] == "snapshots"] == []
    assert all(len(d["changes"]) == (1 if d["key_present"] else 0) for d in deletes)
    assert run.of("summary")[0]["memory_reader"] == "proc"
