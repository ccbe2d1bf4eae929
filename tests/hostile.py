"""Hostile files made from the real files in tests/data (written by dlvsnap from
fixtures/hostilekeys), each as an adversarial tester measured them; and a runner that feeds
one to the real CLI in a subprocess under a memory and a time limit."""

from __future__ import annotations

import base64
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"
ROOT = DATA.parent.parent

SNAPSHOTS = sorted(DATA.glob("*.snap.json"))
EVENTS = sorted(DATA.glob("*.events.jsonl"))


def snapshot_doc(name: str = "swiss-strings") -> dict[str, Any]:
    return json.loads((DATA / f"{name}.snap.json").read_text())  # type: ignore[no-any-return]


def events_records(name: str = "swiss-ints") -> list[dict[str, Any]]:
    text = (DATA / f"{name}.events.jsonl").read_text()
    return [json.loads(x) for x in text.splitlines() if x.strip()]


def dump(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"))


def jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(dump(r) + "\n" for r in records)


def encode(data: bytes) -> str:
    return base64.b64encode(zlib.compress(data, 1)).decode()


def decode(data: str) -> bytes:
    return zlib.decompress(base64.b64decode(data))


def zero_bomb(mib: int) -> bytes:
    """A zlib stream of ``mib`` MiB of zeros, about 1 kB per MiB, built in milliseconds:
    one full-flushed deflate block of 1 MiB of zeros (the same bytes every time, since a
    full flush forgets the history) repeated, an empty final block, the Adler-32 of zeros."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(bytes(1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    n = mib << 20
    adler = ((n % 65521) << 16) | 1
    return b"\x78\xda" + block * mib + b"\x03\x00" + adler.to_bytes(4, "big")


# --------------------------------------------------------------------------- snapshot files


def snap_zlib_bomb() -> str:
    """A region of 1 GiB of zeros declared as 48 bytes (the map header's region): 1 MB."""
    doc = snapshot_doc()
    region = next(r for r in doc["memory"]["regions"] if r[0] == doc["map"]["addr"])
    region[2] = base64.b64encode(zero_bomb(1024)).decode()
    return dump(doc)


def snap_declared_huge() -> str:
    """Two regions of 768 MiB of zeros declared as such (1.5 MB of file): more than a file
    may hold in all."""
    doc = snapshot_doc()
    bomb = base64.b64encode(zero_bomb(768)).decode()
    doc["memory"]["regions"] += [[1 << 40, 768 << 20, bomb], [1 << 41, 768 << 20, bomb]]
    return dump(doc)


def snap_descending_regions(n: int = 300_000) -> str:
    """The real regions and ``n`` more one-byte regions, all in descending address order."""
    doc = snapshot_doc()
    one = encode(b"\x00")
    extra = [[(1 << 46) + 64 * i, 1, one] for i in range(n)]
    doc["memory"]["regions"] = sorted(doc["memory"]["regions"] + extra, reverse=True)
    return dump(doc)


def snap_version_string() -> str:
    doc = snapshot_doc()
    doc["version"] = "1"
    return dump(doc)


def snap_truthy_string() -> str:
    doc = snapshot_doc()
    doc["target"]["little_endian"] = "false"
    return dump(doc)


def snap_infinity() -> str:
    doc = snapshot_doc()
    return dump(doc).replace(f'"count":{doc["state"]["count"]}', '"count":Infinity', 1)


def snap_overflowing_number() -> str:
    return dump(snapshot_doc()).replace('"ptr_size":8', '"ptr_size":1e400', 1)


def snap_deep_valid() -> str:
    """100,000 levels of nesting in a field the reader does not otherwise look at."""
    doc = snapshot_doc()
    text = dump(doc)
    return text[:-1] + ',"extra":' + "[" * 100_000 + "]" * 100_000 + "}"


def classic_header_edit(values: dict[str, int]) -> str:
    """The classic snapshot with fields of its hmap set (``B``, ``oldbuckets``...)."""
    from dlvsnap.layouts import load_layout

    doc = snapshot_doc("classic-structs")
    t = doc["target"]
    layout = load_layout("classic", t["go_version"], t["ptr_size"], t["little_endian"])
    hs = layout.struct("hmap")
    region = next(r for r in doc["memory"]["regions"] if r[0] == doc["map"]["addr"])
    raw = bytearray(decode(region[2]))
    h = hs.parse(bytes(raw))
    for name, v in values.items():
        f = hs.field(name)
        value = h["buckets"] if v == -1 else v  # -1: the bucket array's address
        raw[f.offset : f.offset + f.size] = value.to_bytes(f.size, layout.order)
    region[2] = encode(bytes(raw))
    return dump(doc)


def snap_classic_b0_growing() -> str:
    """B = 0 with oldbuckets set: a grow from B = -1."""
    return classic_header_edit({"B": 0, "oldbuckets": -1})


# --------------------------------------------------------------------------- events files


def ev_huge_slots_per_group() -> str:
    """4 kB: a snapshot record of one group of 1,000,000,000 slots, and one delete."""
    recs = events_records()
    start = next(r for r in recs if r["event"] == "start")
    snap = next(r for r in recs if r["event"] == "snapshot")
    first = next(r for r in recs if r["event"] == "delete")
    snap = {**snap, "slots_per_group": 1_000_000_000, "groups": snap["groups"][:1]}
    snap["states"] = snap["states"][:8]
    return jsonl([start, snap, first])


def ev_infinity() -> str:
    recs = events_records()
    text = jsonl(recs)
    return text.replace('"count_before":', '"count_before":Infinity,"x":', 1)


def ev_nan_memory() -> str:
    return jsonl(events_records()).replace('"held_bytes":', '"held_bytes":NaN,"x":', 1)


def ev_overflowing_number() -> str:
    return jsonl(events_records()).replace('"needed_bytes":', '"needed_bytes":1e400,"x":', 1)


def ev_deep_key() -> str:
    recs = events_records()
    first = next(r for r in recs if r["event"] == "delete")
    text = jsonl(recs)
    line = dump(first)
    deep = line.replace('"key":', '"key":' + "[" * 100_000 + "]" * 100_000 + ',"x":', 1)
    return text.replace(line, deep, 1)


def ev_truthy_string() -> str:
    recs = events_records()
    first = next(r for r in recs if r["event"] == "delete")
    first["key_present"] = "false"
    return jsonl(recs)


HOSTILE_SNAPSHOTS: dict[str, Callable[[], str]] = {
    "zlib-bomb": snap_zlib_bomb,
    "declared-huge": snap_declared_huge,
    "version-string": snap_version_string,
    "truthy-string": snap_truthy_string,
    "infinity": snap_infinity,
    "overflowing-number": snap_overflowing_number,
    "deep-nesting": snap_deep_valid,
    "classic-b0-growing": snap_classic_b0_growing,
}

HOSTILE_EVENTS: dict[str, Callable[[], str]] = {
    "slots-per-group-1e9": ev_huge_slots_per_group,
    "infinity": ev_infinity,
    "nan-memory": ev_nan_memory,
    "overflowing-number": ev_overflowing_number,
    "deep-key": ev_deep_key,
    "truthy-string": ev_truthy_string,
}


# --------------------------------------------------------------------------- the runner


@dataclass
class Limited:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_mb: float
    timed_out: bool


def run_limited(args: list[str], *, mem_mb: int = 512, timeout: float = 60) -> Limited:
    """``python -m dlvsnap ARGS`` in a subprocess whose address space is capped at ``mem_mb``
    (RLIMIT_AS), killed after ``timeout`` seconds; its wall time and peak RSS (wait4)."""
    limit = mem_mb << 20

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(
            [sys.executable, "-m", "dlvsnap", *args],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            preexec_fn=cap,  # noqa: PLW1509 (the child only sets its own limit)
            env=env,
            cwd=ROOT,
        )
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            os.kill(p.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        return Limited(
            p.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            seconds,
            usage.ru_maxrss / 1024,
            timed_out.is_set(),
        )
