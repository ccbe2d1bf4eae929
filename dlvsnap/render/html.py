"""`dlvsnap report`: one self-contained HTML page from the records of `dlvsnap watch --json`.

Pure: records in (parsed JSON Lines), an HTML string out. The page loads nothing: CSS and
JavaScript are inline, the data is one ``<script type="application/json">`` element, and a
Content-Security-Policy forbids every fetch. The page's template, CSS and JavaScript are
files of their own in dlvsnap/render/report/ (shipped in the wheel, read with
importlib.resources as the layouts are), where editors and linters see them as what they
are; the CSS colours each state of dlvsnap.model.STATE_CHARS, the JavaScript knows their
characters (a unit test keeps the three in step).

What keeps a long run on a big map small: the page holds *one* grid (the ``snapshot``
record's states, one character per slot) and, per event, only its deltas (changed slots as
group/slot indices and one state character each side, header and table deltas, memory).
The browser replays the deltas to show the grid after any event. A grid of up to
``FULL_GRID_GROUPS`` groups is drawn as elements; a larger one as a canvas overview of every
slot plus elements for the groups the selected event changed (and their neighbours).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from dlvsnap import untrusted
from dlvsnap.errors import TargetError
from dlvsnap.model import (
    SEED_FIELD,
    SLOTS_PER_GROUP,
    STATE_CHARS,
    UNKNOWN_CHAR,
    TextBudget,
    is_address_field,
)
from dlvsnap.render.jsonl import READABLE_VERSIONS, SCHEMA_VERSION
from dlvsnap.untrusted import Fields, MalformedError, visible

OPS = ("delete", "clear", "assign")
FULL_GRID_GROUPS = 1024  # up to 8,192 slots as elements; more: canvas overview + detail
CHART_COLUMNS = 1000  # the chart keeps at most this many columns (min/max of each)
CHART_TICKS = 8  # labels on the chart's x axis
CHANGE_KEYS_MAX = 256  # per-change keys are kept for events with at most this many changes
_JS_INT = 2**53 - 1  # larger integers (seeds, addresses) travel as strings

# What an events file may hold (docs/json-schema.md, "Limits"). A group holds 8 slots (swiss
# groups and classic buckets alike); dlvsnap decodes at most 2^20 tables of 128 groups.
MAX_GROUPS = 1 << 27
MAX_NAME = 1 << 16  # an expression, a function or file name, a message
MAX_SHORT = 64  # a Go release, an entry point, a state's name, a field's name
_COUNT = untrusted.I64_MAX  # counts and sequence numbers are Go ints
_LABEL = re.compile(r"t\d{1,20}/g\d{1,20}|g\d{1,20}|(?:b|old)\d{1,20}(?:\+\d{1,20})?")
_STATE_CHARSET = set("".join(STATE_CHARS.values()) + UNKNOWN_CHAR)


def parse_jsonl(lines: Iterable[str], name: str) -> list[dict[str, Any]]:
    """Parse JSON Lines, checking each line is a dlvsnap record of this schema version,
    parsed with limits and type-checked field by field (``check_record``). ``live_keys``
    (``watch --live-keys``) is dropped: the page does not show it."""
    records: list[dict[str, Any]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = untrusted.parse(line)
        except MalformedError as e:
            raise TargetError(
                f"{name}: line {n} is not JSON (not `dlvsnap watch --json` output): {e}"
            ) from None
        if not isinstance(rec, dict) or "event" not in rec or "v" not in rec:
            raise TargetError(f"{name}: line {n} is not a dlvsnap record (no `v` and `event`)")
        v = rec["v"]
        if v not in READABLE_VERSIONS or isinstance(v, bool):
            shown = v if isinstance(v, int) and not isinstance(v, bool) else untrusted.describe(v)
            raise TargetError(
                f"{name}: line {n} has schema version {shown}; "
                f"this dlvsnap reads versions {' and '.join(map(str, READABLE_VERSIONS))}"
            )
        records.append(_checked(rec, f"line {n}", name))
    return records


def read_events(path: Path) -> list[dict[str, Any]]:
    """The records of an events file, or a TargetError saying in one line what is wrong."""
    try:
        with open(path, encoding="utf-8") as f:
            return parse_jsonl(f, str(path))
    except FileNotFoundError:
        raise TargetError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise TargetError(f"{path}: is a directory") from None
    except UnicodeDecodeError:
        raise TargetError(f"{path}: not UTF-8 text (not `dlvsnap watch --json` output)") from None
    except OSError as e:
        raise TargetError(f"{path}: {e.strerror}") from None


def _checked(rec: dict[str, Any], where: str, name: str) -> dict[str, Any]:
    try:
        return check_record(rec)
    except MalformedError as e:
        v = rec.get("v") if isinstance(rec, dict) else None
        shown = v if v in READABLE_VERSIONS and not isinstance(v, bool) else SCHEMA_VERSION
        raise TargetError(
            f"{name}: {where} is not `dlvsnap watch --json` schema {shown}: {e}"
        ) from None


def check_record(rec: Any) -> dict[str, Any]:
    """One record with every field the report uses type-checked and bounded, as a new dict
    of those fields only (docs/json-schema.md); MalformedError names the field."""
    f = Fields(rec, "")
    event = f.string("event", MAX_SHORT)
    v = rec.get("v") if isinstance(rec, dict) else None
    out: dict[str, Any] = {"v": v if v in READABLE_VERSIONS else SCHEMA_VERSION, "event": event}
    if event != "start":  # which map, in a watch of several
        out["map"] = f.opt_string("map", MAX_NAME)
    if event == "start":
        for k in ("map", "go_version", "goarch", "map_impl", "delve"):
            out[k] = f.opt_string(k, MAX_NAME)
        exps = f.opt_array("experiments", MAX_SHORT) or []
        out["experiments"] = [untrusted.as_str(x, f.path("experiments"), MAX_SHORT) for x in exps]
        out["ptr_size"] = f.opt_integer("ptr_size", 0, 16)
    elif event == "snapshot":
        out["seq"] = f.opt_integer("seq", 0, _COUNT)
        out["impl"] = f.opt_string("impl", MAX_SHORT)
        out["slots_per_group"] = f.integer("slots_per_group", SLOTS_PER_GROUP, SLOTS_PER_GROUP)
        groups = f.array("groups", MAX_GROUPS)
        out["groups"] = [_label(g, f.path(f"groups[{i}]")) for i, g in enumerate(groups)]
        states = f.string("states", MAX_GROUPS * SLOTS_PER_GROUP)
        if len(states) != len(groups) * SLOTS_PER_GROUP:
            raise MalformedError(
                f"{f.path('states')}: {len(states):,} characters for {len(groups):,} groups "
                f"of {SLOTS_PER_GROUP} slots"
            )
        if not set(states) <= _STATE_CHARSET:
            raise MalformedError(f"{f.path('states')}: holds characters that are no state")
        out["states"] = states
        out["count"] = f.opt_integer("count", 0, _COUNT)
        out["memory"] = _memory(f.opt_obj("memory"))
    elif event in OPS:
        _check_op(f, out)
    elif event == "note":
        out["kind"] = f.opt_string("kind", MAX_SHORT)
        out["message"] = f.opt_string("message", MAX_NAME)
    elif event == "summary":
        for k in ("deletes", "clears", "keys_removed", "absent_deletes", "assigns"):
            out[k] = f.opt_integer(k, 0, _COUNT)
        for k in ("keys_added", "tombstones", "count"):
            out[k] = f.opt_integer(k, 0, _COUNT)
        out["exit_status"] = f.opt_integer("exit_status", -(2**31), 2**31 - 1)
        out["stopped_early"] = f.opt_boolean("stopped_early")
        out["memory_reader"] = f.opt_string("memory_reader", MAX_SHORT)
        out["memory"] = _memory(f.opt_obj("memory"))
        out["memory_before_first"] = _memory(f.opt_obj("memory_before_first"))
        out["advice"] = f.opt_string("advice", MAX_NAME)
    elif event in ("phase", "phases"):
        _check_phase(f, out)
    return out  # a record of another kind: its kind only (a later schema's addition)


def _check_phase(f: Fields, out: dict[str, Any]) -> None:
    """A ``phase`` record of `snap --at A --at B --json` (its figures; not its state), or
    the ``phases`` record that ends it (the map, the process and the verdict)."""
    if out["event"] == "phases":
        out["verdict"] = f.opt_string("verdict", MAX_NAME)
        out["asked"] = f.opt_integer("asked", 0, _COUNT)
        for k in ("map", "go_version", "map_impl"):
            out[k] = f.opt_string(k, MAX_NAME)
        out["pid"] = f.opt_integer("pid", 0, 2**31 - 1)
        return
    out["phase"] = f.integer("phase", 1, _COUNT)
    out["at"] = f.opt_string("at", MAX_NAME)
    loc = f.opt_obj("location")
    if loc is not None:  # as the record has it: a checked record checks again the same
        out["location"] = {
            "function": loc.opt_string("function", MAX_NAME),
            "file": loc.opt_string("file", MAX_NAME),
            "line": loc.opt_integer("line", 0, 2**31 - 1),
        }
    for k in ("live_entries", "capacity_slots", "tombstones", "held_bytes", "needed_bytes"):
        out[k] = f.integer(k, 0, untrusted.U64)
    out["changed"] = f.opt_string("changed", MAX_NAME)


_MEMORY_FIELDS = (
    "held_bytes",
    "needed_bytes",
    "header_bytes",
    "directory_bytes",
    "table_bytes",
    "group_bytes",
    "indirect_bytes",
    "overflow_bytes",
    "oldbucket_bytes",
    "live_entries",
)


def _memory(m: Fields | None) -> dict[str, int] | None:
    if m is None:
        return None
    out = {k: m.opt_integer(k) for k in _MEMORY_FIELDS}
    return {k: v for k, v in out.items() if v is not None}


def _label(v: Any, where: str) -> str:
    label = untrusted.as_str(v, where, MAX_SHORT)
    if not _LABEL.fullmatch(label):
        raise MalformedError(f"{where}: {untrusted.describe(label)} is not a group label")
    return label


def _check_op(f: Fields, out: dict[str, Any]) -> None:
    """A delete, clear or assign record."""
    out["seq"] = f.integer("seq", 0, _COUNT)
    for k in ("entry", "via", "function", "file", "layout"):
        out[k] = f.opt_string(k, MAX_NAME)
    for k in ("goroutine", "count_before", "count_after", "tombstones"):
        out[k] = f.opt_integer(k, 0, _COUNT)
    out["line"] = f.opt_integer("line", 0, 2**31 - 1)
    out["map_addr"] = f.opt_integer("map_addr")
    out["key"] = f.d.get("key")  # any JSON value (docs/json-schema.md, Keys), depth-limited
    for k in ("key_present", "reseeded", "partial"):
        out[k] = f.opt_boolean(k)
    changes = f.opt_array("changes", MAX_GROUPS * SLOTS_PER_GROUP) or []
    out["changes"] = [_change(c, f.path(f"changes[{i}]")) for i, c in enumerate(changes)]
    hc = f.opt_obj("header_changes")
    out["header_changes"] = {} if hc is None else {k: _pair(hc, k) for k in hc.d}
    tc = f.opt_obj("table_changes")
    out["table_changes"] = {}
    for t in tc.d if tc is not None else ():
        assert tc is not None
        fields = tc.obj(untrusted.as_str(t, tc.path(t), MAX_SHORT))
        out["table_changes"][t] = {k: _pair(fields, k) for k in fields.d}
    moved = f.opt_array("moved", 2)
    if moved is not None:
        if len(moved) != 2:
            raise MalformedError(f"{f.path('moved')}: not [old, new]")
        moved = [untrusted.as_int(x, f.path("moved")) for x in moved]
    out["moved"] = moved
    out["memory"] = _memory(f.opt_obj("memory"))
    warnings = f.opt_array("warnings", 1 << 20) or []
    out["warnings"] = [untrusted.as_str(w, f.path("warnings"), MAX_NAME) for w in warnings]


def _pair(f: Fields, key: str) -> list[Any]:
    """A [before, after] pair of header or table field values (any JSON scalar)."""
    untrusted.as_str(key, f.path(key), MAX_SHORT)
    v = untrusted.as_list(f.raw(key), f.path(key), 2)
    if len(v) != 2:
        raise MalformedError(f"{f.path(key)}: not [before, after]")
    return v


def _change(c: Any, where: str) -> dict[str, Any]:
    f = Fields(c, where)
    slot = f.string("slot", MAX_SHORT)
    label, _, idx = slot.rpartition("/s")
    if not (idx.isascii() and idx.isdigit() and len(idx) <= 2 and int(idx) < SLOTS_PER_GROUP):
        raise MalformedError(f"{f.path('slot')}: {untrusted.describe(slot)} is not a slot label")
    _label(label, f.path("slot"))
    return {
        "slot": slot,
        "before_state": f.string("before_state", MAX_SHORT),
        "after_state": f.string("after_state", MAX_SHORT),
        "key": f.d.get("key"),
        "after_key": f.d.get("after_key"),
    }


def _group_order(label: str) -> tuple[int, int, int, int, str]:
    """Sort key of a group label, as SlotLoc.sort_key orders slots: old, table, group, chain."""
    m = re.fullmatch(r"t(\d+)/g(\d+)", label)
    if m:
        return (0, int(m[1]), int(m[2]), 0, "")
    m = re.fullmatch(r"(g|b|old)(\d+)(?:\+(\d+))?", label)
    if m:
        return (int(m[1] == "old"), -1, int(m[2]), int(m[3] or 0), "")
    return (2, 0, 0, 0, label)


def _safe(v: Any) -> Any:
    """JSON data a browser reads back exactly and shows safely: integers past 2**53 become
    strings, every string (and object key) is made visible (no control or bidi character
    reaches the page raw), and a float must be finite."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, int):
        return v if -_JS_INT <= v <= _JS_INT else str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"{v!r} in the page's data")  # parse() refuses them: a bug
        return v
    if isinstance(v, str):
        return visible(v)
    if isinstance(v, list):
        return [_safe(x) for x in v]
    if isinstance(v, dict):
        return {visible(str(k)): _safe(x) for k, x in v.items()}
    raise TypeError(f"{type(v).__name__} in the page's data")


