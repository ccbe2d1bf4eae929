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

Watchpoint mode (``--mode watchpoint``): once the watched map's first call is recorded,
the breakpoints give way to a hardware watchpoint on its header (traps.py): only its own
writes stop the program. A stack watchpoint whose frame returned with the map brings the
breakpoints back until the map's next call.

``--until LOCATION`` (until.py places it): a stop there is neither a map call nor the
user's; it is handed on as ``Stop.until`` (a ``Reached``), or, when it comes while a
watched call is in flight, kept in ``until_reached`` and said at the call's end.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
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
from dlvsnap.model import Location
from dlvsnap.session import Session
from dlvsnap.watch.delvevars import STACK_VARS, int_var, key_arg, pointer_arg, variables
from dlvsnap.watch.hits import CallEnd, Hit, Reached, UsersStop
from dlvsnap.watch.options import Note, ops_regex
from dlvsnap.watch.traps import Traps
from dlvsnap.watch.watched import WatchedMap

_SKIP_FRAME = re.compile(r"^(runtime\.|internal/|reflect\.|maps\.)")
_REFLECT_ENTRY = re.compile(r"^reflect\.map(delete|delete_faststr|clear)$")
STACK_DEPTH = 12
# While resolving with --site, --in or --frame: frames further out than the caller's matter.
DEEP_STACK_DEPTH = 64
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


