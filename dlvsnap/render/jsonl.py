"""JSON Lines output. The schema is documented in docs/json-schema.md; bump SCHEMA_VERSION
on any incompatible change."""

from __future__ import annotations

import json
from typing import IO, TYPE_CHECKING, Any

from dlvsnap.model import DeleteEvent, FinalSnapshot, MapSnapshot, Summary, key_to_json
from dlvsnap.phases import Figures, Phase, change, verdict
from dlvsnap.target import TargetInfo

if TYPE_CHECKING:
    from dlvsnap.census.result import Census, MapEntry

SCHEMA_VERSION = 2  # 2: struct, array, pointer and interface keys tagged (Keys), not hex
READABLE_VERSIONS = (1, 2)  # what `dlvsnap report` reads


def _line(out: IO[str], obj: dict[str, Any]) -> None:
    out.write(json.dumps({"v": SCHEMA_VERSION, **obj}, separators=(",", ":")) + "\n")
    out.flush()


def start(
    out: IO[str],
    target: TargetInfo,
    expr: str,
    delve: str,
    *,
    site: str | None = None,
    mode: str = "watchpoint",
    maps: tuple[str, ...] = (),
    until: str | None = None,
) -> None:
    """``expr``: the (first) watched map; ``maps``: every one, when there are several (then
    events, snapshots and summaries carry ``map``)."""
    _line(
        out,
        {
            "event": "start",
            "map": expr,
            **({"maps": list(maps)} if len(maps) > 1 else {}),
            "site": site,
            "mode": mode,
            "until": until,
            "go_version": target.go_version,
            "experiments": list(target.experiments),
            "goarch": target.goarch,
            "ptr_size": target.ptr_size,
            "map_impl": target.map_impl,
            "delve": delve,
        },
    )


def _header(s: MapSnapshot) -> dict[str, Any]:
    return {k: v for k, v in s.header.items() if not isinstance(v, dict)}


def event(out: IO[str], ev: DeleteEvent, live_keys: bool) -> None:
    d = ev.diff
    obj: dict[str, Any] = {
        "event": ev.op,
        **({"map": ev.map} if ev.map else {}),
        "seq": ev.seq,
        "entry": ev.entry,
        "via": ev.via or None,
        "goroutine": ev.goroutine,
        "function": ev.location.function,
        "file": ev.location.file,
        "line": ev.location.line,
        "map_addr": ev.after.addr,
        "key": key_to_json(ev.key) if ev.key_decoded else None,
        # delete: the key was there (and went); assign: it was there (its value replaced)
        "key_present": (
            d.count_after == d.count_before if ev.op == "assign" else d.count_after < d.count_before
        ),
        "count_before": d.count_before,
        "count_after": d.count_after,
        "changes": [c.to_json() for c in d.changes],
        "header_changes": {
            k: [b, a] for k, (b, a) in d.header_changes.items() if not isinstance(b, dict)
        },
        "table_changes": {
            str(i): {f: [b, a] for f, (b, a) in ch.items()} for i, ch in d.table_changes.items()
        },
        "reseeded": d.reseeded,
        "moved": [d.moved[0], d.moved[1]] if d.moved else None,
        "tombstones": ev.after.tombstones,
        "memory": ev.after.memory.to_json(),
        "layout": ev.after.layout,
        "header": _header(ev.after),
        "warnings": list(ev.all_warnings()),
        "partial": d.partial,
    }
    if live_keys:
        obj["live_keys"] = [key_to_json(k) for k in ev.after.live_keys()]
    _line(out, obj)


def snapshot(out: IO[str], snap: MapSnapshot, map_name: str = "") -> None:
    """The map before the first delete, compactly: its groups/buckets in snapshot order and
    one state character per slot. A slot's place comes from its label (``t0/g3/s5``:
    group ``t0/g3``, slot 5); a place no slot fills is ``?``."""
    _line(
        out,
        {
            "event": "snapshot",
            **({"map": map_name} if map_name else {}),
            "seq": 0,
            "impl": snap.impl,
            "slots_per_group": snap.rows.slots_per_row,
            "groups": snap.group_labels(),
            "states": snap.state_chars(),
            "count": snap.count,
            "memory": snap.memory.to_json(),
        },
    )


def note(out: IO[str], kind: str, message: str, data: dict[str, Any]) -> None:
    _line(out, {"event": "note", "kind": kind, "message": message, **data})