def _field_text(field: str, v: Any) -> str:
    """A header or table field's value: addresses and seeds in hex, as the text view."""
    hexed = is_address_field(field) or field in SEED_FIELD.values()
    if isinstance(v, int) and not isinstance(v, bool) and v > 0 and hexed:
        return hex(v)
    return _value_text(v)


def _value_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, int | float | str):
        return str(v)
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def key_text(k: Any) -> str:
    """A key from the JSON schema, as text (docs/json-schema.md, Keys): ``{"hex": ...}`` as
    0x..., ``{"float": ...}`` as its word, a string quoted; schema 2's structs, arrays,
    pointers and interfaces as Go's %#v prints them (``main.pair{a:4, b:"s4"}``); any
    other JSON value (a later schema's) as compact JSON. At most ~60 characters, and
    visible: no control or bidi character of a key reaches the page raw."""
    if isinstance(k, dict) and len(k) == 1:
        if isinstance(k.get("hex"), str):
            h = k["hex"]
            return visible("0x" + (h if len(h) <= 32 else h[:32] + "…"))
        if isinstance(k.get("float"), str):
            return visible(k["float"][:16])
    if isinstance(k, str):  # cut before quoting: an escape is never cut in two
        s = visible(json.dumps(k[:40], ensure_ascii=False))
        return s if len(k) <= 40 else s[:-1] + '…"'
    if _tagged(k):
        out = TextBudget(KEY_TEXT_MAX)
        _go_text(k, out)
        s = "".join(out.parts)
    else:
        s = _value_text(k)
    return visible(s if len(s) <= KEY_TEXT_MAX else s[: KEY_TEXT_MAX - 1] + "…")


