"""One snapshot of a map where the target is stopped: resolve the map expression in a
goroutine's frame, find its type descriptor, decode every group/bucket.

The type descriptor is what the runtime passes to map functions; at a plain stop there is
no such call, so it comes from the binary: DWARF gives the type's offset from
``runtime.types`` (Go's DW_AT_go_runtime_type), the symbol table gives runtime.types.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dlvsnap import snapfile
from dlvsnap.decode import decode_map_type, make_decoder
from dlvsnap.decode.types import RecordingTypes
from dlvsnap.delve.client import CURRENT_GOROUTINE, BreakpointSpec
from dlvsnap.delve.expr import normalise_expr
from dlvsnap.delve.types import LoadConfig
from dlvsnap.errors import MapResolutionError, RPCError, TargetError, UsageError
from dlvsnap.kinds import Kind
from dlvsnap.memory import RecordingMem
from dlvsnap.model import Location, MapSnapshot
from dlvsnap.session import Session
from dlvsnap.target import DwarfTypes, ProcessId, binary, process_id
from dlvsnap.verify import choose_layout

_TYPES_BASE = ("runtime.types", "type:*")


@dataclass(frozen=True)
class MapRef:
    """A map found by an expression at one stop."""

    expr: str
    addr: int  # the header (hmap / maps.Map)
    type_addr: int  # its runtime type descriptor
    type_name: str
    goroutine: int
    frame: int


def resolve(s: Session, expr: str, goroutine: int = CURRENT_GOROUTINE, frame: int = 0) -> MapRef:
    """Evaluate ``expr`` in the goroutine's frame (the current one by default)."""
    try:
        v = s.client.eval(normalise_expr(expr), goroutine=goroutine, frame=frame, cfg=LoadConfig())
    except RPCError as e:
        _check_goroutine(e, goroutine)
        raise MapResolutionError(f"cannot evaluate {expr} here: {e.message}") from None
    if v.kind != Kind.MAP:
        raise MapResolutionError(f"not a map: {expr} is {v.type or f'kind {v.kind}'}")
    if v.base == 0:
        raise MapResolutionError(f"nil map: {expr} is nil here")
    return MapRef(expr, v.base, type_descriptor(s, v.type), v.type, goroutine, frame)


def type_descriptor(s: Session, type_name: str) -> int:
    off = binary(s.target.path).runtime_type_offset(type_name)
    if off is None:
        raise TargetError(f"no runtime type for {type_name} in the binary's DWARF")
    return types_base(s) + off


def types_base(s: Session) -> int:
    """Where the process has runtime.types (the first module's types: what the
    DW_AT_go_runtime_type offsets count from)."""
    exe = binary(s.target.path)
    syms = exe.symbols(_TYPES_BASE)
    base = next((syms[n] + s.load_bias() for n in _TYPES_BASE if n in syms), None)
    if base is None:
        try:
            base = s.client.eval("runtime.firstmoduledata.types").as_int()
        except (RPCError, ValueError):
            raise TargetError("cannot find runtime.types in the binary") from None
    return base


def type_catalog(s: Session) -> DwarfTypes:
    """The binary's DWARF types by their runtime types' addresses in this process."""
    return DwarfTypes(binary(s.target.path), lambda: types_base(s))


def snapshot(s: Session, ref: MapRef) -> tuple[MapSnapshot, RecordingMem, RecordingTypes]:
    """Every group/bucket of the map, and the bytes and types it was decoded from."""
    layout = choose_layout(s.target)
    mem = RecordingMem(s.memory(ref.addr, 8))
    types = RecordingTypes(type_catalog(s))
    mt = decode_map_type(layout, mem, ref.type_addr, types)
    return make_decoder(layout, mem, mt, types).snapshot(ref.addr), mem, types


def save(
    path: str | Path,
    s: Session,
    ref: MapRef,
    taken: MapSnapshot,
    *,
    mem: RecordingMem,
    types: RecordingTypes,
    location: Location | None,
) -> None:
    """Write ``taken`` (from ``snapshot``) with the bytes and types it was decoded from, and
    the process it was taken in."""
    snapfile.save(
        path,
        taken,
        target=s.target,
        expr=ref.expr,
        type_addr=ref.type_addr,
        type_name=ref.type_name,
        regions=mem.regions,
        types=types.seen,
        location=location,
        process=_process(s),
    )


def _process(s: Session) -> ProcessId | None:
    """The process a snapshot is of: a core's pid only (a live process with that pid now
    may be another one, or the one dumped, running on: /proc cannot tell which)."""
    if s.pid <= 0:
        return None
    return ProcessId(s.pid) if s.mode == "core" else process_id(s.pid)


def _addresses(s: Session, location: str) -> tuple[int, ...]:
    """Where ``location`` is in the program (TargetError when nowhere)."""
    try:
        pcs = s.client.find_location(location)
    except RPCError as e:
        raise TargetError(f"no such location: {location} ({e.message})") from None
    if not pcs:
        raise TargetError(f"no such location: {location}")
    return tuple(pcs)


def check_locations(s: Session, locations: tuple[str, ...]) -> None:
    """Each of ``snap --at``'s ``locations`` is somewhere in the program, said before the
    program runs to any of them: the first that is not is a UsageError (exit 2, as
    ``watch --until`` and ``--site``), in Delve's words."""
    for location in locations:
        try:
            _addresses(s, location)
        except TargetError as e:
            raise UsageError(f"--at {e}") from None


def run_to(s: Session, location: str) -> Location:
    """Continue until the program reaches ``location`` (file:line or a function); the
    breakpoint dlvsnap set for it is removed."""
    pcs = _addresses(s, location)
    bp = s.create_breakpoint(BreakpointSpec(addrs=pcs))
    while True:
        st = s.client.command("continue")
        if st.exited:
            raise TargetError(
                f"the program exited (status {st.exit_status}) before reaching {location}"
            )
        for th in st.threads_at_breakpoints():
            if th.breakpoint and th.breakpoint.id == bp.id:
                if st.current_goroutine_id != th.goroutine_id:
                    s.client.command("switchGoroutine", goroutineID=th.goroutine_id)
                s.clear_owned_breakpoints()
                return Location(th.function, th.file, th.line)
        if s.mode != "launch":  # the user's breakpoint, or a halt: theirs to handle
            s.clear_owned_breakpoints()
            raise TargetError(f"the program stopped before reaching {location}")


def current_location(s: Session, goroutine: int = CURRENT_GOROUTINE, frame: int = 0) -> Location:
    try:
        frames = s.client.stacktrace(goroutine, depth=frame + 1)
    except RPCError as e:
        _check_goroutine(e, goroutine)
        raise
    if len(frames) <= frame:
        return Location("?", "?", 0)
    f = frames[frame]
    return Location(f.function, f.file, f.line)


def _check_goroutine(e: RPCError, goroutine: int) -> None:
    """Delve's "unknown goroutine N" is the user's mistake about the program, as a --map
    that names nothing is: a MapResolutionError (exit 3)."""
    if goroutine != CURRENT_GOROUTINE and e.message.startswith("unknown goroutine"):
        raise MapResolutionError(
            f"no goroutine {goroutine} in the program: --map cannot be evaluated there"
        ) from None
