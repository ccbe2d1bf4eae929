"""Reading what Delve returned at a stop (its variables and arguments) as the plain values
the watch works with: shared by the breakpoints (stops.py) and the watchpoints (traps.py)."""

from __future__ import annotations

from dlvsnap.delve.types import Thread, Variable
from dlvsnap.errors import TargetError
from dlvsnap.kinds import Kind
from dlvsnap.watch.hits import KeyArg

# Evaluated by Delve at a stop: the goroutine's stack bounds and its g.
STACK_VARS = ("runtime.curg.stack.lo", "runtime.curg.stack.hi", "uintptr(runtime.curg)")


def variables(th: Thread) -> dict[str, Variable]:
    """The variables a breakpoint asked for at this stop, by expression."""
    info = th.breakpoint_info
    return {v.name: v for v in (info.variables if info else ())}


def int_var(var: dict[str, Variable], name: str) -> int:
    """An integer variable's value; 0 when it is missing or unreadable."""
    v = var.get(name)
    if v is None or v.unreadable or not v.value:
        return 0
    try:
        return v.as_int()
    except ValueError:
        return 0


def key_arg(v: Variable | None) -> KeyArg | None:
    if v is None:
        return None
    try:
        value: int | None = v.as_int()
    except ValueError:
        value = None
    return KeyArg(is_string=v.kind == Kind.STRING, base=v.base, length=v.len, value=value)


def pointer_arg(th: Thread, v: Variable) -> int:
    try:
        return v.as_int()
    except ValueError:
        why = v.unreadable or f"value {v.value!r}"
        raise TargetError(f"{th.function}: cannot read argument {v.name}: {why}") from None