KEY_TEXT_MAX = 60
_TAGS = ("struct", "array", "pointer", "interface")


def _tagged(k: Any) -> bool:
    """A key in one of schema 2's tagged forms, with the shape the schema gives it."""
    if not isinstance(k, dict) or not any(isinstance(k.get(t), str) for t in _TAGS):
        return False
    if "struct" in k:
        fields = k.get("fields")
        return isinstance(fields, list) and all(
            isinstance(f, list) and len(f) == 2 and isinstance(f[0], str) for f in fields
        )
    if "array" in k:
        return isinstance(k.get("elems"), list) or isinstance(k.get("hex"), str)
    if "pointer" in k:
        return isinstance(k.get("addr"), int) and not isinstance(k.get("addr"), bool)
    return "interface" in k and (k.get("type") is None or isinstance(k.get("type"), str))


def _go_text(k: Any, out: TextBudget) -> None:
    """Write a key (any JSON value) as key_text shows it, until the text is long enough."""
    if out.left <= 0:
        return
    if not _tagged(k):
        out.add(key_text(k))
    elif "struct" in k:
        out.add(k["struct"] + "{")
        for i, (name, v) in enumerate(k["fields"]):
            out.add((", " if i else "") + name + ":")
            _go_text(v, out)
            if out.left <= 0:
                break
        out.add("}")
    elif "array" in k:
        _array_text(k, out)
    elif "pointer" in k:
        out.add(f"({k['pointer']})({hex(k['addr']) if k['addr'] else 'nil'})")
    elif k.get("type") is None and k.get("value") is None:
        out.add(f"{k['interface']}(nil)")
    else:
        _go_text(k.get("value"), out)


