"""Where the census starts: package variables (from the binary's DWARF, at their static
addresses) and each goroutine's frames (their arguments and locals, from Delve: the one
part of the census that needs the debugger: a Stacktrace per goroutine, then the two
variable lists of each frame of the program's own functions, pipelined)."""

from __future__ import annotations

import re

from dlvsnap.census.plan import Plans
from dlvsnap.census.result import RootStats
from dlvsnap.census.walk import Root
from dlvsnap.delve.client import DelveClient
from dlvsnap.delve.types import Variable
from dlvsnap.kinds import Kind

# Package variables and frames of these packages are not roots: the runtime's own
# bookkeeping (every goroutine, span and timer) holds no program's map, and walking it
# would read the heap's metadata. (A map in the middle of a runtime call is also held by
# the caller's frame, which is a root.)
SKIPPED_PACKAGES = ("runtime.", "internal/", "runtime/")
STACK_DEPTH = 256
# kinds of variables that may lead to a map (a variable of another kind is no loss)
_MAY_HOLD_MAPS = frozenset(
    [Kind.MAP, Kind.POINTER, Kind.STRUCT, Kind.SLICE, Kind.ARRAY, Kind.INTERFACE]
)
# the wrapper a `go f(x)` statement compiles to (main.main.gowrap1): it only calls f
_GO_WRAPPER = re.compile(r"\.gowrap\d+$")


def package_roots(plans: Plans, bias: int, stats: RootStats) -> list[Root]:
    """Package variables that can lead to a map, by name (their DWARF order otherwise)."""
    out: dict[int, Root] = {}
    for v in plans.index.variables:
        if v.name.startswith(SKIPPED_PACKAGES):
            continue
        stats.globals += 1
        if v.addr + bias not in out and plans.plan(v.type) is not None:
            out[v.addr + bias] = Root(v.name, v.addr + bias, v.type)
    return sorted(out.values(), key=lambda r: r.label)


def goroutine_roots(
    client: DelveClient, plans: Plans, stats: RootStats, depth: int = STACK_DEPTH
) -> list[Root]:
    """Every goroutine's arguments and locals that can lead to a map, goroutine by id,
    innermost frame first: the goroutines' frames, then the variables of the frames of
    the program's own functions (both pipelined: a few ms for a thousand goroutines). A
    map variable Delve holds in a register is a root by its header; any other variable
    without an address (optimised away, in a register) is counted as skipped."""
    ids = sorted(g.id for g in client.goroutines())
    stats.goroutines += len(ids)
    scopes: list[tuple[int, int, str]] = []
    for g, frames in zip(ids, client.stacktraces(ids, depth), strict=True):
        for i, f in enumerate(frames):
            if f.function.startswith(SKIPPED_PACKAGES):
                continue
            if _GO_WRAPPER.search(f.function):  # its arguments are its callee's, a root too
                stats.skip("go statements' wrapper frames")
                continue
            scopes.append((g, i, f.function))
    stats.frames += len(scopes)
    out: list[Root] = []
    for (g, _, fn), variables in zip(
        scopes, client.frame_vars([(g, i) for g, i, _ in scopes]), strict=True
    ):
        for v in variables:
            root = _root(v, f"goroutine {g} {fn} {v.name}", plans, stats)
            if root is not None:
                stats.locals += 1
                out.append(root)
    return out


def _root(v: Variable, label: str, plans: Plans, stats: RootStats) -> Root | None:
    if v.unreadable:
        stats.skip("unreadable variables")
        return None
    die = plans.index.die_by_name.get(v.type)
    if die is None:
        die = plans.index.die_by_name.get(v.real_type)
    if die is None:
        if v.kind in _MAY_HOLD_MAPS:
            stats.skip("variables of a type the DWARF does not name")
        return None
    if v.addr:
        return Root(label, v.addr, die) if plans.plan(die) is not None else None
    if v.kind == Kind.MAP:
        return Root(label, v.base, die, header=True) if v.base else None
    if plans.plan(die) is not None:
        stats.skip("variables without an address (optimised into registers)")
    return None