@dataclass
class Stop:
    """One stop of the program: it exited, or hit entry points (``hits``, parsed as they
    are asked for: parsing may cost a stack trace), or stopped for someone else."""

    source: StopSource
    exited: bool
    exit_status: int
    threads: list[Thread]  # the threads at the entry points' breakpoints
    # this stop was dlvsnap's own business and was dealt with: return breakpoints dropped
    # (drop_returns), a watchpoint trap that starts no watched call, a watchpoint set again
    passed: bool
    users_stop: str  # a breakpoint of someone else's in this stop ("" if none)
    notes: tuple[tuple[int, Note], ...] = ()  # what the user should know, by map (its index)
    until: Reached | None = None  # the program reached --until LOCATION at this stop

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
        maps: list[WatchedMap],
        ops: tuple[str, ...],
        deep: bool = False,
        *,
        mode: str = "breakpoints",
        writing_flag: tuple[int, int] = (0, 0),
    ) -> None:
        self.session = session
        self.mode = mode  # asked for: "breakpoints" or "watchpoint"
        self.writing_flag = writing_flag  # where a header says it is written (offset, mask)
        self.traps: dict[int, Traps] = {}  # watchpoint mode: by map (its index), once armed
        self.fallback: dict[int, str] = {}  # why a map's watchpoint could not be set
        self.depth = DEEP_STACK_DEPTH if deep else STACK_DEPTH  # frames per hit's trace
        self.client: DelveClient = session.client
        self.maps = maps  # the watched maps, in the order given
        self.watched = maps[0]
        self.ops = ops
        # calls of a watched map that started while another one's was in flight (another
        # goroutine): not recorded, said (see returned)
        self.missed: list[str] = []
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
        # --until LOCATION: the breakpoints that mean the program reached it (until.place),
        # and where it did while a watched call was in flight (the watch ends at its end)
        self.until_ids: frozenset[int] = frozenset()
        self.until_reached: Reached | None = None

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
        cond = self._condition()
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
        """A watched map became known, or a watchpoint took over a map's calls: conditions
        that match the calls of the maps still watched by breakpoints only (none left: the
        breakpoints go)."""
        if not self._on_breakpoints():
            self._remove_breakpoints()
            return
        cond, hit_vars = self._condition(), self._hit_vars()
        depth = 0 if self._light() else self.depth
        self.entry_bps = [
            self.client.amend_breakpoint(bp, cond, hit_vars, depth) for bp in self.entry_bps
        ]

    def _remove_breakpoints(self) -> None:
        for bp in self.entry_bps:
            self.client.clear_breakpoint(bp.id)
        for ret in list(self._return_ids):
            self.client.clear_breakpoint(ret)
        self.entry_bps, self.entry_ids, self._lean = [], set(), {}
        self._returns, self._return_ids, self._callers = {}, {}, {}

    def _on_breakpoints(self) -> list[WatchedMap]:
        """The watched maps whose calls the breakpoints stop (no watchpoint of their own)."""
        return [w for i, w in enumerate(self.maps) if i not in self.traps]

    def _condition(self) -> str:
        """The breakpoints' condition: any of the maps they watch ("": every call, while a
        map is being resolved)."""
        ws = self._on_breakpoints()
        if not ws or not all(w.known for w in ws):
            return ""
        conds = [w.condition(self.map_param) for w in ws]
        return conds[0] if len(conds) == 1 else " || ".join(f"({c})" for c in conds)

    def _hit_vars(self) -> tuple[str, ...]:
        """The goroutine's stack bounds matter only while a map may be on a stack: each
        variable costs Delve an evaluation at every hit."""
        stack = STACK_VARS if any(w.on_stack_maybe for w in self._on_breakpoints()) else ()
        return stack + ((_RET_VAR,) if self._light() else ())

    def _light(self) -> bool:
        """Hits without a stack trace (see _RET_VAR): once the maps are known (discovery
        evaluates EXPR in the caller's frame), on amd64."""
        known = all(w.known for w in self._on_breakpoints())
        return known and self.session.target.goarch == "amd64"

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
        passed, notes = False, list[tuple[int, Note]]()
        for i, traps in list(self.traps.items()):
            passed = traps.sort(at_bps, entries) or passed
            dealt, note = self._scope_ended(i, traps, st)
            passed = passed or dealt
            notes += [(i, note)] if note else []
        dropped = self.drop_returns(st)
        users = self.users_stop(st)
        until = self._at_until(st)
        return Stop(
            self, False, st.exit_status, entries, dropped or passed, users, tuple(notes), until
        )

    # -- --until LOCATION ----------------------------------------------------------------------
    def _at_until(self, st: DebuggerState, in_flight: bool = False) -> Reached | None:
        """A thread of this stop at ``--until`` LOCATION, as plain data (None: none)."""
        for t in st.threads_at_breakpoints() if self.until_ids else ():
            if t.breakpoint and t.breakpoint.id in self.until_ids:
                return Reached(Location(t.function, t.file, t.line), t.goroutine_id, in_flight)
        return None

    def _note_until(self, st: DebuggerState) -> None:
        """While a watched call is in flight: the first stop at LOCATION is kept (the
        continue that ends the call lets that goroutine run on)."""
        if self.until_reached is None:
            self.until_reached = self._at_until(st, in_flight=True)

    def _call_ended(self, st: DebuggerState) -> None:
        """The stop that ends a watched call: a thread at LOCATION here (the call's own
        goroutine, when LOCATION is where the call returns to) leaves the program stopped
        there, not run on from it."""
        at = self._at_until(st)
        if at is not None:
            self.until_reached = at

    def select(self, goroutine: int) -> None:
        """Make ``goroutine`` the current one (where the program is left stopped)."""
        st = self._state
        if st is not None and st.current_goroutine_id != goroutine:
            self.client.command("switchGoroutine", goroutineID=goroutine)

    # -- watchpoint mode ------------------------------------------------------------------------
    def mode_of(self, i: int) -> str:
        """How map ``i``'s calls stop the program now."""
        return "watchpoint" if i in self.traps else "breakpoints"

    def arming(self, i: int) -> bool:
        """Whether map ``i``'s next recorded call switches it to watchpoint mode (``arm``)."""
        return self.mode == "watchpoint" and i not in self.traps and i not in self.fallback

    def arm(self, i: int, map_type: int) -> str:
        """After a recorded call of map ``i`` (its type descriptor ``map_type``), with the
        program stopped at the call's end: watchpoints on the map's header take over its
        calls (traps.py), and the breakpoints stop only the other maps' calls (they go when
        no map needs them). What happened, in a line ("": nothing to do); on failure
        breakpoints stay, and ``fallback[i]`` says why."""
        if not self.arming(i):
            return ""
        w = self.maps[i]
        try:
            traps = Traps.set(self.session, w, self.ops, map_type, self.writing_flag, index=i)
        except DlvsnapError as e:  # no debug register left, an old Delve, not amd64...
            self.fallback[i] = f"Delve could not set a watchpoint ({e}): breakpoints stay"
            return self.fallback[i]
        self.traps[i] = traps
        self.retarget()
        also = " and one on the variable" if traps.has_var else ""
        where = " (on its goroutine's stack)" if w.mode == "stack" else ""
        return (
            f"watchpoint mode: a hardware write watchpoint on the map's writing flag{where}"
            f"{also}; other maps' calls no longer stop the program"
        )

    def _scope_ended(self, i: int, traps: Traps, st: DebuggerState) -> tuple[bool, Note | None]:
        """Map ``i``'s stack watchpoint, if Delve removed it at this stop (see
        Traps.scope_ended): set again; or, the map's frame having returned, breakpoints
        watch again until the map's next call (a map at the same place on the stack: its
        function called again), and a note says so; or nothing is left to watch on that
        goroutine. Whether this stop removed a watchpoint of dlvsnap's, and the note."""
        ended = traps.scope_ended(st)
        if ended != "gone":
            return bool(ended), None
        del self.traps[i]
        if self.entry_bps:
            self.retarget()
        else:
            self.place()
        return True, Note(
            "mode",
            "the frame that held the map's header returned: breakpoints watch for a map at "
            "the same place on the stack (its function called again)",
            {"mode": "breakpoints"},
        )

    def users_stop(self, st: DebuggerState) -> str:
        """A breakpoint of someone else's in this stop ("" if none); one at ``--until``
        LOCATION is not (a user's breakpoint may be there: it then means LOCATION)."""
        for t in st.threads_at_breakpoints():
            bp = t.breakpoint
            if bp and not self.session.owns(bp) and bp.id not in self.until_ids:
                return f"breakpoint {bp.id} at {Location(t.function, t.file, t.line)}"
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
        for traps in self.traps.values():
            if traps.owns(bp.id):
                return traps.hit(th, self._trap_caller)
        var = variables(th)
        lean = self._lean.get(bp.id)
        if lean is not None:
            typ, map_addr = lean.map_type, self._lean_map_addr(var)
            key_arg_v = var.get(lean.key_param) if lean.key_param else None
        else:
            args = info.arguments
            if len(args) < 2:
                n = len(args)
                raise TargetError(f"{th.function}: Delve returned {n} arguments, expected t, m")
            typ, map_addr = pointer_arg(th, args[0]), pointer_arg(th, args[1])
            key_arg_v = args[2] if len(args) > 2 else None
            if self._leanable() and map_addr:
                # the condition matched the watched map itself (a package variable may
                # still be nil, and a nil map of any type matches it then; a stack offset
                # may be another frame's map)
                self._make_lean(bp.id, typ, args)
        ret = int_var(var, _RET_VAR)
        caller, frames = self._caller(th, info.stacktrace, ret)
        return Hit(
            entry=th.function,
            goroutine=th.goroutine_id,
            map_type=typ,
            map_addr=map_addr,
            key=key_arg(key_arg_v),
            location=caller.location,
            via=caller.via,
            caller_frame=caller.frame,
            frames=tuple(Location(f.function, f.file, f.line) for f in frames),
            stack_lo=int_var(var, STACK_VARS[0]),
            stack_hi=int_var(var, STACK_VARS[1]),
            g_addr=int_var(var, STACK_VARS[2]),
            return_addr=ret if self._callers.get(ret) is caller else 0,
        )

    def _leanable(self) -> bool:
        """Whether a hit's map follows from the condition (``_lean_map_addr``): one map,
        known, not on a stack, watched by breakpoints."""
        ws = self._on_breakpoints()
        return (
            len(self.maps) == 1 and len(ws) == 1 and self._light() and ws[0].mode in ("var", "heap")
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
            return int_var(var, STACK_VARS[1]) - w.stack_offset
        if w.mode == "var":
            return self.session.read_word(w.var_addr)
        return w.header

    def variable_now(self, w: WatchedMap) -> Callable[[], int]:
        """The map header ``w``'s package variable holds, read when called."""
        return lambda: self.session.read_word(w.var_addr)

    def _trap_caller(
        self, th: Thread, frames: tuple[Frame, ...]
    ) -> tuple[Location, str, int, tuple[Frame, ...]]:
        caller, frames = self._caller(th, frames, 0)
        return caller.location, caller.via, caller.frame, frames

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
        if hit.map_index in self.traps:  # the call ends at the flag's next trap: continue
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
        traps = self.traps.get(hit.map_index)
        if traps is not None:
            return self._trap_returned(traps, g, st, launched)
        while not st.exited:
            self._note_until(st)
            ours = site is not None and any(
                t.breakpoint and t.breakpoint.id == site.bp.id and t.goroutine_id == g
                for t in st.threads_at_breakpoints()
            )
            self.drop_returns(st, site)
            if ours or (site is None and not st.next_in_progress):
                # a breakpoint of the user's at the same stop (on the return address, or
                # another goroutine's): the event is reported, then the watch ends there
                self._call_ended(st)
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
            self._missed_starts(st, g)
            st = self.client.command("continue")  # another goroutine stopped first
        return st, ""

    def _missed_starts(self, st: DebuggerState, g: int) -> None:
        """Watched calls that other goroutines start at this stop while goroutine ``g``'s is
        in flight (several maps, or two goroutines racing on one): continuing passes their
        start, so they cannot be recorded; ``missed`` says where. Other traps are dealt with
        as between calls (a package variable assigned)."""
        at_bps, starts = st.threads_at_breakpoints(), list[Thread]()
        for traps in self.traps.values():
            traps.sort(at_bps, starts)
        if self._condition():  # the breakpoints stop watched maps' calls only
            starts += [t for t in at_bps if t.breakpoint and t.breakpoint.id in self.entry_ids]
        self.missed += [
            f"goroutine {t.goroutine_id} in {t.function}" for t in starts if t.goroutine_id != g
        ]

    def _trap_returned(
        self, traps: Traps, g: int, st: DebuggerState, launched: bool
    ) -> tuple[DebuggerState, str]:
        """Watchpoint mode: run to goroutine ``g``'s trap that clears the flag. Other stops on
        the way: the user's end the watch (UsersStop), others are passed."""
        while not st.exited:
            self._note_until(st)
            if traps.ended(st, g):
                self._call_ended(st)
                return st, "" if launched else self.users_stop(st)
            if not launched and self.users_stop(st):
                raise UsersStop(self.users_stop(st))
            self._missed_starts(st, g)
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
        return CallEnd(users, until=src.until_reached is not None)

    def resume(self) -> None:
        src = self._source
        src._resumed = src.client.send_command("continue")
