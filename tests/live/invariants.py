"""The invariants every watched delete must satisfy, checked against the program's own view."""

from __future__ import annotations

import hashlib
import struct
from collections import Counter
from typing import Any

from tests.support import OracleLine, WatchRun

EMPTY_STATES = {"empty", "deleted", "emptyOne", "emptyRest"}


def encode(key: Any, kind: str) -> str:
    """A decoded key (as dlvsnap's JSON carries it) in the oracle's encoding."""
    if kind == "int":
        assert isinstance(key, int) and not isinstance(key, bool), key
        return str(key)
    if kind == "string":
        if isinstance(key, dict):
            return str(key["hex"])
        assert isinstance(key, str), key
        return key.encode().hex()
    if kind == "float":
        f = float(key["float"]) if isinstance(key, dict) else float(key)
        return str(struct.unpack("<Q", struct.pack("<d", f))[0])
    if kind == "bool":
        assert isinstance(key, bool), key
        return "true" if key else "false"
    if kind == "bytes":
        return str(key["hex"])
    raise AssertionError(kind)


def digest(keys: list[Any], kind: str) -> str:
    enc = sorted(encode(k, kind) for k in keys)
    return hashlib.sha256(",".join(enc).encode()).hexdigest()


def check_deletes(run: WatchRun, oracle: list[OracleLine], kind: str) -> None:
    """For each delete: the deleted key, slots leaving full, count, and live keys.

    The keys of slots that left full, minus the keys of slots that became full, are exactly
    the deleted key (present) or nothing (absent): entries a classic map's evacuation moves
    during growth leave an old slot and fill a new one, and net out. Without evacuation the
    stricter form holds: a present key's delete empties exactly one full slot, the one that
    held the key; an absent key's delete changes no full slot.
    """
    deletes = run.of("delete")
    assert len(deletes) == len(oracle) > 0, (len(deletes), len(oracle), run.stderr)
    for ev, orc in zip(deletes, oracle, strict=True):
        where = f"delete #{ev['seq']} of key {orc.key}"
        assert encode(ev["key"], kind) == orc.key, where
        ch = ev["changes"]
        left = Counter(
            encode(c["key"], kind)
            for c in ch
            if c["before_state"] == "full" and c["after_state"] != "full"
        )
        entered = Counter(
            encode(c["after_key"], kind)
            for c in ch
            if c["after_state"] == "full" and c["before_state"] != "full"
        )
        odd = [c for c in ch if c["before_state"] == "full" and c["after_state"] == "full"]
        assert odd == [], (where, odd)  # a control byte never changes between two full values
        assert entered - left == Counter(), (where, "entries appeared from nowhere", ch)
        gone = left - entered
        assert gone == (Counter({orc.key: 1}) if orc.present else Counter()), (where, gone)
        if not any(c["old"] for c in ch):  # no evacuation work in this call
            emptied = [c for c in ch if c["before_state"] == "full"]
            assert len(emptied) == int(orc.present), (where, ch)
            assert all(c["after_state"] in EMPTY_STATES for c in emptied), (where, ch)
        assert ev["key_present"] is orc.present, where
        assert ev["count_after"] == ev["count_before"] - int(orc.present), where
        assert ev["count_after"] == orc.length, where
        if "live_keys" in ev:  # with --live-keys
            live = ev["live_keys"]
            assert len(live) == orc.length, where
            assert digest(live, kind) == orc.digest, where
        assert ev["warnings"] == [], (where, ev["warnings"])
