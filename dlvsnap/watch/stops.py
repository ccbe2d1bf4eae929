"""Where the program stops, and how a watched call ends: the only part of the engine that
speaks Delve. It hands on each hit on a map entry point as a ``Hit`` and the end of each
watched call as a ``CallControl`` (hits.py), in plain data.

Breakpoints go on every entry point in the binary of the operations watched
(``runtime.mapdelete``, ``_fast32``, ``_fast64``, ``_faststr``, ``runtime.mapclear``...;
reflect's call these and are reported as ``via``), with a condition that matches the
watched map's calls only once it is known (watched.py). Cost per hit, measured
(../shared/facts.md): once the map is known, a hit carries its return address instead of
a stack trace (on amd64) and, after each breakpoint's first hit, only the key argument
("lean"). A call made directly from its call site ends at a breakpoint on its return
address (cheaper than stepOut); stepOut where that cannot work.

Watchpoint mode (``--mode watchpoint``, see docs/watchpoints.md): once the watched map's
first call is recorded, the breakpoints are replaced by a hardware write watchpoint on the
map header's writing flag, which every write operation sets before its first change and
clears after its last. A trap with the flag set is a call's start (a ``Hit``), with the
flag clear its end: only the watched map's writes stop the program. A package variable's
own slot gets a second watchpoint, which moves the first when the variable is assigned.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass

from dlvsnap.delve.client import BreakpointSpec, DelveClient
from dlvsnap.delve.types import (
    Breakpoint,
    DebuggerState,
    Frame,
    LoadConfig,
    Thread,
    Variable,
)
from dlvsnap.errors import DlvsnapError, NoDeletesError, RPCError, TargetError
from dlvsnap.kinds import Kind
from dlvsnap.model import Location
from dlvsnap.session import Session
from dlvsnap.watch.hits import CallEnd, Hit, KeyArg, UsersStop
from dlvsnap.watch.options import op_of, ops_regex
from dlvsnap.watch.watched import WatchedMap

_SKIP_FRAME = re.compile(r"^(runtime\.|internal/|reflect\.|maps\.)")
_REFLECT_ENTRY = re.compile(r"^reflect\.map(delete|delete_faststr|clear)$")
STACK_DEPTH = 12
# While resolving with --site, --in or --frame: frames further out than the caller's matter.
DEEP_STACK_DEPTH = 64
# Evaluated by Delve at every hit and returned with the stop: no extra round trip.
_STACK_VARS = ("runtime.curg.stack.lo", "runtime.curg.stack.hi", "uintptr(runtime.curg)")
# The entry point's return address: on amd64 the CALL pushed it just below the frame's
# canonical frame address (runtime.frameoff is that address minus the stack's top). Once the
# map is known, hits carry this instead of a stack trace, which costs Delve a stack walk and
# a larger reply at every hit; the caller's location is then looked up once per call site.
_RET_VAR = "*(*uintptr)(uintptr(runtime.curg.stack.hi) + uintptr(runtime.frameoff) - 8)"


@dataclass(frozen=True)
class _Caller:
    frame: int  # the caller's frame in the goroutine's stack (0: the entry point's)
    location: Location
    via: str  # the reflect entry point the call went through, if any


@dataclass
class _Return:
    """A breakpoint on a call site's return address (see StopSource._return_site)."""

    bp: Breakpoint
    goroutine: int  # the goroutine its condition names


@dataclass(frozen=True)
class _Lean:
    """A breakpoint whose hits no longer carry the entry point's arguments (_make_lean)."""

    map_type: int  # from its first hit
    key_param: str  # the key parameter's name ("" for mapclear)


# The runtime's map operations: the first of these on a trap's stack is the operation (the
# reflect entry points call them; ``via`` names those).
_RUNTIME_ENTRY = re.compile(r"^runtime\.(mapdelete|mapassign|mapclear)")
_FAST_ENTRY = re.compile(r"_fast(32|64|str|32ptr|64ptr)$")
# The key parameter of the innermost frame at a trap: swiss (*Map).Delete/PutSlot and the
# fast entry points name it key, classic mapdelete_faststr/mapassign_faststr ky.
_KEY_NAMES = ("key", "ky")
# Where a fast entry point's key is at a trap when its DWARF no longer says (an optimised
# runtime's loclists end once the key is hashed): amd64's register ABI gives every register
# argument a spill slot in the caller's frame, just above the return address, in order
# (t, h, key); a fast entry point takes the key's address to hash it, so the key is spilled
# there, and nothing writes that slot again during the call. Checked live on every classic
# release of the matrix against the program's own keys (tests/live/test_watch.py).
_SPILLED_KEY = tuple(
    f"*(*uintptr)(uintptr(runtime.curg.stack.hi) + uintptr(runtime.frameoff) + {off})"
    for off in (16, 24)  # the key's word(s): a string's data and length
)


