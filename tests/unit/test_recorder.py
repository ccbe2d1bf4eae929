"""The watch engine's recorder on synthetic swiss maps (tests/unit/synth.py) with a fake call
control: what is read before and after a call, in which order the call is ended, waited for
and resumed, and what happens when the map moves, the probe is wrong, or the user stops the
program mid-call. No Delve, no Go: the recorder speaks neither."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from dlvsnap.decode import decode_map_type, make_decoder
from dlvsnap.layouts import load_layout
from dlvsnap.memory import SparseMem
from dlvsnap.model import EMPTY, FULL, Location
from dlvsnap.watch.hits import CallEnd, Hit, KeyArg, UsersStop
from dlvsnap.watch.options import Note, WatchOptions
from dlvsnap.watch.recorder import Recorded, Recorder, deleted_key
from dlvsnap.watch.trust import HashTrust, Pending, Refused, Trusted
from dlvsnap.watch.watched import WatchedMap
from tests.unit.synth import EMPTY as EMPTY_BYTE
from tests.unit.synth import SwissMap

LAYOUT = load_layout("swiss", "go1.26.8", 8, True)
GROUPS = 2
KEYS = [0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11]  # six in each group


class FakeHash:
    """Places key k in group k & mask with h2 = k & 0x7f (h1 = k): the synthetic map below
    puts its keys there, as the runtime would under this hash."""

    name = "fake"

    def __call__(self, data: bytes, seed: int) -> int:
        k = int.from_bytes(data, "little", signed=True)
        return (k << 7) | (k & 0x7F)


def poke(mem: SparseMem, addr: int, data: bytes) -> None:
    """Write ``data`` at ``addr`` into the segment holding it (what the program would do)."""
    base = max(b for b in mem.segments if b <= addr)
    seg = bytearray(mem.segments[base])
    seg[addr - base : addr - base + len(data)] = data
    mem.add(base, bytes(seg))


@dataclass
class Program:
    """A one-table swiss map[int64]int64 of KEYS in memory, and deletes done to it."""

    sm: SwissMap = field(default_factory=lambda: SwissMap(LAYOUT))
    header: int = 0
    table: int = 0
    groups: int = 0
    type_desc: int = 0
    slots: dict[int, tuple[int, int]] = field(default_factory=dict)  # key -> (group, slot)

    def __post_init__(self) -> None:
        sm = self.sm
        self.type_desc = sm.type_desc()
        per_group: list[dict[int, tuple[int, int]]] = [{} for _ in range(GROUPS)]
        for k in KEYS:
            g = k & (GROUPS - 1)
            slot = len(per_group[g])
            per_group[g][slot] = (k & 0x7F, k)
            self.slots[k] = (g, slot)
        self.table = sm.table(
            [sm.group(s) for s in per_group], used=len(KEYS), growth_left=2, index=0
        )
        ts = LAYOUT.struct("table")
        self.groups = int(ts.parse(sm.mem.read(self.table, ts.size))["groups"]["data"])
        self.header = sm.header(used=len(KEYS), dir_ptr=sm.directory([self.table]), dir_len=1)

    @property
    def mem(self) -> SparseMem:
        return self.sm.mem

    def _add(self, struct: str, addr: int, fld: str, delta: int) -> None:
        s = LAYOUT.struct(struct)
        off, size = s.offset(fld), s.field(fld).size
        v = int.from_bytes(self.mem.read(addr + off, size), "little") + delta
        poke(self.mem, addr + off, v.to_bytes(size, "little"))

    def delete(self, k: int, header: int | None = None) -> None:
        """What runtime.mapdelete does for a key present: its ctrl byte becomes empty (its
        group has other empty slots), Map.used, table.used and growthLeft follow."""
        g, slot = self.slots.pop(k)
        ctrl_at = self.groups + g * self.sm.group_size + slot  # little-endian ctrl word
        poke(self.mem, ctrl_at, bytes([EMPTY_BYTE]))
        self._add("Map", self.header if header is None else header, "used", -1)
        self._add("table", self.table, "used", -1)
        self._add("table", self.table, "growthLeft", 1)

    def hit(self, k: int, **kw: int) -> Hit:
        return Hit(
            entry="runtime.mapdelete_fast64",
            goroutine=1,
            map_type=self.type_desc,
            map_addr=kw.pop("map_addr", self.header),
            key=KeyArg(is_string=False, value=k & (1 << 64) - 1),  # the runtime's key uint64
            location=Location("main.main", "main.go", 10),
            via="",
            caller_frame=1,
            **kw,
        )


class FakeCall:
    """A CallControl: ``end`` runs the call (``on_end``), ``wait`` reports how it ended."""

    def __init__(self, on_end: Callable[[], None], users: str = "", mid_call: str = "") -> None:
        self.on_end = on_end
        self.users = users  # a user's breakpoint where the call ended
        self.mid_call = mid_call  # a user's breakpoint while the call ran: UsersStop
        self.log: list[str] = []

    def end(self) -> None:
        self.log.append("end")
        self.on_end()

    def wait(self) -> CallEnd:
        self.log.append("wait")
        if self.mid_call:
            raise UsersStop(self.mid_call)
        return CallEnd(self.users)

    def resume(self) -> None:
        self.log.append("resume")


@dataclass
class Engine:
    prog: Program
    opts: WatchOptions
    watched: WatchedMap
    notes: list[Note] = field(default_factory=list)

    def __post_init__(self) -> None:
        trust = HashTrust(lambda dec, mem: Pending(FakeHash()), self.notes.append)
        self.recorder = Recorder(self.opts, trust, self.watched)
        mt = decode_map_type(LAYOUT, self.prog.mem, self.prog.type_desc)
        self.dec = make_decoder(LAYOUT, self.prog.mem, mt)

    def delete(self, k: int, call: FakeCall | None = None, *, last: bool = False) -> Recorded:
        call = call or FakeCall(lambda: self.prog.delete(k))
        self.call = call
        hit = self.prog.hit(k)
        return self.recorder.record(hit, call, self.dec, self.prog.mem, last_event=last)


def _engine(*, pipeline: bool) -> Engine:
    prog = Program()
    opts = WatchOptions("m", pipeline=pipeline, crosscheck=True)
    return Engine(prog, opts, WatchedMap(mode="heap", header=prog.header))


def _changed(r: Recorded) -> list[tuple[object, str, str]]:
    return [(c.key, c.before_state, c.after_state) for c in r.diff.changes]


@pytest.mark.parametrize("pipeline", [False, True], ids=["plain", "pipelined"])
def test_the_first_delete_reads_the_whole_map_then_the_hash_is_trusted(pipeline: bool) -> None:
    e = _engine(pipeline=pipeline)
    r = e.delete(0)
    assert not r.before.partial and not r.after.partial  # nothing known yet: whole snapshots
    assert e.call.log == ["end", "wait", "resume"] if pipeline else ["end", "wait"]
    assert _changed(r) == [(0, FULL, EMPTY)] and r.warnings == ()
    assert isinstance(e.recorder.trust.state(e.prog.type_desc, e.dec, e.prog.mem), Trusted)
    assert (r.before.count, r.after.count) == (12, 11)


def test_a_probe_reads_what_the_delete_can_touch() -> None:
    e = _engine(pipeline=False)
    e.delete(0)
    r = e.delete(5)  # group 1
    assert r.before.partial and r.after.partial
    assert set(r.before.rows.index.tolist()) == {1}  # the key's group, found there
    assert _changed(r) == [(5, FULL, EMPTY)]
    assert r.warnings == ()  # the crosscheck against whole snapshots agrees
    assert e.call.log == ["end", "wait"]


def test_a_pipelined_delete_is_probed_and_reread_from_bytes_read_raw() -> None:
    """The probe's bytes are captured before the call ends and decoded while it runs; the
    bytes after it are captured, the program resumed, then they are decoded: the event is
    the same as without the pipeline (crosscheck: no warning)."""
    e = _engine(pipeline=True)
    e.delete(0)
    seen: list[int] = []

    def run_delete() -> None:  # the program deletes only once the call is ended
        seen.append(len(e.call.log))
        e.prog.delete(7)

    r = e.delete(7, FakeCall(run_delete))
    assert e.call.log == ["end", "wait", "resume"] and seen == [1]
    assert r.before.partial and r.after.partial
    assert _changed(r) == [(7, FULL, EMPTY)] and r.warnings == ()
    assert (r.before.count, r.after.count) == (11, 10)


def test_the_last_event_does_not_resume_the_program() -> None:
    e = _engine(pipeline=True)
    e.delete(0)
    e.delete(2, last=True)
    assert e.call.log == ["end", "wait"]


def test_a_probe_that_disagrees_with_the_count_gives_up_the_hash() -> None:
    """The probe found the key, but the call did not change the count: a warning, and whole
    snapshots from the next delete on."""
    e = _engine(pipeline=False)
    e.delete(0)
    r = e.delete(4, FakeCall(lambda: None))  # the program deleted nothing
    assert r.before.partial
    assert any(
        "the probe found the key present but the count went 11 -> 11" in w for w in r.warnings
    )
    state = e.recorder.trust.state(e.prog.type_desc, e.dec, e.prog.mem)
    assert isinstance(state, Refused) and "disagreed with the delete of 4" in state.reason
    r = e.delete(6)
    assert not r.before.partial and _changed(r) == [(6, FULL, EMPTY)]


def test_a_header_that_moves_with_its_stack_during_the_call() -> None:
    """A header on a goroutine's stack: the stack grows during the call and is copied; the
    read after the call is at the header's new place (its distance from the stack's top)."""
    prog = Program()
    hdr_size = LAYOUT.struct("Map").size
    stack_hi = prog.header + 0x100  # the header 0x100 below its stack's top
    g = prog.sm.alloc((0).to_bytes(8, "little") + stack_hi.to_bytes(8, "little"))
    watched = WatchedMap(mode="stack", goroutine=1, stack_offset=0x100, header=prog.header)
    e = Engine(prog, WatchOptions("m", crosscheck=True), watched)
    moved = prog.sm.alloc(bytes(hdr_size))

    def grow_and_delete() -> None:
        poke(prog.mem, moved, prog.mem.read(prog.header, hdr_size))  # copystack
        poke(prog.mem, g + 8, (moved + 0x100).to_bytes(8, "little"))  # the new stack.hi
        prog.delete(3, header=moved)

    hit = prog.hit(3, stack_lo=prog.header - 0x1000, stack_hi=stack_hi, g_addr=g)
    r = e.recorder.record(hit, FakeCall(grow_and_delete), e.dec, prog.mem, last_event=False)
    assert r.header_after == moved and r.after.addr == moved
    assert _changed(r) == [(3, FULL, EMPTY)]
    assert (r.before.count, r.after.count) == (12, 11)


@pytest.mark.parametrize("pipeline", [False, True], ids=["plain", "pipelined"])
def test_a_users_stop_during_the_call_ends_the_recording(pipeline: bool) -> None:
    e = _engine(pipeline=pipeline)
    e.delete(0)
    call = FakeCall(lambda: e.prog.delete(2), mid_call="breakpoint 3 at main.f main.go:7")
    with pytest.raises(UsersStop, match="breakpoint 3"):
        e.delete(2, call)
    assert call.log == ["end", "wait"]  # never resumed: the program is the user's now


def test_a_users_breakpoint_where_the_call_ends_is_passed_on_and_not_resumed() -> None:
    e = _engine(pipeline=True)
    e.delete(0)
    call = FakeCall(lambda: e.prog.delete(2), users="breakpoint 4 at main.main main.go:11")
    r = e.delete(2, call)
    assert r.end.users_stop == "breakpoint 4 at main.main main.go:11"
    assert call.log == ["end", "wait"] and _changed(r) == [(2, FULL, EMPTY)]


def test_deleted_key_from_the_entry_points_argument() -> None:
    prog = Program()
    dec = make_decoder(LAYOUT, prog.mem, decode_map_type(LAYOUT, prog.mem, prog.type_desc))
    assert deleted_key(prog.hit(-5), dec.keys, prog.mem, "little") == (-5, True)
    clear = Hit(
        "runtime.mapclear", 1, prog.type_desc, prog.header, None, Location("f", "f.go", 1), "", 1
    )
    assert deleted_key(clear, dec.keys, prog.mem, "little") == (None, False)
    unreadable = prog.hit(0)
    unreadable = Hit(**{**unreadable.__dict__, "key": KeyArg(is_string=False, value=None)})
    assert deleted_key(unreadable, dec.keys, prog.mem, "little") == (None, False)
