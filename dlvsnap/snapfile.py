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

from dlvsnap import __version__, untrusted
from dlvsnap.decode import decode_map_type, make_decoder
from dlvsnap.decode.types import KnownTypes
from dlvsnap.dwarf import MAX_TYPE_DEPTH, MAX_TYPE_PARTS
from dlvsnap.errors import DlvsnapError, LayoutError, MemoryReadError, SnapshotFileError
from dlvsnap.kinds import Kind
from dlvsnap.memory import SparseMem
from dlvsnap.model import SLOTS_PER_GROUP, GoField, GoType, Location, MapSnapshot, key_to_json
from dlvsnap.target import ProcessId, TargetInfo
from dlvsnap.untrusted import Fields, MalformedError
from dlvsnap.verify import choose_layout

FORMAT = "dlvsnap-snapshot"
# 2: `types`, and struct, array, pointer and interface keys decoded with them; 3: `memory`
# counts bytes as the Go allocator reserves them (size classes), with `structural_bytes`
# and `allocations`
VERSION = 3
# a version 1 file has no types: its keys of those kinds are bytes; a version 1 or 2 file
# counted memory by type sizes (and without a classic map's overflow slices): its memory
# is computed again, not compared
READS = (1, 2, 3)
MEMORY_SINCE = 3


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
    process: ProcessId | None = None  # files written before dlvsnap recorded it: None


def state_of(snap: MapSnapshot) -> dict[str, Any]:
    """The decoded state a file carries (and a reader checks): counts, memory, header,
    tables, one state character per slot and the live keys."""
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
        "groups": snap.group_labels(),
        "states": snap.state_chars(),
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
    types: dict[int, GoType] | None = None,
    location: Location | None = None,
    process: ProcessId | None = None,
) -> None:
    """Write a snapshot file: ``regions`` are the bytes ``snap`` was decoded from, and
    ``types`` the Go types (by their runtime types' addresses) its keys were decoded with;
    ``process`` the process it was taken in (``dlvsnap diff`` compares them)."""
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
        "types": [[addr, t.to_json()] for addr, t in sorted((types or {}).items())],
        "memory": {
            "encoding": "zlib+base64",
            "regions": [
                [addr, len(data), base64.b64encode(zlib.compress(data, 1)).decode()]
                for addr, data in sorted(regions.items())
            ],
        },
    }
    if process is not None:
        doc["process"] = {"pid": process.pid, "start": process.start}
    try:
        # allow_nan=False: never write what a reader refuses (keys' NaN/Inf are objects)
        Path(path).write_text(json.dumps(doc, separators=(",", ":"), allow_nan=False) + "\n")
    except OSError as e:
        raise SnapshotFileError(f"{path}: cannot write: {e.strerror}") from None


# What a file may hold (docs/snapshot-format.md, "Limits"): the decoder never reads more.
MAX_MEMORY_BYTES = 1 << 30  # all regions together, decompressed (28M entries of map[int]int)
MAX_REGIONS = 1 << 24
MAX_SLOTS = MAX_MEMORY_BYTES  # a slot takes at least 1 byte of its group (8 ctrl bytes / 8)
# A group/bucket holds 8 slots of keys and elems of at most 128 bytes each (larger ones are
# stored by pointer: the runtime's maxKeySize/maxElemSize), a control word and an overflow
# pointer: 2,064 bytes; doubled for alignment. The regions of a file may hold that per
# group its state lists, the directory (at most 2^20 pointers), and its keys' data (which
# the file also holds, as its live keys).
MAX_GROUP_BYTES = 4096
FIXED_BYTES = (8 << 20) + (64 << 10)  # the directory, the header and the type descriptors
MAX_LABEL = 64  # a group label: `old123+4`, `t1023/g127`
MAX_NAME = 1 << 16  # an expression, a type or function name
MAX_PATH = 4096  # PATH_MAX
MAX_SHORT = 64  # a Go release, an architecture, a layout's name, a time
MAX_TYPES = 4096  # the key type, and the dynamic types of interface keys
MAX_TYPE_SIZE = 1 << 40  # a type's size, an array's length