@dataclass
class _Trap:
    """The watchpoints of watchpoint mode: on the header's writing flag, and (a package
    variable) on the variable's slot."""

    flag_bp: Breakpoint | None  # None while the variable holds a nil map
    header: int
    flag_var: str  # the expression of the flag's byte, returned at each trap
    var_bp: Breakpoint | None = None


@dataclass
class Stop:
    """One stop of the program: it exited, or hit entry points (``hits``, parsed as they
    are asked for: parsing may cost a stack trace), or stopped for someone else."""

    source: StopSource
    exited: bool
    exit_status: int
    threads: list[Thread]  # the threads at the entry points' breakpoints
    dropped_returns: bool  # return breakpoints this stop hit were dropped (drop_returns)
    users_stop: str  # a breakpoint of someone else's in this stop ("" if none)

    @property
    def has_hits(self) -> bool:
        return bool(self.threads)

    def hits(self) -> Iterator[Hit]:
        for th in self.threads:
            yield self.source.parse_hit(th)


class StopSource:
    def __init__(
        self,
        session: Session,
        watched: WatchedMap,
        ops: tuple[str, ...],
        deep: bool = False,
        *,
        mode: str = "breakpoints",
        writing_flag: tuple[int, int] = (0, 0),
    ) -> None:
        self.session = session
        self.mode = mode  # asked for: "breakpoints" or "watchpoint"
        self.flag_off, self.flag_mask = writing_flag  # where a header says it is written
        self.trap: _Trap | None = None  # watchpoint mode, once armed
        self.fallback = ""  # why watchpoint mode could not be armed ("" if not tried)
        self.map_type = 0  # the watched map's type descriptor (watchpoint mode, see arm)
        self.depth = DEEP_STACK_DEPTH if deep else STACK_DEPTH  # frames per hit's trace
        self.client: DelveClient = session.client
        self.watched = watched
        self.ops = ops
        # The map pointer parameter of every entry point: `m *maps.Map` (swiss), `h *hmap`
        # (classic). Conditions name it; arguments are read by position.
        self.map_param = "m" if session.target.map_impl == "swiss" else "h"
        self.entry_bps: list[Breakpoint] = []
        self.entry_ids: set[int] = set()  # amending keeps a breakpoint's id
        self._resumed: int | None = None  # a continue sent ahead (pipeline): its request id
        self._state: DebuggerState | None = None  # the last stop
        self._callers: dict[int, _Caller] = {}  # by return address (see _caller)
        self._lean: dict[int, _Lean] = {}  # by breakpoint id
        # by return address: the call site's return breakpoint, or None where the site
        # steps out (its breakpoint stopped a call dlvsnap did not watch)
        self._returns: dict[int, _Return | None] = {}
        self._return_ids: dict[int, int] = {}  # return breakpoint id -> return address

    # -- breakpoints on the entry points -----------------------------------------------------
    def place(self) -> None:
        funcs = self.client.list_functions(ops_regex(self.ops))
        if not funcs:
            what = {"delete": "runtime.mapdelete*", "clear": "runtime.mapclear"}
            what["assign"] = "runtime.mapassign*"
            raise NoDeletesError(
                f"the program never does {' or '.join(self.ops)} on a map: no "
                f"{' or '.join(what[o] for o in self.ops)} in the binary"
            )
        cond = self.watched.condition(self.map_param)
        for fn in funcs:
            self.entry_bps.append(
                self.session.create_breakpoint(
                    BreakpointSpec(
                        function_name=fn,
                        cond=cond,
                        stacktrace=0 if self._light() else self.depth,
                        variables=self._hit_vars(),
                        load_args=LoadConfig(max_string_len=0, max_struct_fields=0),
                    )
                )
            )
        self.entry_ids = {bp.id for bp in self.entry_bps}

    def retarget(self) -> None:
        """The watched map became known: conditions that match its calls only."""
        cond, hit_vars = self.watched.condition(self.map_param), self._hit_vars()
        depth = 0 if self._light() else self.depth
        self.entry_bps = [
            self.client.amend_breakpoint(bp, cond, hit_vars, depth) for bp in self.entry_bps
        ]

    def _hit_vars(self) -> tuple[str, ...]:
        """The goroutine's stack bounds matter only while the map may be on a stack: each
        variable costs Delve an evaluation at every hit."""
        stack = _STACK_VARS if self.watched.on_stack_maybe else ()
        return stack + ((_RET_VAR,) if self._light() else ())

    def _light(self) -> bool:
        """Hits without a stack trace (see _RET_VAR): once the map is known (discovery
        evaluates EXPR in the caller's frame), on amd64."""
        return self.watched.known and self.session.target.goarch == "amd64"

    # -- stops ---------------------------------------------------------------------------------
    def next(self) -> Stop:
        """Run the program to its next stop (or take the one a pipelined continue reached)."""
        if self._resumed is not None:
            st, self._resumed = self.client.command_reply(self._resumed), None
        else:
            st = self.client.command("continue")
        self._state = st
        if st.exited:
            return Stop(self, True, st.exit_status, [], False, "")
        at_bps = st.threads_at_breakpoints()
        entries = [t for t in at_bps if t.breakpoint and t.breakpoint.id in self.entry_ids]
        passed = self._traps(at_bps, entries)
        dropped = self.drop_returns(st)
        return Stop(self, False, st.exit_status, entries, dropped or passed, self.users_stop(st))

    # -- watchpoint mode ------------------------------------------------------------------------
    @property
    def mode_in_use(self) -> str:
        return "watchpoint" if self.trap is not None else "breakpoints"

    def arming(self) -> bool:
        """Whether the next recorded call switches to watchpoint mode (see ``arm``)."""
        return self.mode == "watchpoint" and self.trap is None and not self.fallback

    def arm(self, map_type: int) -> str:
        """After the watched map's first recorded call (its type descriptor ``map_type``),
        with the program stopped: replace the breakpoints by a watchpoint on its writing
        flag. What happened, in a line ("": nothing to do); on failure breakpoints stay,
        and ``fallback`` says why."""
        if not self.arming():
            return ""
        self.map_type = map_type
        w = self.watched
        if w.mode == "stack":
            self.fallback = (
                "the map's header is on a goroutine's stack, which moves: breakpoints stay"
            )
            return self.fallback
        try:
            self.trap = self._set_traps(w)
        except DlvsnapError as e:  # no debug register left, an old Delve, not amd64...
            self.fallback = f"Delve could not set a watchpoint ({e}): breakpoints stay"
            return self.fallback
        for bp in self.entry_bps:
            self.client.clear_breakpoint(bp.id)
        for ret in list(self._return_ids):
            self.client.clear_breakpoint(ret)
        self.entry_bps, self.entry_ids = [], set()
        self._returns, self._return_ids, self._callers = {}, {}, {}
        also = " and one on the variable" if self.trap.var_bp is not None else ""
        return (
            f"watchpoint mode: a hardware write watchpoint on the map's writing flag{also}; "
            "other maps' calls no longer stop the program"
        )

    def _set_traps(self, w: WatchedMap) -> _Trap:
        var_bp, header = None, w.header
        if w.mode == "var":
            width = "uint64" if self.session.target.ptr_size == 8 else "uint32"
            var_bp = self.session.create_watchpoint(w.var_addr, width)
            header = self._variable_now()
        try:
            return _Trap(*self._flag_trap(header), var_bp=var_bp)
        except DlvsnapError:
            if var_bp is not None:
                self.client.clear_breakpoint(var_bp.id)
            raise

    def _flag_trap(self, header: int) -> tuple[Breakpoint | None, int, str]:
        if header == 0:
            return None, 0, ""
        flag = header + self.flag_off
        expr = f"*(*uint8)({flag:#x})"  # the flag's value, returned at each trap
        spilled = _SPILLED_KEY if self.session.target.goarch == "amd64" else ()
        variables = (expr, *_KEY_NAMES, *spilled)
        return self.session.create_watchpoint(flag, "uint8", variables, STACK_DEPTH), header, expr

    def _traps(self, at_bps: list[Thread], entries: list[Thread]) -> bool:
        """Sort this stop's watchpoint traps: a watched call's start goes into ``entries``;
        anything else (a call's end, an operation not watched, the variable assigned) is
        passed. Whether any was passed."""
        trap, passed = self.trap, False
        if trap is None:
            return False
        for t in at_bps:
            bp_id = t.breakpoint.id if t.breakpoint else 0
            if trap.flag_bp is not None and bp_id == trap.flag_bp.id:
                if self._starts_a_watched_call(t, trap):
                    entries.append(t)
                else:
                    passed = True
            elif trap.var_bp is not None and bp_id == trap.var_bp.id:
                self._follow_variable(trap)
                passed = True
        return passed

    def _starts_a_watched_call(self, t: Thread, trap: _Trap) -> bool:
        info = t.breakpoint_info
        if info is None:
            return False
        var = {v.name: v for v in info.variables}
        if not _int_var(var, trap.flag_var) & self.flag_mask:
            return False  # cleared: a call's end (the watched one's is awaited in returned)
        entry = next((f.function for f in info.stacktrace if _RUNTIME_ENTRY.match(f.function)), "")
        # a write of the flag outside a map operation (the header's memory reused) is passed
        return bool(entry) and op_of(entry) in self.ops

    def _follow_variable(self, trap: _Trap) -> None:
        """The package variable was assigned: the flag watchpoint moves to its new map."""
        header = self._variable_now()
        if header == trap.header:
            return
        if trap.flag_bp is not None:
            self.client.clear_breakpoint(trap.flag_bp.id)
        trap.flag_bp, trap.header, trap.flag_var = self._flag_trap(header)

    def _variable_now(self) -> int:
        """The map header the watched package variable holds now (0: nil)."""
        t, addr = self.session.target, self.watched.var_addr
        raw = self.session.memory(addr, t.ptr_size).read(addr, t.ptr_size)
        return int.from_bytes(raw, "little" if t.little_endian else "big")

    def _trap_hit(self, th: Thread) -> Hit:
        """A watched call's start, at a watchpoint trap: the operation and the caller from
        the trap's stack, the key from the innermost frame (a pointer to it, except in a
        fast entry point's own frame, where it is the value)."""
        trap, info = self.trap, th.breakpoint_info
        assert trap is not None and info is not None
        frames = info.stacktrace
        entry = next(f.function for f in frames if _RUNTIME_ENTRY.match(f.function))
        var = {v.name: v for v in info.variables}
        key = _trap_key(var, frames[0].function, entry)
        caller, frames = self._caller(th, frames, 0)
        return Hit(
            entry=entry,
            goroutine=th.goroutine_id,
            map_type=self.map_type,
            map_addr=trap.header,
            key=key,
            location=caller.location,
            via=caller.via,
            caller_frame=caller.frame,
            frames=tuple(Location(f.function, f.file, f.line) for f in frames),
            writing_set=True,
        )

    def _trap_ended(self, st: DebuggerState, g: int) -> bool:
        """Whether this stop is goroutine ``g``'s trap with the flag cleared: its call's end."""
        trap = self.trap
        assert trap is not None and trap.flag_bp is not None
        for t in st.threads_at_breakpoints():
            if t.goroutine_id != g or not t.breakpoint or t.breakpoint.id != trap.flag_bp.id:
                continue
            var = {v.name: v for v in (t.breakpoint_info.variables if t.breakpoint_info else ())}
            if not _int_var(var, trap.flag_var) & self.flag_mask:
                return True
        return False

    def users_stop(self, st: DebuggerState) -> str:
        """A breakpoint of someone else's in this stop ("" if none)."""
        for t in st.threads_at_breakpoints():
            if t.breakpoint and not self.session.owns(t.breakpoint):
                return f"breakpoint {t.breakpoint.id} at {Location(t.function, t.file, t.line)}"
        return ""

    def drop_returns(self, st: DebuggerState, awaited: _Return | None = None) -> bool:
        """Remove the return breakpoints this stop hit other than ``awaited``: their call
        sites also call for maps (or goroutines) dlvsnap does not watch, so they step out
        from now on. Whether there were any."""
        dropped = False
        for t in st.threads_at_breakpoints():
            bp_id = t.breakpoint.id if t.breakpoint else 0
            if bp_id in self._return_ids and (awaited is None or bp_id != awaited.bp.id):
                self._returns[self._return_ids.pop(bp_id)] = None
                self.client.clear_breakpoint(bp_id)
                dropped = True
        return dropped

    def clear(self) -> int | None:
        """The watch is over: a continue sent ahead is halted (an error mid-pipeline), and
        dlvsnap's breakpoints are removed. The program's exit status if it exited meanwhile."""
        exited = None
        if self._resumed is not None:
            with contextlib.suppress(DlvsnapError):
                self.client.send_command("halt")
                st = self.client.command_reply(self._resumed, timeout=10.0)
                exited = st.exit_status if st.exited else None
            self._resumed = None
        self.session.clear_owned_breakpoints()  # after an exit too: a restart would set them
        return exited

    # -- hits ----------------------------------------------------------------------------------
    def parse_hit(self, th: Thread) -> Hit:
        info, bp = th.breakpoint_info, th.breakpoint
        assert info is not None and bp is not None
        trap = self.trap
        if trap is not None and trap.flag_bp is not None and bp.id == trap.flag_bp.id:
            return self._trap_hit(th)
        var = {v.name: v for v in info.variables}
        lean = self._lean.get(bp.id)
        if lean is not None:
            typ, map_addr = lean.map_type, self._lean_map_addr(var)
            key_arg = var.get(lean.key_param) if lean.key_param else None
        else:
            args = info.arguments
            if len(args) < 2:
                n = len(args)
                raise TargetError(f"{th.function}: Delve returned {n} arguments, expected t, m")
            typ, map_addr = _pointer_arg(th, args[0]), _pointer_arg(th, args[1])
            key_arg = args[2] if len(args) > 2 else None
            if self._light() and self.watched.mode in ("var", "heap") and map_addr:
                # the condition matched the watched map itself (a package variable may
                # still be nil, and a nil map of any type matches it then; a stack offset
                # may be another frame's map)
                self._make_lean(bp.id, typ, args)
        ret = _int_var(var, _RET_VAR)
        caller, frames = self._caller(th, info.stacktrace, ret)
        return Hit(
            entry=th.function,
            goroutine=th.goroutine_id,
            map_type=typ,
            map_addr=map_addr,
            key=_key_arg(key_arg),
            location=caller.location,
            via=caller.via,
            caller_frame=caller.frame,
            frames=tuple(Location(f.function, f.file, f.line) for f in frames),
            stack_lo=_int_var(var, _STACK_VARS[0]),
            stack_hi=_int_var(var, _STACK_VARS[1]),
            g_addr=_int_var(var, _STACK_VARS[2]),
            return_addr=ret if self._callers.get(ret) is caller else 0,
        )

    def _make_lean(self, bp_id: int, typ: int, args: tuple[Variable, ...]) -> None:
        """After a breakpoint's first hit once the map is known: it stops loading the entry
        point's arguments, which Delve converts at every hit. Its hits then carry only the
        key, evaluated by the name this hit gave it (names differ between entry points and
        releases); the map type is this hit's (the watched map's type never changes) and
        the map's address follows from the condition (``_lean_map_addr``)."""
        key = args[2].name if len(args) > 2 else ""
        i = next(i for i, b in enumerate(self.entry_bps) if b.id == bp_id)
        hit_vars = self._hit_vars() + ((key,) if key else ())
        self.entry_bps[i] = self.client.amend_breakpoint(
            self.entry_bps[i],
            self.watched.condition(self.map_param),
            hit_vars,
            0,
            load_args=False,
        )
        self._lean[bp_id] = _Lean(typ, key)

    def _lean_map_addr(self, var: dict[str, Variable]) -> int:
        """The map a lean breakpoint's condition matched: the variable's map (var), the
        header at its offset from the goroutine's stack top (stack), or the map (heap)."""
        w = self.watched
        if w.mode == "stack":
            return _int_var(var, _STACK_VARS[1]) - w.stack_offset
        if w.mode == "var":
            return self._variable_now()
        return w.header

    def _caller(
        self, th: Thread, frames: tuple[Frame, ...], ret: int
    ) -> tuple[_Caller, tuple[Frame, ...]]:
        """Where the program called the entry point: the first frame outside the runtime,
        reflect and generic map code, and the reflect entry on the way, if any. A hit with
        no stack trace (``_light``) gives its return address ``ret``: the call site's answer
        is kept when every frame up to the caller's is at that address (the caller, and
        functions inlined into it, called the entry point directly); else a stack trace
        is asked for at this hit. The stack trace comes along (empty when not needed)."""
        if not frames:
            known = self._callers.get(ret) if ret else None
            if known is not None:
                return known, ()
            frames = tuple(self.client.stacktrace(th.goroutine_id, self.depth))
        user = next(
            (i for i, f in enumerate(frames) if i > 0 and not _SKIP_FRAME.match(f.function)),
            1 if len(frames) > 1 else 0,
        )
        via = next((f.function for f in frames[1:user] if _REFLECT_ENTRY.match(f.function)), "")
        uf = frames[user] if frames else None
        out = _Caller(
            user,
            Location(uf.function, uf.file, uf.line) if uf else Location("?", "?", 0),
            via,
        )
        if ret and user > 0 and all(f.pc == ret for f in frames[1 : user + 1]):
            self._callers[ret] = out
        return out, frames

    # -- the end of a call ------------------------------------------------------------------------
    def call(self, hit: Hit, *, may_panic: bool) -> DelveCall:
        """Control of the call ``hit`` stopped. ``may_panic``: its key's
        hashing may panic inside the runtime, so the call may never return to its call
        site: stepOut (which also stops in the caller's deferred calls)."""
        if self.trap is not None:  # the call ends at the flag's next trap: continue
            return DelveCall(self, hit, None, trap=True)
        site = None if may_panic else self._return_site(hit)
        st = self._state
        if site is None and st is not None and st.current_goroutine_id != hit.goroutine:
            self.client.command("switchGoroutine", goroutineID=hit.goroutine)
        return DelveCall(self, hit, site)

    def _return_site(self, hit: Hit) -> _Return | None:
        """The breakpoint on the return address of a call made directly from its call site:
        a ``continue`` then ends the call, cheaper for Delve than ``stepOut`` (no stack walk,
        no temporary breakpoint set and cleared at each call). Its condition names the
        calling goroutine, amended when another one calls from there. None (step out) where
        the return address is unknown, the caller is not the call site (reflect), another
        breakpoint is already there, or that site's breakpoint once stopped a call dlvsnap
        did not watch (see drop_returns)."""
        ret, g = hit.return_addr, hit.goroutine
        if not ret or g <= 0 or (ret in self._returns and not self._returns[ret]):
            return None
        cond = f"runtime.curg.goid == {g}"
        site = self._returns.get(ret)
        if site is None:
            try:
                bp = self.session.create_breakpoint(BreakpointSpec(addrs=(ret,), cond=cond))
            except RPCError:  # a breakpoint of the user's there (--connect): step out
                self._returns[ret] = None
                return None
            site = self._returns[ret] = _Return(bp, g)
            self._return_ids[bp.id] = ret
        elif site.goroutine != g:
            site.bp, site.goroutine = self.client.amend_breakpoint(site.bp, cond), g
        return site

    def returned(
        self, hit: Hit, site: _Return | None, st: DebuggerState
    ) -> tuple[DebuggerState, str]:
        """The stop at the end of the call: stepOut's, or the call's goroutine at its
        return breakpoint; and a breakpoint of the user's at that same stop ("" if none).
        Other goroutines' stops on the way are passed (the user's end the watch: UsersStop);
        a return breakpoint hit by a call dlvsnap did not watch is dropped."""
        g = hit.goroutine
        launched = self.session.mode == "launch"
        if self.trap is not None:
            return self._trap_returned(g, st, launched)
        while not st.exited:
            ours = site is not None and any(
                t.breakpoint and t.breakpoint.id == site.bp.id and t.goroutine_id == g
                for t in st.threads_at_breakpoints()
            )
            self.drop_returns(st, site)
            if ours or (site is None and not st.next_in_progress):
                # a breakpoint of the user's at the same stop (on the return address, or
                # another goroutine's): the event is reported, then the watch ends there
                return st, "" if launched else self.users_stop(st)
            if not launched and self.users_stop(st):
                # another goroutine stopped for the user mid-call: hand the program back
                if site is None:
                    self.client.cancel_next()
                raise UsersStop(self.users_stop(st))
            if site is not None and any(
                t.goroutine_id == g and t.breakpoint and t.breakpoint.id in self.entry_ids
                for t in st.threads_at_breakpoints()
            ):
                raise TargetError(
                    f"{hit.entry} called at {hit.location} did not return (did it panic?)"
                )
            st = self.client.command("continue")  # another goroutine stopped first
        return st, ""

    def _trap_returned(
        self, g: int, st: DebuggerState, launched: bool
    ) -> tuple[DebuggerState, str]:
        """Watchpoint mode: run to goroutine ``g``'s trap that clears the flag. Other stops on
        the way: the user's end the watch (UsersStop), others are passed."""
        while not st.exited:
            if self._trap_ended(st, g):
                return st, "" if launched else self.users_stop(st)
            if not launched and self.users_stop(st):
                raise UsersStop(self.users_stop(st))
            self._traps(st.threads_at_breakpoints(), [])
            st = self.client.command("continue")
        return st, ""


