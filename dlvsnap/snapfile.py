"""Saved snapshots: a versioned JSON document (docs/snapshot-format.md) with the target,
the layout, the map's decoded state, and the raw bytes it was decoded from, so that
``dlvsnap diff`` (or anyone) can decode it again offline with the same layouts.

Reading a file re-decodes its bytes and checks the result against the decoded state the
file carries: a file that was cut short, edited, or decodes differently under this
dlvsnap's layouts is refused with one line that says which.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlvsnap import __version__
from dlvsnap.decode import decode_map_type, make_decoder
from dlvsnap.errors import DlvsnapError, LayoutError, MemoryReadError, SnapshotFileError
from dlvsnap.layouts import load_layout
from dlvsnap.memory import SparseMem
from dlvsnap.model import Location, MapSnapshot, key_to_json
from dlvsnap.render.jsonl import STATE_CHARS
from dlvsnap.target import TargetInfo

FORMAT = "dlvsnap-snapshot"
VERSION = 1


@dataclass(frozen=True)
class SavedSnapshot:
    """A snapshot file, read and decoded again."""

    path: str
    target: TargetInfo
    expr: str
    type_name: str
    location: Location | None
    created: str
    snapshot: MapSnapshot


def state_of(snap: MapSnapshot) -> dict[str, Any]:
    """The decoded state a file carries (and a reader checks): counts, memory, header,
    tables, one state character per slot and the live keys."""
    table = bytes(ord(STATE_CHARS.get(st, "?")) for st in snap.states)
    rows = snap.rows
    return {
        "impl": snap.impl,
        "layout": snap.layout,
        "count": snap.count,
        "tombstones": snap.tombstones,
        "memory": snap.memory.to_json(),
        "header": {k: v for k, v in snap.header.items() if not isinstance(v, dict)},
        "tables": [
            {
                "index": t.index,
                "used": t.used,
                "capacity": t.capacity,
                "growth_left": t.growth_left,
                "local_depth": t.local_depth,
                "groups": t.n_groups,
            }
            for t in snap.tables
        ],
        "groups": [
            str(rows.loc(r * rows.slots_per_row)).rpartition("/s")[0] for r in range(len(rows))
        ],
        "states": rows.ctrl.tobytes().translate(table).decode(),
        "live_keys": [key_to_json(k) for k in snap.live_keys()],
    }


def save(
    path: str | Path,
    snap: MapSnapshot,
    *,
    target: TargetInfo,
    expr: str,
    type_addr: int,
    type_name: str,
    regions: dict[int, bytes],
    location: Location | None = None,
) -> None:
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "dlvsnap": __version__,
        "target": {
            "path": target.path,
            "go_version": target.go_version,
            "experiments": list(target.experiments),
            "goarch": target.goarch,
            "ptr_size": target.ptr_size,
            "little_endian": target.little_endian,
            "map_impl": target.map_impl,
        },
        "map": {
            "expr": expr,
            "type": type_name,
            "addr": snap.addr,
            "type_addr": type_addr,
            "location": None
            if location is None
            else {"function": location.function, "file": location.file, "line": location.line},
        },
        "state": state_of(snap),
        "memory": {
            "encoding": "zlib+base64",
            "regions": [
                [addr, len(data), base64.b64encode(zlib.compress(data, 1)).decode()]
                for addr, data in sorted(regions.items())
            ],
        },
    }
    try:
        Path(path).write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    except OSError as e:
        raise SnapshotFileError(f"{path}: cannot write: {e.strerror}") from None


def load(path: str | Path) -> SavedSnapshot:
    name = str(path)
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise SnapshotFileError(
            f"{name}: cannot read: {getattr(e, 'strerror', None) or e}"
        ) from None
    try:
        doc = json.loads(text)
    except ValueError:
        raise SnapshotFileError(
            f"{name}: not JSON (truncated, or not written by `dlvsnap snap --save`)"
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SnapshotFileError(f"{name}: not a dlvsnap snapshot file")
    if doc.get("version") != VERSION:
        raise SnapshotFileError(
            f"{name}: snapshot format version {doc.get('version')}; this dlvsnap reads {VERSION}"
        )
    try:
        return _decode(name, doc)
    except (KeyError, TypeError, ValueError, binascii.Error, zlib.error) as e:
        raise SnapshotFileError(
            f"{name}: malformed snapshot file ({type(e).__name__}: {e})"
        ) from None


def _decode(name: str, doc: dict[str, Any]) -> SavedSnapshot:
    t, m = doc["target"], doc["map"]
    target = TargetInfo(
        path=str(t["path"]),
        go_version=str(t["go_version"]),
        experiments=tuple(t["experiments"]),
        goarch=str(t["goarch"]),
        ptr_size=int(t["ptr_size"]),
        little_endian=bool(t["little_endian"]),
        map_impl=str(t["map_impl"]),
    )
    mem = SparseMem()
    for addr, size, data in doc["memory"]["regions"]:
        raw = zlib.decompress(base64.b64decode(data, validate=True))
        if len(raw) != size:
            raise ValueError(f"region at {addr:#x} holds {len(raw)} bytes, not {size}")
        mem.add(int(addr), raw)
    try:
        layout = load_layout(
            target.map_impl, target.go_version, target.ptr_size, target.little_endian
        )
        mt = decode_map_type(layout, mem, int(m["type_addr"]))
        snap = make_decoder(layout, mem, mt).snapshot(int(m["addr"]))
    except (LayoutError, MemoryReadError) as e:
        raise SnapshotFileError(f"{name}: cannot decode its bytes again: {e}") from None
    except DlvsnapError as e:
        raise SnapshotFileError(f"{name}: {e}") from None
    want, got = doc["state"], state_of(snap)
    for k in ("layout", "count", "states", "groups", "live_keys", "memory"):
        if want.get(k) != got[k]:
            raise SnapshotFileError(
                f"{name}: its bytes decode to a different {k} than the file records "
                "(edited, or decoded by different layouts)"
            )
    loc = m.get("location")
    return SavedSnapshot(
        path=name,
        target=target,
        expr=str(m["expr"]),
        type_name=str(m["type"]),
        location=None if loc is None else Location(loc["function"], loc["file"], int(loc["line"])),
        created=str(doc.get("created", "")),
        snapshot=snap,
    )
