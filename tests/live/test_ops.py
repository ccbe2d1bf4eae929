"""--ops: assigns watched next to deletes (issue 5), with the probe reads checked against
whole snapshots at every event (DLVSNAP_CROSSCHECK=1), on every Go release of the matrix."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.live.invariants import encode
from tests.support import Variant, build_fixture, dlv_for, run_watch, variants

pytestmark = pytest.mark.live

VARIANTS = variants()


@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.id)
def test_assigns_and_deletes_keep_the_live_keys_exact(tmp_path: Path, v: Variant) -> None:
    """fixtures/interactive: 40 inserts (a small map grows into a table), then three rounds
    of delete + insert back. After each assign its key is live, after each delete it is
    not, and count, live keys and the slot changes agree."""
    dlv_for(v)
    run = run_watch(
        build_fixture("interactive", variant=v),
        "main.Inventory",
        "--ops",
        "delete,assign",
        "--live-keys",
        tmp=tmp_path,
        program_args=("3",),
        env={"DLVSNAP_CROSSCHECK": "1"},
    )
    assert run.returncode == 0, run.stderr
    events = [e for e in run.events if e["event"] in ("assign", "delete")]
    assert [e["event"] for e in events] == ["assign"] * 40 + ["delete", "assign"] * 3
    for e in events:
        where = f"#{e['seq']} {e['event']} {e['key']}"
        assert e["warnings"] == [], (where, e["warnings"])
        live = {encode(k, "string") for k in e["live_keys"]}
        assert len(live) == e["count_after"], where
        key = encode(e["key"], "string")
        if e["event"] == "assign":
            assert key in live, where
            assert e["count_after"] == e["count_before"] + (0 if e["key_present"] else 1)
        else:
            assert key not in live and e["key_present"], where
            assert e["count_after"] == e["count_before"] - 1, where
    summary = run.of("summary")[0]
    assert (summary["assigns"], summary["keys_added"], summary["deletes"]) == (43, 43, 3)
    # after the first (whole) snapshot, deletes and assigns into a stable map are probes
    assert all(e["partial"] for e in events[-6:]), [e["seq"] for e in events if e["partial"]]


@pytest.mark.parametrize("v", [v for v in VARIANTS if v.impl == "classic"], ids=lambda v: v.id)
def test_assigns_show_a_classic_grow_evacuating(tmp_path: Path, v: Variant) -> None:
    dlv_for(v)
    run = run_watch(
        build_fixture("growing", variant=v),
        "m",
        "--ops",
        "assign",
        tmp=tmp_path,
        env={"DLVSNAP_CROSSCHECK": "1"},
    )
    assert run.returncode == 0, run.stderr
    assigns = run.of("assign")
    assert all(e["warnings"] == [] for e in assigns)
    grows = [e["seq"] for e in assigns if e["header_changes"].get("B")]
    assert len(grows) >= 3, grows  # B 0 -> 5 over 105 inserts: several grows
    evacuated = [
        e["seq"]
        for e in assigns
        if any(c["after_state"] in ("evacuatedX", "evacuatedY") for c in e["changes"])
    ]
    assert evacuated, "no assign evacuated an old bucket"
    # the grow starts at an insert; evacuation goes on at the inserts after it
    assert any(s > g for s in evacuated for g in grows), (grows, evacuated)
    assert run.of("delete") == [] and run.of("summary")[0]["deletes"] == 0