def summary(out: IO[str], s: Summary, reader: str, map_name: str = "") -> None:
    obj: dict[str, Any] = {
        "event": "summary",
        **({"map": map_name} if map_name else {}),
        "deletes": s.deletes,
        "clears": s.clears,
        "keys_removed": s.keys_removed,
        "absent_deletes": s.absent_deletes,
        "assigns": s.assigns,
        "keys_added": s.keys_added,
        "exit_status": s.exit_status,
        "stopped_early": s.stopped_early,
        "mode": s.mode or None,
        "mode_why": s.mode_why or None,
        "missed": s.missed,
        "memory_reader": reader,
    }
    if s.last is not None:
        obj["tombstones"] = s.tombstones
        obj["count"] = s.last.count
        obj["memory"] = s.last.memory.to_json()
    if s.first is not None:
        obj["memory_before_first"] = s.first.memory.to_json()
    obj.update(_ended(s))
    obj["advice"] = s.advice or None
    _line(out, obj)


def _phase_obj(p: Phase) -> dict[str, Any]:
    loc = p.location
    return {
        "phase": p.n,
        "at": p.at,
        "location": {"function": loc.function, "file": loc.file, "line": loc.line},
        **p.figures.to_json(),
    }


def phase_line(p: Phase, prev: Figures | None, state: dict[str, Any]) -> str:
    """One stop of ``snap --at A --at B``: its figures, what changed from the phase before
    ("" for the first) and the decoded state (as ``snap --json`` prints it)."""
    obj = {
        "v": SCHEMA_VERSION,
        "event": "phase",
        **_phase_obj(p),
        "changed": "" if prev is None else change(prev, p.figures),
        "state": state,
    }
    return json.dumps(obj, separators=(",", ":"))


def phases_line(
    phases: list[Phase], asked: int, *, expr: str, target: TargetInfo, pid: int, advice: str = ""
) -> str:
    """The last line of ``snap --at A --at B --json``: the map and the process, every
    phase's figures, how many stops were asked for, and the verdict."""
    obj = {
        "v": SCHEMA_VERSION,
        "event": "phases",
        "map": expr,
        "go_version": target.go_version,
        "map_impl": target.map_impl,
        "pid": pid,
        "asked": asked,
        "phases": [
            {**_phase_obj(p), "changed": "" if i == 0 else change(phases[i - 1].figures, p.figures)}
            for i, p in enumerate(phases)
        ],
        "verdict": verdict(phases),
        "advice": advice or None,
    }
    return json.dumps(obj, separators=(",", ":"))


def _ended(s: Summary) -> dict[str, Any]:
    """Where the watch ended, the map there (--until), and what became of the program."""
    at = s.ended_at
    return {
        "ended": s.ended or None,
        "ended_at": (
            {"function": at.function, "file": at.file, "line": at.line}
            | {"goroutine": s.ended_goroutine}
            if at is not None
            else None
        ),
        "final": _final(s.final) if s.final is not None else None,
        "after_watch": s.after or None,
    }


def _final(f: FinalSnapshot) -> dict[str, Any]:
    snap = f.snapshot
    return {
        "how": f.how,
        "note": f.note or None,
        "map_addr": snap.addr if snap else None,
        "count": snap.count if snap else None,
        "capacity": f.capacity if snap else None,
        "tombstones": snap.tombstones if snap else None,
        "memory": snap.memory.to_json() if snap else None,
    }


def census_map(m: MapEntry, advice: str = "") -> str:
    """One map of ``dlvsnap maps --json``."""
    obj = {
        "v": SCHEMA_VERSION,
        "event": "map",
        "path": m.path,
        "steps": m.steps,
        "beyond_len": m.beyond_len,
        "type": m.type_name,
        "impl": m.impl,
        **m.figures.to_json(),
        "waste_bytes": m.waste,
        "warnings": list(m.warnings),
        "advice": advice or None,
    }
    return json.dumps(obj, separators=(",", ":"))


def census_line(
    c: Census, shown: int, *, target: TargetInfo, pid: int, source: str, reader: str
) -> str:
    """The last line of ``dlvsnap maps --json``: totals, what the walk did, and what it
    could not follow."""
    obj = {
        "v": SCHEMA_VERSION,
        "event": "census",
        "go_version": target.go_version,
        "map_impl": target.map_impl,
        "pid": pid,
        "source": source,
        "reader": reader,
        "maps": len(c.maps),
        "shown": shown,
        "held_bytes": c.held,
        "needed_bytes": c.needed,
        "waste_bytes": c.waste,
        "objects_read": c.stats.objects,
        "bytes_read": c.stats.bytes_read,
        "roots": {
            "package_vars": c.roots.globals,
            "goroutines": c.roots.goroutines,
            "frames": c.roots.frames,
            "locals": c.roots.locals,
            "skipped": c.roots.skipped,
        },
        "unreadable_pointers": c.stats.unreadable,
        "unknown_interface_types": c.stats.unknown_types,
        "not_followed": c.stats.not_followed,
        "undecoded_maps": c.undecoded,
        "seconds": {k: round(v, 3) for k, v in c.seconds.items()},
    }
    return json.dumps(obj, separators=(",", ":"))