def _array_text(k: dict[str, Any], out: TextBudget) -> None:
    """An array key: its elements, or a byte array's bytes (``hex``), the first 16 shown."""
    out.add(k["array"] + "{")
    elems, h = k.get("elems"), k.get("hex")
    n = len(elems) if isinstance(elems, list) else len(h) // 2 if isinstance(h, str) else 0
    for i in range(min(n, 16)):
        out.add(", " if i else "")
        if isinstance(elems, list):
            _go_text(elems[i], out)
        elif isinstance(h, str):
            out.add(
                hex(int(h[2 * i : 2 * i + 2], 16)) if _HEX.fullmatch(h[2 * i : 2 * i + 2]) else "?"
            )
        if out.left <= 0:
            break
    length = k.get("len")
    if n > 16 or (isinstance(length, int) and length > n):
        out.add(", …")
    out.add("}")


_HEX = re.compile(r"[0-9a-fA-F]{2}")


def _split(slot: str) -> tuple[str, int]:
    """A checked slot label (``check_record``): its group's label and its index."""
    label, _, idx = slot.rpartition("/s")
    return label, int(idx)


class _Grid:
    """The groups a page shows, and the states of their slots before the first event (from
    checked records: ``check_record``)."""

    def __init__(self, snap: dict[str, Any] | None, events: list[dict[str, Any]]) -> None:
        spg = SLOTS_PER_GROUP
        labels: list[str] = []
        rows: dict[str, str] = {}
        if snap is not None:
            states = snap["states"]
            for i, label in enumerate(snap["groups"]):
                if label not in rows:
                    rows[label] = states[i * spg : (i + 1) * spg]
                    labels.append(label)
        self.in_snapshot = len(labels)
        # Slots of groups the snapshot does not list (a classic overflow bucket linked in
        # later, or no snapshot at all) start in the before-state of their first change.
        added: dict[str, dict[int, str]] = {}
        for ev in events:
            for c in ev["changes"]:
                label, idx = _split(c["slot"])
                if label not in rows:
                    added.setdefault(label, {}).setdefault(idx, _char(c["before_state"]))
        self.spg = spg
        new = sorted(added, key=_group_order)
        for label in new:
            row = ["?"] * spg
            for idx, ch in added[label].items():
                row[idx] = ch
            rows[label] = "".join(row)
        keys = [_group_order(x) for x in labels]
        if keys == sorted(keys):  # snapshot order is slot order: merge new groups in place
            labels = sorted(labels + new, key=_group_order)
        else:
            labels += new
        self.labels = labels
        # marked on the page as "not in the first snapshot" (without one, none is)
        self.added = [i for i, x in enumerate(labels) if x in added] if snap is not None else []
        self.index = {x: i for i, x in enumerate(labels)}
        self.init = "".join(rows[x] for x in labels)


