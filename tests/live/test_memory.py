"""The two memory readers agree byte for byte, and a watch through ExamineMemory alone works."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlvsnap.delve.memory import DelveMem
from dlvsnap.memory import ProcMem
from dlvsnap.model import DeleteEvent
from dlvsnap.session import Session
from dlvsnap.watch import MapWatch, WatchOptions
from tests.live.invariants import check_deletes
from tests.support import Variant, build_fixture, dlv_for, parse_oracle, run_watch, variants

pytestmark = pytest.mark.live

VARIANTS = variants()


@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.id)
def test_proc_and_examine_memory_agree(v: Variant) -> None:
    """Header, directory/tables and every group or bucket array of a 5,000-entry map; the
    classic bucket array (147 KB) spans several ExamineMemory calls; scattered reads, one
    by one and as spans."""
    compared: list[int] = []
    spans: list[int] = []
    with Session.launch(dlv_for(v), build_fixture("large", variant=v), [], sink=None) as s:

        def on_event(ev: DeleteEvent) -> None:
            proc, delve = ProcMem(s.pid), DelveMem(s.client)
            snap = ev.after
            regions = [(snap.addr, 48)]
            regions += [(t.addr, 32) for t in snap.tables]
            regions += [(t.groups_addr, t.n_groups * snap.map_type.group_size) for t in snap.tables]
            if snap.impl == "classic":
                nb = 1 << int(snap.header["B"])
                regions.append((int(snap.header["buckets"]), nb * snap.map_type.group_size))
            for addr, size in regions:
                assert proc.read(addr, size) == delve.read(addr, size), hex(addr)
                compared.append(size)
            # the scatter paths (process_vm_readv) against ExamineMemory, region by region
            assert proc.read_many(regions) == delve.read_many(regions)
            starts = np.array([a for a, _ in regions], dtype=np.uint64)
            assert proc.read_each(starts, 16) == delve.read_each(starts, 16)
            if not snap.partial:  # hundreds of regions side by side, shuffled: as spans
                near = np.random.default_rng(1).permutation(snap.rows.addr[:512])
                near = near.astype(np.uint64)
                assert len(near) >= 64 and proc._read_spans(near, 16) is not None
                one_by_one = b"".join(proc.read(int(a), 16) for a in near.tolist())
                assert proc.read_each(near, 16) == one_by_one
                assert proc.read_each(near[:64], 16) == delve.read_each(near[:64], 16)
                spans.append(len(near))
            proc.close()

        MapWatch(s, WatchOptions(expr="main.table", max_events=2), on_event).run()
    assert sum(compared) > 65536 * 2 or v.impl == "swiss", compared
    assert len(compared) >= 2 and spans


@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.id)
def test_watch_through_examine_memory_only(tmp_path: Path, v: Variant) -> None:
    dlv_for(v)
    run = run_watch(
        build_fixture("deletes", variant=v), "m", "--live-keys", "--reader", "delve", tmp=tmp_path
    )
    assert run.returncode == 0, run.stderr
    check_deletes(run, parse_oracle(run.target_output), "int")
    assert run.of("summary")[0]["memory_reader"] == "delve"
