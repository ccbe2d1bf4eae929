"""The runtime's delete rules, checked on one event's snapshots (pure).

Each rule is a statement about what the Go runtime does on delete (see
../shared/reference/go-map-layouts.md, A.4 and B.4), written so that its outcome does not
depend on the random hash seed: where a slot lands is random, which rule applies to it is
not. `dlvsnap regress` records, per event, which rules applied and whether they held; a
runtime change between two Go releases then reads as a different line in the goldens.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlvsnap.model import (
    DELETED,
    EMPTY,
    EMPTY_ONE,
    EMPTY_REST,
    EVACUATED_X,
    EVACUATED_Y,
    FULL,
    SEED_FIELD,
    UNLINKED,
    DeleteEvent,
    MapSnapshot,
    Slot,
    SlotChange,
)

EMPTIED = {EMPTY, DELETED, EMPTY_ONE, EMPTY_REST, UNLINKED}

# Rule ids and what they state; the ids appear in goldens.
RULES = {
    "key-emptied": "the slot that held the deleted key left full, and no other entry was lost",
    "absent-nothing": "deleting an absent key emptied no full slot",
    "count": "the header count fell by one for a present key, and not otherwise",
    "small-empty": "small map: the slot became empty (small maps never hold tombstones)",
    "group-rule": "table map: the slot became empty if its group had another empty slot, "
    "else deleted (a tombstone)",
    "growthLeft": "table map: growthLeft rose by one iff the slot became empty",
    "tombstonePossible": "Map.tombstonePossible was set when a tombstone was written",
    "chain-rule": "classic: the slot became emptyOne, or emptyRest when no full slot follows "
    "it in its chain (or, in a growing map, it was evacuated and deleted at its "
    "destination); emptyRest slots end every chain touched",
    "only-slot": "no other slot changed, except entries a growing classic map's evacuation "
    "moved, which were neither lost nor duplicated",
    "seed": "the hash seed was re-randomised iff the map became empty",
    "clear-all": "clear: every full slot was emptied and the count is 0",
    "clearSeq": "clear: clearSeq rose by one",
    "memory-kept": "no bucket, group or table memory was freed",
    "decodes": "both snapshots decode consistently (count = full slots)",
}


@dataclass(frozen=True)
class Check:
    rule: str
    ok: bool
    detail: str = ""

    def __str__(self) -> str:
        return self.rule if self.ok else f"!{self.rule}({self.detail})"


def check(ev: DeleteEvent) -> list[Check]:
    b, a, d = ev.before, ev.after, ev.diff
    out: list[Check] = [
        Check("decodes", not b.warnings and not a.warnings, "; ".join(b.warnings + a.warnings))
    ]
    if ev.op == "clear":
        out += _clear(b, a, d.changes)
    else:
        out += _delete(ev)
    seed = SEED_FIELD[a.impl]
    reseeded = seed in d.header_changes
    out.append(
        Check(
            "seed",
            reseeded == (a.count == 0 and b.count > 0),
            f"seed {'changed' if reseeded else 'kept'} at count {a.count}",
        )
    )
    mb, ma = b.memory, a.memory
    kept = ma.groups == mb.groups and ma.tables == mb.tables and ma.directory == mb.directory
    if b.impl == "classic":
        # a finished grow releases oldbuckets: that is the grow's doing, not the delete's
        kept = ma.groups == mb.groups and ma.old in (0, mb.old)
    out.append(Check("memory-kept", kept, f"{mb.held} -> {ma.held} bytes"))
    return out


def _left_full(changes: tuple[SlotChange, ...]) -> list[SlotChange]:
    return [c for c in changes if c.before_state == FULL and c.after_state != FULL]


def _entered_full(changes: tuple[SlotChange, ...]) -> list[SlotChange]:
    return [c for c in changes if c.after_state == FULL and c.before_state != FULL]


def _delete(ev: DeleteEvent) -> list[Check]:
    b, a, d = ev.before, ev.after, ev.diff
    present = d.count_after < d.count_before
    out = [
        Check(
            "count",
            d.count_after == d.count_before - int(present),
            f"{d.count_before} -> {d.count_after}",
        )
    ]
    left, entered = _left_full(d.changes), _entered_full(d.changes)
    # keys that left full and did not reappear elsewhere (evacuation moves net out)
    gone = [c for c in left if not any(e.after_key == c.key for e in entered)]
    appeared = [e for e in entered if not any(c.key == e.after_key for c in left)]
    if not present:
        out.append(
            Check(
                "absent-nothing",
                not gone and not appeared,
                f"{len(gone)} emptied, {len(appeared)} appeared",
            )
        )
        if b.impl == "classic":
            out.append(_only_evacuation(d.changes, set()))
        else:
            out.append(Check("only-slot", not d.changes, f"{len(d.changes)} slots changed"))
        return out
    ok = len(gone) == 1 and not appeared and (not ev.key_decoded or gone[0].key == ev.key)
    out.append(Check("key-emptied", ok, f"{len(gone)} emptied, {len(appeared)} appeared"))
    if len(gone) != 1:
        return out
    s = gone[0]
    if b.impl == "swiss":
        out += _swiss_slot(b, a, s, d.changes)
    else:
        out += _classic_slot(a, s, d.changes)
    return out


def _swiss_slot(
    b: MapSnapshot, a: MapSnapshot, s: SlotChange, changes: tuple[SlotChange, ...]
) -> list[Check]:
    out: list[Check] = []
    if s.loc.table < 0:
        out.append(Check("small-empty", s.after_state == EMPTY, s.after_state))
    else:
        group_had_empty = any(
            x.state == EMPTY and x.loc.table == s.loc.table and x.loc.group == s.loc.group
            for x in b.slots
        )
        want = EMPTY if group_had_empty else DELETED
        out.append(
            Check(
                "group-rule",
                s.after_state == want,
                f"{s.after_state}, group had {'an' if group_had_empty else 'no'} empty slot",
            )
        )
        tb = next((t for t in b.tables if t.index == s.loc.table), None)
        ta = next((t for t in a.tables if t.index == s.loc.table), None)
        if tb is not None and ta is not None:
            delta = ta.growth_left - tb.growth_left
            out.append(
                Check(
                    "growthLeft",
                    delta == int(s.after_state == EMPTY),
                    f"{tb.growth_left} -> {ta.growth_left}",
                )
            )
        if "tombstonePossible" in a.header:
            want_flag = bool(b.header["tombstonePossible"]) or s.after_state == DELETED
            out.append(
                Check(
                    "tombstonePossible",
                    bool(a.header["tombstonePossible"]) == want_flag,
                    f"{b.header['tombstonePossible']} -> {a.header['tombstonePossible']}",
                )
            )
    others = [c for c in changes if c is not s]
    out.append(Check("only-slot", not others, f"{len(others)} other slots changed"))
    return out


def _chain(snap: MapSnapshot, group: int, old: bool) -> list[Slot]:
    """A classic bucket's slots followed by its overflow buckets' slots, in chain order."""
    return sorted(
        (x for x in snap.slots if x.loc.group == group and x.loc.old == old),
        key=lambda x: (x.loc.overflow, x.loc.slot),
    )


def _chain_ok(chain: list[Slot]) -> bool:
    """emptyRest slots form a suffix of the chain, not preceded by an emptyOne slot."""
    states = [x.state for x in chain]
    first_rest = next((i for i, st in enumerate(states) if st == EMPTY_REST), len(states))
    if any(st != EMPTY_REST for st in states[first_rest:]):
        return False
    return first_rest == 0 or states[first_rest - 1] != EMPTY_ONE


def _classic_slot(a: MapSnapshot, s: SlotChange, changes: tuple[SlotChange, ...]) -> list[Check]:
    out: list[Check] = []
    touched = {(c.loc.group, c.loc.old) for c in changes if c.after_state in EMPTIED}
    chains_ok = all(_chain_ok(_chain(a, group, old)) for group, old in touched)
    if s.loc.old:  # in an old bucket: evacuated first, then deleted at its destination
        ok = s.after_state in (EVACUATED_X, EVACUATED_Y, UNLINKED) and chains_ok
    else:
        chain = _chain(a, s.loc.group, s.loc.old)
        after = next(x for x in chain if x.loc == s.loc)
        later = [x for x in chain if (x.loc.overflow, x.loc.slot) > (s.loc.overflow, s.loc.slot)]
        want = EMPTY_REST if all(x.state == EMPTY_REST for x in later) else EMPTY_ONE
        ok = after.state == want and chains_ok
    out.append(Check("chain-rule", ok, s.after_state))
    cascade = {
        c.loc
        for c in changes
        if c.before_state == EMPTY_ONE
        and c.after_state == EMPTY_REST
        and c.loc.group == s.loc.group
        and c.loc.old == s.loc.old
    }
    out.append(_only_evacuation(changes, {s.loc} | cascade))
    return out


def _only_evacuation(changes: tuple[SlotChange, ...], allowed: set[object]) -> Check:
    """Besides the allowed slots, changes must be evacuation: old slots evacuated or
    released, new slots filled by moved entries (or new empty overflow buckets)."""
    growing = any(c.loc.old for c in changes)
    rest = [c for c in changes if c.loc not in allowed]
    if not growing:
        return Check("only-slot", not rest, f"{len(rest)} other slots changed")
    left = [c.key for c in rest if c.before_state == FULL and c.after_state != FULL]
    entered = [c.after_key for c in rest if c.after_state == FULL and c.before_state != FULL]
    ok = sorted(map(repr, left)) == sorted(map(repr, entered))
    return Check("only-slot", ok, f"{len(left)} entries left, {len(entered)} arrived")


def _clear(b: MapSnapshot, a: MapSnapshot, changes: tuple[SlotChange, ...]) -> list[Check]:
    full_before = sum(1 for x in b.slots if x.state == FULL)
    emptied = [c for c in changes if c.before_state == FULL and c.after_state in EMPTIED]
    out = [
        Check(
            "clear-all",
            a.count == 0 and len(emptied) == full_before,
            f"{len(emptied)} of {full_before} emptied, count {a.count}",
        )
    ]
    if "clearSeq" in a.header:
        out.append(
            Check(
                "clearSeq",
                a.header["clearSeq"] == b.header["clearSeq"] + 1,
                f"{b.header['clearSeq']} -> {a.header['clearSeq']}",
            )
        )
    return out
