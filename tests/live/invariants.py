"""The invariants every watched delete must satisfy, checked against the program's own view."""

from __future__ import annotations

import hashlib
import struct
from typing import Any

from tests.support import OracleLine, WatchRun


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
    """For each delete: the deleted key, slots leaving full, count, and live keys."""
    deletes = run.of("delete")
    assert len(deletes) == len(oracle) > 0, (len(deletes), len(oracle), run.stderr)
    for ev, orc in zip(deletes, oracle, strict=True):
        where = f"delete #{ev['seq']} of key {orc.key}"
        assert encode(ev["key"], kind) == orc.key, where
        left = [
            c for c in ev["changes"] if c["before_state"] == "full" and c["after_state"] != "full"
        ]
        entered = [
            c for c in ev["changes"] if c["after_state"] == "full" and c["before_state"] != "full"
        ]
        assert entered == [], where
        if orc.present:
            assert len(left) == 1, (where, ev["changes"])
            assert encode(left[0]["key"], kind) == orc.key, where
            assert left[0]["after_state"] in ("empty", "deleted"), where
            assert ev["count_after"] == ev["count_before"] - 1, where
            assert ev["key_present"] is True
        else:
            assert left == [], where
            assert ev["count_after"] == ev["count_before"], where
            assert ev["key_present"] is False
        assert ev["count_after"] == orc.length, where
        live = ev["live_keys"]
        assert len(live) == orc.length, where
        assert digest(live, kind) == orc.digest, where
        assert ev["warnings"] == [], (where, ev["warnings"])
