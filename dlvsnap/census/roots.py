"""Where the census starts: package variables (from the binary's DWARF, at their static
addresses) and each goroutine's frames (their arguments and locals, from Delve: the one
part of the census that needs the debugger, one Stacktrace call per goroutine)."""

from __future__ import annotations

from collections.abc import Iterable

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
    innermost frame first. A map variable Delve holds in a register is a root by its
    header; any other variable without an address (optimised away, in a register) is
    counted as skipped."""
    out: list[Root] = []
    for g in sorted(client.goroutines(), key=lambda g: g.id):
        stats.goroutines += 1
        for fv in client.frames_with_vars(g.id, depth):
            fn = fv.frame.function
            if fn.startswith(SKIPPED_PACKAGES):
                continue
            stats.frames += 1
            for v in fv.variables:
                root = _root(v, f"goroutine {g.id} {fn} {v.name}", plans, stats)
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
        if v.kind == Kind.MAP or _may_hold_maps(v.type):
            stats.skip("variables of a type the DWARF does not name")
        return None
    if v.addr:
        return Root(label, v.addr, die) if plans.plan(die) is not None else None
    if v.kind == Kind.MAP:
        return Root(label, v.base, die, header=True) if v.base else None
    if plans.plan(die) is not None:
        stats.skip("variables without an address (optimised into registers)")
    return None


def _may_hold_maps(type_name: str) -> bool:
    return bool(type_name) and type_name not in ("string", "int", "bool", "error")


def all_roots(client: DelveClient, plans: Plans, bias: int, stats: RootStats) -> Iterable[Root]:
    return [*package_roots(plans, bias, stats), *goroutine_roots(client, plans, stats)]
