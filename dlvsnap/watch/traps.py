"""Watchpoint mode (``--mode watchpoint``, see docs/watchpoints.md): once the watched map's
first call is recorded, a hardware write watchpoint on its header's writing flag replaces
the breakpoints on the runtime's entry points (stops.py). Every write operation sets that
flag before its first change and clears it after its last: a trap with the flag set is a
call's start (a ``Hit``), with the flag clear its end. Only the watched map's writes stop
the program.

* ``var``: the package variable's own slot gets a second watchpoint; when the program
  assigns it, the flag's watchpoint moves to the new map.
* ``heap``: the header never moves.
* ``stack``: a stack watchpoint (created in the scope of the goroutine that owns the stack).
  Delve moves it when the stack is copied, so the flag is read relative to the stack's top
  at each trap; and Delve removes it when the goroutine's topmost frame at its creation
  returns (``WatchOutOfScope``). If the header is still above the stack pointer then (it
  lives in an outer frame), the watchpoint is set again in the new topmost frame's scope;
  if not, the frame that held the map returned and the map is gone (``scope_ended``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass

from dlvsnap.delve.client import CURRENT_GOROUTINE
from dlvsnap.delve.types import Breakpoint, DebuggerState, Frame, LoadConfig, Thread, Variable
from dlvsnap.errors import DlvsnapError, RPCError
from dlvsnap.kinds import Kind
from dlvsnap.model import Location
from dlvsnap.session import Session
from dlvsnap.watch.delvevars import STACK_VARS, int_var, key_arg, variables
from dlvsnap.watch.hits import Hit, KeyArg
from dlvsnap.watch.options import op_of
from dlvsnap.watch.watched import WatchedMap

# The runtime's map operations: the first of these on a trap's stack is the operation (the
# reflect entry points call them; ``via`` names those).
RUNTIME_ENTRY = re.compile(r"^runtime\.(mapdelete|mapassign|mapclear)")
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
# How the key is loaded: its address and length are what matter, not its contents.
_KEY_LOAD = LoadConfig(max_string_len=0, max_struct_fields=0)
# The frames asked for at a watched call's start: enough to reach the caller through the
# runtime's own frames.
TRAP_STACK_DEPTH = 12
# The operation a trap is in, from the function that holds the write (the trap thread's
# function, not an inlined one's): a delete's and an insert's traps cost no stack trace
# then. A function not listed here is looked up on the stack (its first entry point).
_OP_OF_FUNCTION = (
    ("delete", re.compile(r"^runtime\.mapdelete|\(\*Map\)\.Delete$")),
    ("assign", re.compile(r"^runtime\.mapassign|\(\*Map\)\.PutSlot$")),
    ("clear", re.compile(r"^runtime\.mapclear|\(\*Map\)\.Clear$")),
)
# The stack pointer's name in Delve's expressions (a CPU register, in the scope's frame).
SP_REGISTER = {"amd64": "RSP", "arm64": "SP", "386": "ESP"}

# How a hit's caller is found (StopSource._caller): from the thread and its stack trace.
CallerOf = Callable[[Thread, tuple[Frame, ...]], tuple[Location, str, int, tuple[Frame, ...]]]


@dataclass
class _Flag:
    """The watchpoint on the header's writing flag."""

    bp: Breakpoint
    header: int  # the header's address when it was set (stack: it moves with the stack)
    expr: str  # the flag byte's expression, returned at each trap


