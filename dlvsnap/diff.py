"""Compare two snapshots of the same map slot by slot (pure)."""

from __future__ import annotations

from typing import Any

from dlvsnap.model import UNLINKED, MapDiff, MapSnapshot, SlotChange, Table

_TABLE_FIELDS = ("used", "capacity", "growth_left", "local_depth", "n_groups", "groups_addr")


def diff(before: MapSnapshot, after: MapSnapshot) -> MapDiff:
    changes: list[SlotChange] = []
    if before.shape and before.shape == after.shape:
        # same locations in the same order: compare position by position
        for s, a in zip(before.slots, after.slots, strict=True):
            if a.byte != s.byte:
                changes.append(SlotChange(s.loc, s.byte, a.byte, s.state, a.state, s.key, a.key))
    else:
        changes = _by_location(before, after)
    header: dict[str, tuple[Any, Any]] = {}
    for k, v in before.header.items():
        w = after.header.get(k)
        if w != v:
            header[k] = (v, w)
    bt = {t.index: t for t in before.tables}
    at = {t.index: t for t in after.tables}
    table_changes: dict[int, dict[str, tuple[int, int]]] = {}
    for idx in sorted(bt.keys() & at.keys()):
        d = _table_delta(bt[idx], at[idx])
        if d:
            table_changes[idx] = d
    return MapDiff(
        changes=tuple(sorted(changes, key=lambda c: c.loc.sort_key())),
        count_before=before.count,
        count_after=after.count,
        header_changes=header,
        table_changes=table_changes,
        tables_added=tuple(sorted(at.keys() - bt.keys())),
        tables_removed=tuple(sorted(bt.keys() - at.keys())),
        moved=(before.addr, after.addr) if before.addr != after.addr else None,
    )


def _by_location(before: MapSnapshot, after: MapSnapshot) -> list[SlotChange]:
    """Match slots by location when the structure changed (tables, arrays, chains)."""
    before_slots, after_slots = before.slot_map(), after.slot_map()
    changes: list[SlotChange] = []
    for s in before.slots:
        a = after_slots.get(s.loc)
        if a is None:  # e.g. classic: oldbuckets released, overflow chain cut by mapclear
            changes.append(SlotChange(s.loc, s.byte, None, s.state, UNLINKED, s.key))
        elif a.byte != s.byte:
            changes.append(SlotChange(s.loc, s.byte, a.byte, s.state, a.state, s.key, a.key))
    for a in after.slots:
        if a.loc not in before_slots:  # e.g. classic: an overflow bucket linked in
            changes.append(SlotChange(a.loc, None, a.byte, UNLINKED, a.state, None, a.key))
    return changes


def _table_delta(b: Table, a: Table) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for f in _TABLE_FIELDS:
        vb, va = getattr(b, f), getattr(a, f)
        if vb != va:
            out[f] = (vb, va)
    return out