def _char(state: Any) -> str:
    return STATE_CHARS.get(str(state), UNKNOWN_CHAR)


def _chart(
    points: list[tuple[int, int]], labels: list[str], axis: str = "event", *, cursor: bool = True
) -> tuple[str, dict[str, Any]]:
    """An SVG of held vs needed bytes over the run's points, at most CHART_COLUMNS columns;
    ``labels[i]`` names point i on the x axis (at most CHART_TICKS of them are shown), and
    ``axis`` says what they are."""
    w, h, left, right, top, bottom = 960, 220, 70, 10, 10, 28
    n = len(points)
    x0, x1, y0, y1 = left, w - right, h - bottom, top
    ymax = max([1, *(max(p) for p in points)])
    cols = min(n, CHART_COLUMNS)

    def x_of(col: float) -> float:
        return x0 + (x1 - x0) * (col / max(1, cols - 1))

    def y_of(v: int) -> float:
        return y0 - (y0 - y1) * v / ymax

    def line(which: int) -> str:
        pts: list[str] = []
        for c in range(cols):
            a, b = c * n // cols, max(c * n // cols + 1, (c + 1) * n // cols)
            vals = [p[which] for p in points[a:b]]
            seq = [vals[0], min(vals), max(vals), vals[-1]]
            xs = f"{x_of(c):.1f}"
            last = None
            for v in seq:
                if v != last:
                    pts.append(f"{xs},{y_of(v):.1f}")
                last = v
        return " ".join(pts)

    grid = []
    for i in range(5):
        v = ymax * i // 4
        y = y_of(v)
        grid.append(
            f'<line class="gl" x1="{x0}" x2="{x1}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="ax" x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{_bytes(v)}</text>'
        )
    svg = (
        f'<svg id="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
        'role="img" '
        f'aria-label="bytes held and bytes needed by live entries, per {axis.rstrip(" #")}">'
        + "".join(grid)
        + f'<polyline id="held-line" class="held" points="{line(0)}"/>'
        f'<polyline id="needed-line" class="needed" points="{line(1)}"/>'
        + (f'<line id="cursor" x1="{x0}" x2="{x0}" y1="{y1}" y2="{y0}"/>' if cursor else "")
        + "".join(_ticks(labels, cols, x_of, y0, h))
        + f'<text class="ax" x="{x1}" y="{h - 1}" text-anchor="end">{_text(axis)}</text>'
        "</svg>"
    )
    return svg, {"x0": x0, "x1": x1, "n": n, "cols": cols}