class Traps:
    """The watchpoints of one watched map; ``set`` creates them (or nothing, raising)."""

    def __init__(
        self,
        session: Session,
        watched: WatchedMap,
        ops: tuple[str, ...],
        map_type: int,
        writing_flag: tuple[int, int],
        *,
        index: int = 0,
    ) -> None:
        self.session = session
        self.index = index  # the watched map's place in WatchOptions.exprs
        self.client = session.client
        self.watched = watched
        self.ops = ops
        self.map_type = map_type  # the watched map's type descriptor (its first call's)
        self.flag_off, self.flag_mask = writing_flag  # where a header says it is written
        self.flag: _Flag | None = None  # None while the variable holds a nil map
        self.var_bp: Breakpoint | None = None
        self._stacks: dict[int, tuple[Frame, ...]] = {}  # by goroutine, at this stop

    @classmethod
    def set(
        cls,
        session: Session,
        watched: WatchedMap,
        ops: tuple[str, ...],
        map_type: int,
        writing_flag: tuple[int, int],
        *,
        index: int = 0,
    ) -> Traps:
        """The watchpoints, set with the program stopped (stack: at the end of a call of the
        goroutine that owns the stack). Raises DlvsnapError with nothing left set."""
        t = cls(session, watched, ops, map_type, writing_flag, index=index)
        try:
            if watched.mode == "var":
                width = "uint64" if session.target.ptr_size == 8 else "uint32"
                t.var_bp = session.create_watchpoint(watched.var_addr, width)
                t.flag = t._flag_at(t.variable_now())
            else:
                t.flag = t._flag_at(watched.header)
        except DlvsnapError:
            t.clear()
            raise
        return t

    @property
    def has_var(self) -> bool:
        return self.var_bp is not None

    def clear(self) -> None:
        """Remove the watchpoints (those Delve has not removed already)."""
        for bp in (self.flag.bp if self.flag else None, self.var_bp):
            if bp is not None:
                with contextlib.suppress(DlvsnapError):
                    self.client.clear_breakpoint(bp.id)
        self.flag, self.var_bp = None, None

    def _flag_at(self, header: int) -> _Flag | None:
        if header == 0:
            return None
        w = self.watched
        goroutine, extra = CURRENT_GOROUTINE, tuple[str, ...]()
        if w.mode == "stack":  # the flag's distance below the stack's top: copies keep it
            expr = f"*(*uint8)(uintptr(runtime.curg.stack.hi) - {w.stack_offset - self.flag_off})"
            extra, goroutine = STACK_VARS, w.goroutine
        else:
            expr = f"*(*uint8)({header + self.flag_off:#x})"
        # every trap returns the flag (and, on a stack, where the stack is) and nothing else:
        # what a watched call's start needs besides is asked for then (``hit``)
        bp = self.session.create_watchpoint(
            header + self.flag_off, "uint8", (expr, *extra), 0, goroutine=goroutine
        )
        return _Flag(bp, header, expr)

    # -- stops ---------------------------------------------------------------------------------
    def sort(self, at_bps: list[Thread], entries: list[Thread]) -> bool:
        """Sort a stop's traps: a watched call's start goes into ``entries``; anything else
        (a call's end, an operation not watched, the variable assigned) is passed. Whether
        any was passed."""
        passed, self._stacks = False, {}  # a new stop
        for t in at_bps:
            bp_id = t.breakpoint.id if t.breakpoint else 0
            if self.flag is not None and bp_id == self.flag.bp.id:
                if self._starts_a_watched_call(t, self.flag):
                    entries.append(t)
                else:
                    passed = True
            elif self.var_bp is not None and bp_id == self.var_bp.id:
                self._follow_variable()
                passed = True
        return passed

    def owns(self, bp_id: int) -> bool:
        """Whether ``bp_id`` is the flag's watchpoint (a call's start or end)."""
        return self.flag is not None and bp_id == self.flag.bp.id

    def _flag_set(self, t: Thread, flag: _Flag) -> bool:
        return bool(int_var(variables(t), flag.expr) & self.flag_mask)

    def _starts_a_watched_call(self, t: Thread, flag: _Flag) -> bool:
        if t.breakpoint_info is None or not self._flag_set(t, flag):
            return False  # cleared: a call's end (the watched one's is awaited in ended)
        op = next((op for op, fn in _OP_OF_FUNCTION if fn.search(t.function)), "")
        if not op:  # a function of the runtime's not listed: the stack says
            frames = self._stack(t.goroutine_id)
            entry = next((f.function for f in frames if RUNTIME_ENTRY.match(f.function)), "")
            # a write of the flag outside a map operation (its memory reused) is passed
            op = op_of(entry) if entry else ""
        return op in self.ops

    def ended(self, st: DebuggerState, g: int) -> bool:
        """Whether this stop is goroutine ``g``'s trap with the flag cleared: its call's end."""
        flag = self.flag
        if flag is None:
            return False
        return any(
            t.goroutine_id == g
            and t.breakpoint is not None
            and t.breakpoint.id == flag.bp.id
            and not self._flag_set(t, flag)
            for t in st.threads_at_breakpoints()
        )

    def _follow_variable(self) -> None:
        """The package variable was assigned: the flag's watchpoint moves to its new map."""
        header = self.variable_now()
        if self.flag is not None and header == self.flag.header:
            return
        if self.flag is not None:
            self.client.clear_breakpoint(self.flag.bp.id)
            self.flag = None
        self.flag = self._flag_at(header)

    def variable_now(self) -> int:
        """The map header the watched package variable holds now (0: nil)."""
        return self.session.read_word(self.watched.var_addr)

    def scope_ended(self, st: DebuggerState) -> str:
        """A stack watchpoint Delve removed at this stop (its goroutine's topmost frame at its
        creation returned). "" if the flag's watchpoint is not among them; "set" when it is
        set again (the header is still above the goroutine's stack pointer: it lives in an
        outer frame); "gone" when the frame that held the header returned (the map is gone,
        nothing is set); "done" when, besides, the goroutine has left its own code (main
        returned, or the goroutine's function: nothing it called can come back)."""
        flag, w = self.flag, self.watched
        if flag is None or flag.bp.id not in st.watch_out_of_scope:
            return ""
        self.flag = None  # Delve removed it
        g = w.goroutine
        sp = self.client.eval(SP_REGISTER.get(self.session.target.goarch, "SP"), g).as_int()
        hi = self.client.eval("runtime.curg.stack.hi", g).as_int()
        header = hi - w.stack_offset
        if header >= sp:
            self.flag = self._flag_at(header)
            return "set"
        frames = self.client.stacktrace(g, 1)
        return "done" if not frames or frames[0].function.startswith("runtime.") else "gone"

    # -- a call's start ---------------------------------------------------------------------------
    def _key(self, g: int, innermost: str, entry: str) -> KeyArg | None:
        """The key of the call goroutine ``g`` starts (see ``_trap_key``), from what its
        innermost frame evaluates: the key parameter, else a fast entry point's spill
        slot."""
        var: dict[str, Variable] = {}
        for name in _KEY_NAMES:
            with contextlib.suppress(RPCError):
                var[name] = self.client.eval(name, g, 0, _KEY_LOAD)
            if name in var and not var[name].unreadable:
                break
        key = _trap_key(var, innermost, entry)
        if key is None and self.session.target.goarch == "amd64" and _FAST_ENTRY.search(entry):
            with contextlib.suppress(RPCError):
                for expr in _SPILLED_KEY:
                    var[expr] = self.client.eval(expr, g, 0, _KEY_LOAD)
                key = _trap_key(var, innermost, entry)
        return key

    def _stack(self, g: int) -> tuple[Frame, ...]:
        """Goroutine ``g``'s stack at this stop (asked for once per stop)."""
        if g not in self._stacks:
            self._stacks[g] = tuple(self.client.stacktrace(g, TRAP_STACK_DEPTH))
        return self._stacks[g]

    def hit(self, th: Thread, caller_of: CallerOf) -> Hit:
        """A watched call's start, at a trap: the operation and the caller from the
        goroutine's stack, the key from the innermost frame (a pointer to it, except in a
        fast entry point's own frame, where it is the value), each asked for now."""
        flag, g = self.flag, th.goroutine_id
        assert flag is not None
        frames = self._stack(g)
        entry = next(f.function for f in frames if RUNTIME_ENTRY.match(f.function))
        var = variables(th)
        key = self._key(g, frames[0].function if frames else "", entry)
        location, via, caller_frame, frames = caller_of(th, frames)
        lo, hi, g_addr = (int_var(var, v) for v in STACK_VARS)
        stack = self.watched.mode == "stack"
        return Hit(
            entry=entry,
            goroutine=th.goroutine_id,
            map_type=self.map_type,
            map_addr=hi - self.watched.stack_offset if stack else flag.header,
            key=key,
            location=location,
            via=via,
            caller_frame=caller_frame,
            frames=tuple(Location(f.function, f.file, f.line) for f in frames),
            stack_lo=lo,
            stack_hi=hi,
            g_addr=g_addr,
            writing_set=True,
            map_index=self.index,
        )


def _trap_key(var: dict[str, Variable], innermost: str, entry: str) -> KeyArg | None:
    """The key at a trap: the innermost frame's key parameter (a pointer to the key, except
    in a fast entry point's own frame, where it is the value), else a fast entry point's
    spill slot (``_SPILLED_KEY``); None when neither can be read."""
    fast = innermost == entry and _FAST_ENTRY.search(entry) is not None
    v = next((var[k] for k in _KEY_NAMES if k in var and not var[k].unreadable), None)
    if v is not None and fast and entry.endswith("_faststr") and v.kind != Kind.STRING:
        v = None  # classic mapdelete_faststr's local key, a *stringStruct, shadows ky
    key = key_arg(v)
    if key is not None:
        return key if fast else dataclasses.replace(key, indirect=True, is_string=False)
    if not fast or _SPILLED_KEY[0] not in var:
        return None
    word, second = int_var(var, _SPILLED_KEY[0]), int_var(var, _SPILLED_KEY[1])
    if entry.endswith("_faststr"):
        return KeyArg(is_string=True, base=word, length=second)
    return KeyArg(is_string=False, value=word & 0xFFFFFFFF if "_fast32" in entry else word)
