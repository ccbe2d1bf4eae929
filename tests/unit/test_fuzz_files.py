"""Property-based fuzzing of the two readers of untrusted files: the snapshot-file reader
(`dlvsnap diff`, `dlvsnap.load`) and the events reader (`dlvsnap report`). Real files from
tests/data (written by `dlvsnap snap --save` and `watch --json` from fixtures/hostilekeys
and fixtures/deletes) are mutated structure-aware: values replaced by values of other
types, huge or boundary numbers, NaN and Infinity; fields deleted or added; values nested
in lists and objects, deeply; lists cut or grown; region bytes flipped (re-compressed, so
that the decoders see them) or declared sizes changed; and the text cut short or edited.
The only exceptions allowed out are dlvsnap's own (DlvsnapError subclasses: one line and
an exit code), and no example may take long.

Deterministic in CI: derandomized, no example database; a bounded number of examples."""

from __future__ import annotations

import copy
import json
import os
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlvsnap import snapfile
from dlvsnap.errors import DlvsnapError
from dlvsnap.render import html
from tests import hostile

FUZZ = settings(
    # DLVSNAP_FUZZ_EXAMPLES=20000 for a longer campaign (derandomized all the same)
    max_examples=int(os.environ.get("DLVSNAP_FUZZ_EXAMPLES", "1000")),
    deadline=None,  # timed below, per example, with a bound the machine's load cannot flake
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SLOW = 5.0  # seconds: any example slower than this is a failure

SNAPSHOTS = {p.name: p.read_text() for p in hostile.SNAPSHOTS}
EVENTS = {p.name: p.read_text() for p in hostile.EVENTS}

BOUNDARY = [
    0,
    -1,
    1,
    7,
    8,
    9,
    255,
    256,
    2**31 - 1,
    2**32,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64 - 1,
    2**64,
    -(2**63),
    -(2**63) - 1,
    10**30,
    1_000_000_000,
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(BOUNDARY),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", "1", "true", "false", "swiss", "classic", "@JS@", "\x1b[2J\u202e"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a document: object keys and list indices, the root included."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:12]):  # the first items of long lists (regions, keys)
            out += _paths(v, (*prefix, i))
    return out


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    _get(doc, path[:-1])[path[-1]] = value
    return doc


def _mutate_value(data: st.DataObject, doc: Any) -> Any:  # noqa: PLR0911 (a return per kind)
    path = data.draw(st.sampled_from(_paths(doc)), label="path")
    old = _get(doc, path)
    kind = data.draw(
        st.sampled_from(
            ["replace", "nest", "deep", "delete", "add", "cut", "grow", "number", "string"]
        ),
        label="mutation",
    )
    if kind == "replace":
        return _set(doc, path, data.draw(values, label="value"))
    if kind == "nest":
        return _set(doc, path, data.draw(st.sampled_from([[old], {"x": old}, [old, old]])))
    if kind == "deep":
        depth = data.draw(st.sampled_from([30, 31, 32, 33, 100, 250]), label="depth")
        deep: Any = old
        for _ in range(depth):
            deep = [deep]
        return _set(doc, path, deep)
    if kind == "delete" and path:
        parent = _get(doc, path[:-1])
        del parent[path[-1]]
        return doc
    if kind == "add" and isinstance(old, dict):
        old[data.draw(st.text(max_size=8), label="key")] = data.draw(values, label="value")
        return doc
    if kind == "cut" and isinstance(old, list | str):
        return _set(doc, path, old[: data.draw(st.integers(0, max(0, len(old) - 1)))])
    if kind == "grow" and isinstance(old, list | str):
        return _set(doc, path, old + old[: data.draw(st.integers(1, 64))])
    if kind == "number" and isinstance(old, int) and not isinstance(old, bool):
        delta = data.draw(st.sampled_from([-1, 1, 8, -8, 2**32, old, -2 * old]))
        return _set(doc, path, old + delta)
    if kind == "string" and isinstance(old, str):
        return _set(doc, path, data.draw(st.text(max_size=40), label="text"))
    return _set(doc, path, data.draw(values, label="value"))


def _mutate_region(data: st.DataObject, doc: Any) -> None:
    """Flip bytes inside one region (re-compressed with its size kept, so that the
    decoders see them), or change its declared size."""
    memory = doc.get("memory") if isinstance(doc, dict) else None
    regions = memory.get("regions") if isinstance(memory, dict) else None
    if not isinstance(regions, list) or not regions:
        return
    i = data.draw(st.integers(0, len(regions) - 1), label="region")
    r = regions[i]
    if not (isinstance(r, list) and len(r) == 3 and isinstance(r[2], str)):
        return
    try:
        raw = bytearray(hostile.decode(r[2]))
    except Exception:
        return
    if data.draw(st.booleans(), label="resize"):
        r[1] = data.draw(st.sampled_from([0, 1, len(raw) - 1, len(raw) + 1, 2 * len(raw)]))
        return
    for _ in range(data.draw(st.integers(1, 8), label="flips")):
        if not raw:
            break
        at = data.draw(st.integers(0, len(raw) - 1), label="at")
        raw[at] = data.draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF, raw[at] ^ 0x10]))
    r[2] = hostile.encode(bytes(raw))