class DelveCall:
    """CallControl over Delve: ``end`` sends stepOut, or continue to the return breakpoint."""

    def __init__(
        self, source: StopSource, hit: Hit, site: _Return | None, *, trap: bool = False
    ) -> None:
        self._source = source
        self._hit = hit
        self._site = site
        self._trap = trap  # the call ends at a watchpoint trap
        self._pending: int | None = None

    def end(self) -> None:
        step_out = self._site is None and not self._trap
        self._pending = self._source.client.send_command("stepOut" if step_out else "continue")

    def wait(self) -> CallEnd:
        assert self._pending is not None, "wait() before end()"
        src = self._source
        st, users = src.returned(self._hit, self._site, src.client.command_reply(self._pending))
        self._pending = None
        src._state = st
        if st.exited:
            raise TargetError(f"the program exited inside {self._hit.entry}")
        return CallEnd(users)

    def resume(self) -> None:
        src = self._source
        src._resumed = src.client.send_command("continue")


def _trap_key(var: dict[str, Variable], innermost: str, entry: str) -> KeyArg | None:
    """The key at a trap: the innermost frame's key parameter (a pointer to the key, except
    in a fast entry point's own frame, where it is the value), else a fast entry point's
    spill slot (``_SPILLED_KEY``); None when neither can be read."""
    fast = innermost == entry and _FAST_ENTRY.search(entry) is not None
    v = next((var[k] for k in _KEY_NAMES if k in var and not var[k].unreadable), None)
    if v is not None and fast and entry.endswith("_faststr") and v.kind != Kind.STRING:
        v = None  # classic mapdelete_faststr's local key, a *stringStruct, shadows ky
    key = _key_arg(v)
    if key is not None:
        return key if fast else dataclasses.replace(key, indirect=True, is_string=False)
    if not fast or _SPILLED_KEY[0] not in var:
        return None
    word, second = _int_var(var, _SPILLED_KEY[0]), _int_var(var, _SPILLED_KEY[1])
    if entry.endswith("_faststr"):
        return KeyArg(is_string=True, base=word, length=second)
    return KeyArg(is_string=False, value=word & 0xFFFFFFFF if "_fast32" in entry else word)


def _key_arg(v: Variable | None) -> KeyArg | None:
    if v is None:
        return None
    try:
        value: int | None = v.as_int()
    except ValueError:
        value = None
    return KeyArg(is_string=v.kind == Kind.STRING, base=v.base, length=v.len, value=value)


def _pointer_arg(th: Thread, v: Variable) -> int:
    try:
        return v.as_int()
    except ValueError:
        why = v.unreadable or f"value {v.value!r}"
        raise TargetError(f"{th.function}: cannot read argument {v.name}: {why}") from None


def _int_var(var: dict[str, Variable], name: str) -> int:
    v = var.get(name)
    if v is None or v.unreadable or not v.value:
        return 0
    try:
        return v.as_int()
    except ValueError:
        return 0
