"""The runtime's delete rules (dlvsnap.rules, what `dlvsnap regress` records) on synthetic
events: a delete as the runtime does it passes every rule that applies; one that breaks a
rule is named with what was seen."""

from __future__ import annotations

from dlvsnap.diff import diff
from dlvsnap.layouts import load_layout
from dlvsnap.model import DeleteEvent, Location, MapSnapshot
from dlvsnap.rules import check
from tests.unit.synth import SwissMap
from tests.unit.test_diff import _two_snapshots


def _event(before: MapSnapshot, after: MapSnapshot, key: int) -> DeleteEvent:
    return DeleteEvent(
        seq=1,
        op="delete",
        entry="runtime.mapdelete_fast64",
        via="",
        goroutine=1,
        location=Location("main.del", "main.go", 14),
        key=key,
        key_decoded=True,
        before=before,
        after=after,
        diff=diff(before, after),
    )


def test_a_delete_as_the_runtime_does_it_passes_every_rule() -> None:
    """A group with an empty slot: the deleted key's slot becomes empty, growthLeft rises."""
    sm = SwissMap(load_layout("swiss", "go1.26.8", 8, True))
    before, after, _ = _two_snapshots(
        [sm.group({0: (0x3A, 17), 1: (0x12, 18)})],
        [sm.group({1: (0x12, 18)})],
        used=(2, 1),
        growth=(5, 6),
    )
    results = [str(c) for c in check(_event(before, after, 17))]
    assert results == [
        "decodes",
        "count",
        "key-emptied",
        "group-rule",
        "growthLeft",
        "tombstonePossible",
        "only-slot",
        "seed",
        "memory-kept",
    ]


def test_a_broken_rule_is_named_with_what_was_seen() -> None:
    """A full group: another key vanished with the deleted one (used says 7, 6 are full);
    then only the deleted key's slot became a tombstone, but Map.tombstonePossible stayed
    false (Go 1.25 sets it)."""
    sm = SwissMap(load_layout("swiss", "go1.26.8", 8, True))
    full = {i: (i + 1, i) for i in range(8)}
    after_slots = {i: v for i, v in full.items() if i not in (4, 6)}
    before, after, _ = _two_snapshots(
        [sm.group(full)], [sm.group(after_slots, deleted=(4, 6))], used=(8, 7), growth=(0, 0)
    )
    failed = [str(c) for c in check(_event(before, after, 4)) if not c.ok]
    assert failed == [
        "!decodes(Map.used is 7 but 6 slots are full; table 0: used is 7 but 6 slots are full)",
        "!key-emptied(2 emptied, 0 appeared)",
    ]
    before, after, _ = _two_snapshots(
        [sm.group(full)], [sm.group(after_slots | {6: full[6]}, deleted=(4,))], (8, 7), (0, 0)
    )
    failed = [str(c) for c in check(_event(before, after, 4)) if not c.ok]
    assert failed == ["!tombstonePossible(False -> False)"]