def _b64_bound(size: int) -> int:
    """The longest base64 text a region of ``size`` bytes can need: zlib's worst case
    (stored blocks: 5 bytes per 16 KiB, the 2-byte header and the Adler-32), generously."""
    return 4 * ((size + size // 1024 + 64) // 3 + 1)


def load(path: str | Path) -> SavedSnapshot:
    """A snapshot file, read and decoded again, or a SnapshotFileError in one line."""
    name = str(path)
    try:
        text = Path(path).read_bytes()
    except OSError as e:
        raise SnapshotFileError(f"{name}: cannot read: {e.strerror or e}") from None
    return loads(text, name)


def loads(text: bytes | str, name: str) -> SavedSnapshot:
    """The snapshot file ``name`` whose content is ``text`` (untrusted), decoded again."""
    try:
        doc = untrusted.parse(text)
    except MalformedError as e:
        raise SnapshotFileError(
            f"{name}: not JSON (truncated, or not written by `dlvsnap snap --save`): {e}"
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SnapshotFileError(f"{name}: not a dlvsnap snapshot file")
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise SnapshotFileError(
            f"{name}: its format version is {untrusted.describe(version)}, not an integer"
        )
    if version not in READS:
        raise SnapshotFileError(
            f"{name}: snapshot format version {version}; this dlvsnap reads "
            + ", ".join(map(str, READS[:-1]))
            + f" and {READS[-1]}"
        )
    try:
        return _decode(name, Fields(doc), len(text), version)
    except MalformedError as e:
        raise SnapshotFileError(f"{name}: malformed snapshot file: {e}") from None


def _target(t: Fields) -> TargetInfo:
    experiments = t.array("experiments", MAX_SHORT)
    return TargetInfo(
        path=t.string("path", MAX_PATH),
        go_version=t.string("go_version", MAX_SHORT),
        experiments=tuple(
            untrusted.as_str(x, f"target.experiments[{i}]", MAX_SHORT)
            for i, x in enumerate(experiments)
        ),
        goarch=t.string("goarch", MAX_SHORT),
        ptr_size=t.integer("ptr_size", 4, 8),
        little_endian=t.boolean("little_endian"),
        map_impl=t.string("map_impl", choices=("swiss", "classic")),
    )


def _regions(mem_doc: Fields, ptr_size: int, cap: int) -> SparseMem:
    """The regions, checked against what the format allows, then decompressed with a bound
    (their declared size + 1: a region that inflates past its size is refused at once)."""
    mem_doc.string("encoding", choices=("zlib+base64",))
    regions = mem_doc.array("regions", MAX_REGIONS)
    top = 1 << (8 * ptr_size)
    checked: list[tuple[int, int, str]] = []
    total = 0
    for i, r in enumerate(regions):
        # the types checked inline: a file may list millions of regions
        if type(r) is not list or len(r) != 3:
            raise MalformedError(
                f"memory.regions[{i}]: {untrusted.describe(r)}, not [address, size, data]"
            )
        addr, size, data = r
        if type(addr) is not int or not 0 <= addr < top:
            untrusted.as_int(addr, f"memory.regions[{i}][0]", 0, top - 1)
        if type(size) is not int or not 0 <= size <= min(MAX_MEMORY_BYTES, top - addr):
            untrusted.as_int(size, f"memory.regions[{i}][1]", 0, min(MAX_MEMORY_BYTES, top - addr))
        if type(data) is not str or len(data) > _b64_bound(size):
            untrusted.as_str(data, f"memory.regions[{i}][2]", _b64_bound(size))
        total += size
        if total > MAX_MEMORY_BYTES:
            raise MalformedError(
                f"memory.regions: more than {MAX_MEMORY_BYTES:,} bytes in all "
                f"(at memory.regions[{i}])"
            )
        if total > cap:
            raise MalformedError(
                f"memory.regions: more than the {cap:,} bytes the groups of its state and "
                f"its keys can need (at memory.regions[{i}])"
            )
        checked.append((addr, size, data))
    mem = SparseMem()
    for addr, size, data in sorted(checked):
        mem.add(addr, _inflate(data, size, addr))
    return mem


def _inflate(data: str, size: int, addr: int) -> bytes:
    try:
        z = binascii.a2b_base64(data, strict_mode=True)
        d = zlib.decompressobj()
        raw = d.decompress(z, size + 1)
    except (ValueError, zlib.error) as e:  # binascii.Error, or not ASCII
        raise MalformedError(f"region at {addr:#x}: not zlib+base64 ({e})") from None
    if len(raw) > size:
        raise MalformedError(f"region at {addr:#x} holds more than its {size:,} bytes")
    if not d.eof or d.unused_data or len(raw) < size:
        raise MalformedError(
            f"region at {addr:#x} holds {len(raw):,} bytes, not {size:,} (cut short, or edited)"
        )
    return raw


def _state(s: Fields) -> dict[str, Any]:
    """The fields of ``state`` a reader checks, with their types."""
    states = s.string("states", MAX_SLOTS)
    groups = s.array("groups", MAX_SLOTS // SLOTS_PER_GROUP)
    for i, g in enumerate(groups):
        untrusted.as_str(g, f"state.groups[{i}]", MAX_LABEL)
    return {
        "layout": s.string("layout", MAX_SHORT),
        "count": s.integer("count", 0, untrusted.I64_MAX),
        "states": states,
        "groups": groups,
        "live_keys": s.array("live_keys", MAX_SLOTS),
        "memory": s.obj("memory").d,
    }


def _location(m: Fields) -> Location | None:
    loc = m.opt_obj("location")
    if loc is None:
        return None
    return Location(
        loc.string("function", MAX_NAME),
        loc.string("file", MAX_PATH),
        loc.integer("line", 0, 2**31 - 1),
    )


def _process(doc: Fields) -> ProcessId | None:
    p = doc.opt_obj("process")
    if p is None:
        return None
    return ProcessId(p.integer("pid", 0, 2**31 - 1), p.opt_string("start", MAX_SHORT) or "")


def _types(doc: Fields, ptr_size: int) -> KnownTypes:
    """The file's ``types``: each a Go type described as GoType.to_json writes it, checked
    (its parts within MAX_TYPE_DEPTH levels and MAX_TYPE_PARTS in all)."""
    top = (1 << (8 * ptr_size)) - 1
    out: dict[int, GoType] = {}
    for i, entry in enumerate(doc.array("types", MAX_TYPES)):
        where = f"types[{i}]"
        pair = untrusted.as_list(entry, where, 2)
        if len(pair) != 2:
            raise MalformedError(f"{where}: not [address, type]")
        addr = untrusted.as_int(pair[0], f"{where}[0]", 1, top)
        out[addr] = _go_type(pair[1], f"{where}[1]", 0, [MAX_TYPE_PARTS])
    return KnownTypes(out)


def _go_type(v: Any, where: str, depth: int, parts: list[int]) -> GoType:
    parts[0] -= 1
    if depth > MAX_TYPE_DEPTH or parts[0] < 0:
        raise MalformedError(f"{where}: a type nested or sized past the format's limits")
    f = Fields(v, where)
    name = f.string("name", MAX_NAME)
    kind = f.integer("kind", 0, max(Kind))
    size = f.integer("size", 0, MAX_TYPE_SIZE)
    if kind == Kind.STRUCT:
        fields = []
        for j, x in enumerate(f.array("fields", MAX_TYPE_PARTS)):
            w = f"{where}.fields[{j}]"
            item = untrusted.as_list(x, w, 3)
            if len(item) != 3:
                raise MalformedError(f"{w}: not [name, offset, type]")
            fname = untrusted.as_str(item[0], f"{w}[0]", MAX_NAME)
            off = untrusted.as_int(item[1], f"{w}[1]", 0, size)
            fields.append(GoField(fname, off, _go_type(item[2], f"{w}[2]", depth + 1, parts)))
        return GoType(name, kind, size, fields=tuple(fields))
    if kind == Kind.ARRAY:
        elem = _go_type(f.raw("elem"), f.path("elem"), depth + 1, parts)
        return GoType(name, kind, size, elem=elem, length=f.integer("len", 0, MAX_TYPE_SIZE))
    if kind == Kind.INTERFACE:
        return GoType(name, kind, size, methods=f.boolean("methods"))
    return GoType(name, kind, size)


def _decode(name: str, doc: Fields, file_size: int, version: int) -> SavedSnapshot:
    target = _target(doc.obj("target"))
    types = _types(doc, target.ptr_size) if version >= 2 else None
    m = doc.obj("map")
    top = (1 << (8 * target.ptr_size)) - 1
    expr, type_name = m.string("expr", MAX_NAME), m.string("type", MAX_NAME)
    addr, type_addr = m.integer("addr", 1, top), m.integer("type_addr", 1, top)
    location = _location(m)
    want = _state(doc.obj("state"))
    created = doc.opt_string("created", MAX_SHORT) or ""
    process = _process(doc)
    groups = -(-len(want["states"]) // SLOTS_PER_GROUP)
    cap = groups * MAX_GROUP_BYTES + file_size + FIXED_BYTES
    mem = _regions(doc.obj("memory"), target.ptr_size, cap)
    # A decode reads each region about once, and key data the file also holds as its
    # live keys: more than that is a file whose keys all point at one big region.
    mem.read_limit = file_size + 2 * sum(map(len, mem.segments.values())) + (1 << 16)
    try:
        layout = choose_layout(target, saved_layout=want["layout"])
        mt = decode_map_type(layout, mem, type_addr, types)
        dec = make_decoder(layout, mem, mt, types)
        snap = dec.snapshot(addr, max_slots=len(want["states"]))
    except (LayoutError, MemoryReadError) as e:
        raise SnapshotFileError(f"{name}: cannot decode its bytes again: {e}") from None
    except DlvsnapError as e:
        raise SnapshotFileError(f"{name}: {e}") from None
    got = state_of(snap)
    checked = ("layout", "count", "states", "groups", "live_keys")
    for k in (*checked, "memory") if version >= MEMORY_SINCE else checked:
        if want[k] != got[k]:
            raise SnapshotFileError(
                f"{name}: its bytes decode to a different {k} than the file records "
                "(edited, or decoded by different layouts)"
            )
    return SavedSnapshot(
        path=name,
        target=target,
        expr=expr,
        type_name=type_name,
        location=location,
        created=created,
        snapshot=snap,
        process=process,
    )