def _ticks(
    labels: list[str], cols: int, x_of: Callable[[float], float], y0: float, h: int
) -> list[str]:
    """The x axis: up to CHART_TICKS labels, evenly spread over the columns, each at the
    first point of its column (the last column: its last point)."""
    n = len(labels)
    if not n:
        return []
    k = min(CHART_TICKS, cols)
    chosen = sorted({round(t * (cols - 1) / max(1, k - 1)) for t in range(k)})
    out = []
    for col in chosen:
        x = x_of(col)
        anchor = "start" if col == 0 and cols > 1 else "end" if col == cols - 1 else "middle"
        out.append(
            f'<line class="tk" x1="{x:.1f}" x2="{x:.1f}" y1="{y0}" y2="{y0 + 4}"/>'
            f'<text class="ax" x="{x:.1f}" y="{h - 13}" text-anchor="{anchor}">'
            f"{_text(labels[-1] if col == cols - 1 else labels[col * n // cols])}</text>"
        )
    return out


def _bytes(v: int) -> str:
    for unit, div in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if v >= div:
            return f"{v / div:.3g} {unit}"
    return f"{v} B"


def _changes(e: dict[str, Any], changes: list[dict[str, Any]], grid: _Grid) -> None:
    """An event's changed slots, compactly: ``c`` group/slot index pairs, ``b``/``a`` one
    state character each before/after, ``kk`` their keys (for events of few changes)."""
    flat: list[int] = []
    before, after, keys = [], [], []
    for c in changes:
        label, idx = _split(c["slot"])
        flat += [grid.index[label], idx]
        before.append(_char(c["before_state"]))
        after.append(_char(c["after_state"]))
        k, ak = c["key"], c["after_key"]  # any JSON values: compared, never hashed
        shown = [x for x in ((k,) if k == ak else (k, ak)) if x is not None]
        keys.append(" → ".join(key_text(x) for x in shown))
    if flat:
        e["c"], e["b"], e["a"] = flat, "".join(before), "".join(after)
        if len(changes) <= CHANGE_KEYS_MAX:
            e["kk"] = keys