def _mutate_text(data: st.DataObject, text: str) -> str:
    # most examples keep the text whole, so that they reach the checks behind the parser
    kind = data.draw(
        st.sampled_from(["none"] * 6 + ["cut", "nan", "edit", "deep"]), label="text mutation"
    )
    if kind == "cut":
        return text[: data.draw(st.integers(0, len(text)), label="cut at")]
    if kind == "nan":
        token = data.draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-0"]))
        at = text.find(":", data.draw(st.integers(0, max(0, len(text) - 1))))
        return text if at < 0 else text[: at + 1] + token + "," + text[at + 1 :]
    if kind == "deep":  # deeper than Python's recursion limit and orjson's
        n = data.draw(st.sampled_from([1023, 1024, 1025, 5000, 100_000]), label="depth")
        at = text.find(":", data.draw(st.integers(0, max(0, len(text) - 1))))
        return text if at < 0 else text[: at + 1] + "[" * n + "]" * n + "," + text[at + 1 :]
    if kind == "edit":
        at = data.draw(st.integers(0, max(0, len(text) - 1)), label="edit at")
        return text[:at] + data.draw(st.text(min_size=1, max_size=4)) + text[at + 1 :]
    return text


def _timed(fn: Any, *args: Any) -> None:
    t = time.perf_counter()
    try:
        fn(*args)
    except DlvsnapError as e:
        assert "\n" not in str(e), str(e)
    assert time.perf_counter() - t < SLOW


def _dumps(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"))  # allow_nan: NaN and Infinity go in


@FUZZ
@given(st.data())
def test_fuzz_snapshot_file_reader(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(SNAPSHOTS)), label="file")
    doc = json.loads(SNAPSHOTS[name])
    if data.draw(st.booleans(), label="region mutation"):
        _mutate_region(data, doc)
    for _ in range(data.draw(st.sampled_from([0, 0, 1, 1, 2, 3]), label="value mutations")):
        doc = _mutate_value(data, doc)
    _timed(snapfile.loads, _mutate_text(data, _dumps(doc)), name)


@FUZZ
@given(st.data())
def test_fuzz_snapshot_bytes(data: st.DataObject) -> None:
    """The decoders on hostile bytes: words of a real file's regions (headers, type
    descriptors, directories, groups, key data) overwritten with boundary values and with
    the addresses of its other regions (pointers that lead somewhere), re-compressed."""
    name = data.draw(st.sampled_from(sorted(SNAPSHOTS)), label="file")
    doc = json.loads(SNAPSHOTS[name])
    regions = doc["memory"]["regions"]
    starts = [r[0] for r in regions]
    for _ in range(data.draw(st.integers(1, 3), label="regions")):
        r = regions[data.draw(st.integers(0, len(regions) - 1), label="region")]
        raw = bytearray(hostile.decode(r[2]))
        for _ in range(data.draw(st.integers(1, 6), label="words")):
            at = data.draw(st.integers(0, max(0, len(raw) - 1)), label="at") & ~7
            width = min(8, len(raw) - at)
            if width <= 0:
                continue
            word = data.draw(
                st.one_of(
                    st.sampled_from([0, 1, 2, 8, 0x80, 0xFE, 0xFF, 2**31, 2**63, 2**64 - 1]),
                    st.sampled_from(starts).map(lambda a: a + data.draw(st.sampled_from([0, 8]))),
                    st.integers(0, 2**64 - 1),
                ),
                label="word",
            )
            raw[at : at + width] = (word % (1 << (8 * width))).to_bytes(width, "little")
        r[2] = hostile.encode(bytes(raw))
    _timed(snapfile.loads, _dumps(doc), name)


def _load_events(text: str, name: str) -> None:
    html.render(html.parse_jsonl(text.splitlines(), name), name)


@FUZZ
@given(st.data())
def test_fuzz_events_reader(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(EVENTS)), label="file")
    records = [json.loads(x) for x in EVENTS[name].splitlines()]
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        i = data.draw(st.integers(0, len(records) - 1), label="record")
        kind = data.draw(st.sampled_from(["value", "drop", "duplicate"]), label="record change")
        if kind == "value":
            records[i] = _mutate_value(data, copy.deepcopy(records[i]))
        elif kind == "drop" and len(records) > 1:
            del records[i]
        else:
            records.insert(i, copy.deepcopy(records[i]))
    lines = [_dumps(r) for r in records]
    j = data.draw(st.integers(0, len(lines) - 1), label="line")
    lines[j] = _mutate_text(data, lines[j])
    _timed(_load_events, "\n".join(lines), name)


def test_the_mutations_reach_the_decoders() -> None:
    """The fuzzers are worth their time only if mutated files get past the parser: a
    region's flipped bytes are decoded (and refused as edited), not stopped earlier."""
    doc = hostile.snapshot_doc("swiss-strings")
    groups = max(doc["memory"]["regions"], key=lambda r: r[1])
    raw = bytearray(hostile.decode(groups[2]))
    raw[0] ^= 0x80  # a control byte: a slot changes state
    groups[2] = hostile.encode(bytes(raw))
    try:
        snapfile.loads(_dumps(doc), "x")
    except DlvsnapError as e:
        assert "decode to a different" in str(e), str(e)
    else:
        raise AssertionError("an edited control byte went unnoticed")
