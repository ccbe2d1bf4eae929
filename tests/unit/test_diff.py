"""The slot diff on synthetic snapshots: a delete's transitions, header and table deltas."""

from __future__ import annotations

from dlvsnap.decode import SwissDecoder, decode_map_type
from dlvsnap.diff import diff
from dlvsnap.layouts import load_layout
from dlvsnap.model import DELETED, EMPTY, FULL
from tests.unit.synth import SwissMap


def _two_snapshots(
    before_groups: list[bytes],
    after_groups: list[bytes],
    used: tuple[int, int],
    growth: tuple[int, int],
    seeds: tuple[int, int] = (1, 1),
):  # type: ignore[no-untyped-def]
    """One map, snapshotted, then rewritten in place (same addresses) and snapshotted again."""
    sm = SwissMap(load_layout("swiss", "go1.26.8", 8, True))
    dec = SwissDecoder(sm.layout, sm.mem, decode_map_type(sm.layout, sm.mem, sm.type_desc()))
    t = sm.table(before_groups, used=used[0], growth_left=growth[0], index=0)
    d = sm.directory([t])
    h = sm.header(used=used[0], dir_ptr=d, dir_len=1, seed=seeds[0])
    before = dec.snapshot(h)
    ts = sm.layout.struct("table").struct
    fields = ts.parse(sm.mem.read(t, 32))
    sm.mem.add(fields.groups.data, b"".join(after_groups))
    sm.mem.add(t, ts.build({**fields, "used": used[1], "growthLeft": growth[1]}))
    hs = sm.layout.struct("Map").struct
    sm.mem.add(h, hs.build({**hs.parse(sm.mem.read(h, 48)), "used": used[1], "seed": seeds[1]}))
    return before, dec.snapshot(h), sm


def test_full_to_empty() -> None:
    sm0 = SwissMap(load_layout("swiss", "go1.26.8", 8, True))
    before, after, _ = _two_snapshots(
        [sm0.group({0: (0x3A, 17), 1: (0x12, 18)})],
        [sm0.group({1: (0x12, 18)})],
        used=(2, 1),
        growth=(5, 6),
    )
    d = diff(before, after)
    assert [
        (str(c.loc), c.before_state, c.after_state, c.before_byte, c.after_byte, c.key)
        for c in d.changes
    ] == [("t0/g0/s0", FULL, EMPTY, 0x3A, 0x80, 17)]
    assert (d.count_before, d.count_after) == (2, 1)
    assert d.header_changes == {"used": (2, 1)}
    assert d.table_changes == {0: {"used": (2, 1), "growth_left": (5, 6)}}
    assert not d.reseeded and d.moved is None
    assert [c.key for c in d.left_full()] == [17]


def test_full_to_tombstone_keeps_growth_left() -> None:
    sm0 = SwissMap(load_layout("swiss", "go1.26.8", 8, True))
    full = {i: (i + 1, i) for i in range(8)}
    after_slots = {i: v for i, v in full.items() if i != 4}
    before, after, _ = _two_snapshots(
        [sm0.group(full)], [sm0.group(after_slots, deleted=(4,))], used=(8, 7), growth=(0, 0)
    )
    d = diff(before, after)
    assert [(c.before_state, c.after_state, c.key) for c in d.changes] == [(FULL, DELETED, 4)]
    assert d.table_changes == {0: {"used": (8, 7)}}
    assert after.tombstones == 1


def test_reseed_and_no_change() -> None:
    sm0 = SwissMap(load_layout("swiss", "go1.26.8", 8, True))
    g = sm0.group({})
    before, after, _ = _two_snapshots([g], [g], used=(0, 0), growth=(7, 7), seeds=(1, 2))
    d = diff(before, after)
    assert d.changes == () and d.reseeded
    assert d.header_changes == {"seed": (1, 2)}


def test_positional_and_by_location_diffs_agree() -> None:
    from dlvsnap.diff import _by_location

    sm0 = SwissMap(load_layout("swiss", "go1.26.8", 8, True))
    full = {i: (i + 1, i) for i in range(8)}
    before, after, _ = _two_snapshots(
        [sm0.group(full), sm0.group({1: (9, 50)})],
        [sm0.group({i: v for i, v in full.items() if i != 4}, deleted=(4,)), sm0.group({})],
        used=(9, 7),
        growth=(5, 6),
    )
    assert before.shape == after.shape and before.shape
    fast = diff(before, after).changes
    slow = tuple(sorted(_by_location(before, after), key=lambda c: c.loc.sort_key()))
    assert fast == slow and len(fast) == 2