def _event(r: dict[str, Any], grid: _Grid, locs: dict[str, int]) -> dict[str, Any]:
    """One delete/clear record (checked: ``check_record``) as the page holds it: short
    keys, deltas only."""
    file = (r["file"] or "").rsplit("/", 1)[-1]
    line = "?" if r["line"] is None else r["line"]
    where = f"{r['function'] or '?'} {file}:{line}  ({r['entry'] or '?'}"
    where += f" via {r['via']})" if r["via"] else ")"
    mem = r["memory"] or {}
    e: dict[str, Any] = {
        "s": r["seq"],
        "o": r["event"],
        "k": None if r["key"] is None else key_text(r["key"]),
        "p": bool(r["key_present"]),
        "w": locs.setdefault(where, len(locs)),
        "cb": r["count_before"],
        "ca": r["count_after"],
        "t": r["tombstones"],
        "h": mem.get("held_bytes", 0),
        "n": mem.get("needed_bytes", 0),
        "le": mem.get("live_entries"),
    }
    _changes(e, r["changes"], grid)
    if hc := r["header_changes"]:
        e["hc"] = [[f, _field_text(f, b), _field_text(f, a)] for f, (b, a) in hc.items()]
    if tc := r["table_changes"]:
        e["tc"] = [
            [t, f, _field_text(f, b), _field_text(f, a)]
            for t, fields in tc.items()
            for f, (b, a) in fields.items()
        ]
    if r["reseeded"]:
        e["r"] = 1
    if r["moved"]:
        e["m"] = [hex(x) for x in r["moved"]]
    if r["warnings"]:
        e["wn"] = r["warnings"]
    return e


def build(records: list[dict[str, Any]], source: str = "") -> tuple[dict[str, Any], str]:
    """The page's data (what the browser replays) and its chart, from the records, each
    type-checked first (``check_record``: records made in Python are checked like a file's)."""
    records = [_checked(r, f"record {i}", source) for i, r in enumerate(records, 1)]
    start = next((r for r in records if r["event"] == "start"), None)
    snap = next((r for r in records if r["event"] == "snapshot"), None)
    summary = next((r for r in records if r["event"] == "summary"), None)
    if sum(r["event"] == "start" for r in records) > 1:
        raise TargetError(f"{source}: holds more than one run (more than one `start` record)")
    events = [r for r in records if r["event"] in OPS]
    if not events:
        raise TargetError(f"{source}: no delete or clear events to report")
    grid = _Grid(snap, events)
    locs: dict[str, int] = {}
    out: list[dict[str, Any]] = []
    notes: list[str] = []
    for r in records:
        if r["event"] == "note":
            notes.append(r["message"] or r["kind"] or "")
        elif r["event"] in OPS:
            out.append(_event(r, grid, locs))
            if notes:
                out[-1]["nt"], notes = notes, []
    points = [(e["h"], e["n"]) for e in out]
    labels = [f"#{e['s']}" for e in out]
    offset = 0
    if snap is not None and snap["memory"] is not None:
        m = snap["memory"]
        points.insert(0, (m.get("held_bytes", 0), m.get("needed_bytes", 0)))
        labels.insert(0, "before")
        offset = 1
    svg, geom = _chart(points, labels, "event #")
    geom["offset"] = offset
    data: dict[str, Any] = {
        "source": source,
        "start": start,
        "summary": summary,
        "snapshot": None if snap is None else {"count": snap["count"], "memory": snap["memory"]},
        "impl": (snap or {}).get("impl") or (start or {}).get("map_impl"),
        "spg": grid.spg,
        "groups": grid.labels,
        "in_snapshot": grid.in_snapshot,
        "added": grid.added,
        "init": grid.init,
        "full_grid": len(grid.labels) <= FULL_GRID_GROUPS,
        "locs": list(locs),
        "chart": geom,
        "ev": out,
    }
    if notes:  # notes after the last event
        data["tail_notes"] = notes
    return _safe(data), svg


