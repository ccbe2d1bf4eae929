"""Compare two snapshots of the same map slot by slot (pure, vectorised)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from dlvsnap.model import UNLINKED, MapDiff, MapSnapshot, SlotChange, Table

_TABLE_FIELDS = ("used", "capacity", "growth_left", "local_depth", "n_groups", "groups_addr")


def diff(before: MapSnapshot, after: MapSnapshot) -> MapDiff:
    changes = _slot_changes(before, after)
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
        partial=before.partial or after.partial,
    )


def _slot_changes(before: MapSnapshot, after: MapSnapshot) -> list[SlotChange]:
    b, a = before.rows, after.rows
    if (
        before.shape == after.shape
        and before.partial == after.partial
        and len(b) == len(a)
        and np.array_equal(b.addr, a.addr)
    ):
        # the same rows in the same order: compare position by position
        pos = np.flatnonzero(b.ctrl != a.ctrl)
        return [_change(before, after, int(p), int(p)) for p in pos]
    return _by_location(before, after)


def _by_location(before: MapSnapshot, after: MapSnapshot) -> list[SlotChange]:
    """Match rows by location: tables, arrays or chains changed (or one side is partial)."""
    b, a = before.rows, after.rows
    kb, ka = b.row_keys(), a.row_keys()
    _, ib, ia = np.intersect1d(kb, ka, assume_unique=True, return_indices=True)
    n = b.slots_per_row
    sb, sa = _slots_of(ib, n), _slots_of(ia, n)
    moved = np.flatnonzero(b.ctrl[sb] != a.ctrl[sa])
    out = [_change(before, after, int(sb[i]), int(sa[i])) for i in moved]
    if before.partial == after.partial:
        # rows only one side has: unreachable on the other (classic: oldbuckets released,
        # an overflow chain cut by mapclear, an overflow bucket linked in); two partial
        # snapshots read the same chain or groups, so this holds for them too
        for p in _slots_of(np.setdiff1d(np.arange(len(b)), ib), n).tolist():
            s = before.slot(p)
            out.append(SlotChange(s.loc, s.byte, None, s.state, UNLINKED, s.key))
        for p in _slots_of(np.setdiff1d(np.arange(len(a)), ia), n).tolist():
            s = after.slot(p)
            out.append(SlotChange(s.loc, None, s.byte, UNLINKED, s.state, None, s.key))
    return out


def _slots_of(rows: NDArray[np.int64], n: int) -> NDArray[np.int64]:
    return (rows[:, None] * n + np.arange(n)).reshape(-1)


def _change(before: MapSnapshot, after: MapSnapshot, pb: int, pa: int) -> SlotChange:
    s, t = before.slot(pb), after.slot(pa)
    return SlotChange(s.loc, s.byte, t.byte, s.state, t.state, s.key, t.key)


def _table_delta(b: Table, a: Table) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for f in _TABLE_FIELDS:
        vb, va = getattr(b, f), getattr(a, f)
        if vb != va:
            out[f] = (vb, va)
    return out