def _script_json(data: Any) -> str:
    """JSON safe inside a <script> element: no `</`, `<!--` or `]]>` survives, and no NaN or
    Infinity (not JSON: the page would stay blank)."""
    s = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _text(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


_SLOT = re.compile(r"@(TITLE|CSS|CHART|DATA|JS)@")


def _asset(name: str) -> str:
    """A file of dlvsnap/render/report/, without the newline its last line ends with: the
    template puts the CSS and the JavaScript on lines of their own."""
    text = resources.files("dlvsnap.render").joinpath("report", name).read_text("utf-8")
    return text.removesuffix("\n")


def is_phases(records: list[dict[str, Any]]) -> bool:
    """Whether the records are `snap --at A --at B --json` output (phases, no events)."""
    kinds = {r.get("event") for r in records}
    return "phase" in kinds and not kinds & set(OPS)


def render_phases(records: list[dict[str, Any]], source: str = "") -> str:
    """The page of a phases file: the chart of bytes held vs needed per phase (the phase
    numbers on its axis), a table of the phases and the verdict. Static: no script."""
    records = [_checked(r, f"record {i}", source) for i, r in enumerate(records, 1)]
    phases = sorted((r for r in records if r["event"] == "phase"), key=lambda r: r["phase"])
    last = next((r for r in records if r["event"] == "phases"), {})
    svg, _ = _chart(
        [(r["held_bytes"], r["needed_bytes"]) for r in phases],
        [str(r["phase"]) for r in phases],
        "phase",
        cursor=False,
    )
    title = f"dlvsnap phases: {last.get('map') or 'map'}"
    if source:
        title += f" ({visible(Path(source).name)})"
    run = [last.get("go_version"), last.get("map_impl") and f"{last['map_impl']} map"]
    run += [last.get("pid") and f"pid {last['pid']}", f"{len(phases)} phases"]
    if last.get("asked") and last["asked"] > len(phases):
        run.append(f"of {last['asked']} asked")
    head = ["", "at", "stopped in", "live", "slots", "tombstones", "held B", "needed B",
            "B/live", "changed"]  # fmt: skip
    rows = []
    for r in phases:
        loc = r.get("location") or {}
        file = (loc.get("file") or "?").rsplit("/", 1)[-1]
        where = f"{loc.get('function') or '?'} {file}:{loc.get('line', '?')}"
        per = "-" if not r["live_entries"] else f"{r['held_bytes'] / r['live_entries']:,.0f}"
        cells = [str(r["phase"]), r["at"] or "", where]
        cells += [f"{r[k]:,}" for k in ("live_entries", "capacity_slots", "tombstones")]
        cells += [f"{r[k]:,}" for k in ("held_bytes", "needed_bytes")]
        cells += [per, r["changed"] or ""]
        rows.append("<tr>" + "".join(f"<td>{_text(visible(c))}</td>" for c in cells) + "</tr>")
    verdict = last.get("verdict") or ""
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            "style-src 'unsafe-inline'\">",
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_text(title)}</title>",
            f"<style>\n{_asset('report.css')}</style>",
            "</head>",
            "<body>",
            f'<header><h1 id="title">{_text(title)}</h1>',
            f'<p id="run">{_text(visible(" · ".join(x for x in run if x)))}</p>',
            f'<p id="verdict"><strong>{_text(visible(verdict))}</strong></p></header>',
            '<section id="memory"><h2>Bytes held vs bytes needed by live entries, per phase</h2>',
            '<p class="legend"><span class="sw held"></span>held by the map '
            '<span class="sw needed"></span>needed by live entries</p>',
            svg,
            "</section>",
            '<section id="phases"><h2>Phases</h2><table id="phase-table"><thead><tr>'
            + "".join(f"<th>{_text(h)}</th>" for h in head)
            + "</tr></thead><tbody>",
            *rows,
            "</tbody></table></section>",
            "</body>",
            "</html>",
            "",
        ]
    )


def render(records: list[dict[str, Any]], source: str = "") -> str:
    """The whole page, as a string. The template's slots are filled in one pass: what one
    slot receives (a map named "@JS@", a key) is never searched for slots again. A phases
    file (``is_phases``) makes a page of its own (``render_phases``)."""
    if is_phases(records):
        return render_phases(records, source)
    data, svg = build(records, source)
    start = data["start"] or {}
    title = f"dlvsnap report: {start.get('map') or 'map'}"
    if source:
        title += f" ({visible(Path(source).name)})"
    parts = {
        "TITLE": _text(title),
        "CSS": _asset("report.css"),
        "CHART": svg,
        "DATA": _script_json(data),
        "JS": _asset("report.js"),
    }
    return _SLOT.sub(lambda m: parts[m[1]], _asset("page.html") + "\n")


def maps_in(records: list[dict[str, Any]]) -> list[str]:
    """The maps a file's events are of, in order of first event, when a watch watched
    several (its records carry ``map``); [] for one."""
    names = [r.get("map") for r in records if r.get("event") in OPS]
    return list(dict.fromkeys(n for n in names if isinstance(n, str) and n))


def one_map(records: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The records of one map of a watch of several: its snapshot, events and summary, and
    the records that are of no map (start, notes of the whole run)."""
    return [r for r in records if r.get("event") == "start" or r.get("map") in (None, "", name)]


def write(path: Path, records: list[dict[str, Any]], source: str = "") -> int:
    """Write the page to PATH; returns its size in bytes."""
    page = render(records, source).encode()
    path.write_bytes(page)
    return len(page)
