"""One watched call, recorded: the map before it, the end of the call, the map after it,
and their diff. Works through the decoder protocol and a CallControl; speaks no Delve.

What is read: dlvsnap hashes the key itself (trust.py) and reads only what the call can
touch: the header, the table headers and the key's probe groups (swiss), or the key's
bucket chain (classic); the same again after the call. Otherwise (clears, ``--full``, a
hasher not trusted yet, a growing classic map, keys the runtime hashes otherwise) both
snapshots cover the whole map. Every delete's count is checked against the probe's
answer, and a disagreement refuses the hasher (whole snapshots from then on).

Pipelining (``WatchOptions.pipeline``): a delete's probe bytes are read raw (``capture``)
and decoded while the call runs; the bytes the read after it needs are read raw
(``recapture``), the program is resumed, and they are decoded while it runs on.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dlvsnap.decode import Decoder
from dlvsnap.decode.keys import KeyDecoder
from dlvsnap.diff import diff
from dlvsnap.errors import DlvsnapError, LayoutError, MemoryReadError
from dlvsnap.kinds import Kind
from dlvsnap.layouts import ByteOrder
from dlvsnap.memory import MemoryReader
from dlvsnap.model import FULL, KeyValue, MapDiff, MapSnapshot
from dlvsnap.watch.hits import CallControl, CallEnd, Hit
from dlvsnap.watch.options import WatchOptions, op_of
from dlvsnap.watch.trust import HashTrust, Pending, Refused, Trusted
from dlvsnap.watch.watched import WatchedMap


@dataclass(frozen=True)
class Recorded:
    op: str
    key: KeyValue
    key_decoded: bool
    before: MapSnapshot
    after: MapSnapshot
    diff: MapDiff
    warnings: tuple[str, ...]
    end: CallEnd
    header_after: int  # where the header is once the call returned


class Recorder:
    def __init__(self, opts: WatchOptions, trust: HashTrust, watched: WatchedMap) -> None:
        self.opts = opts
        self.trust = trust
        self.watched = watched
        self.last: MapSnapshot | None = None  # the last snapshot of the watched map

    def record(
        self,
        hit: Hit,
        call: CallControl,
        dec: Decoder,
        mem: MemoryReader,
        *,
        last_event: bool,
    ) -> Recorded:
        """The call ``hit`` stopped, from before it to after it. ``call`` ends it; with
        ``last_event`` the program is not resumed ahead (nothing follows)."""
        key, decoded = deleted_key(hit, dec.keys, mem, dec.layout.order)
        op = op_of(hit.entry)
        trust = self.trust.state(hit.map_type, dec, mem) if op != "clear" and decoded else None
        data = dec.keys.hash_input(key) if isinstance(trust, Trusted) else None
        probed, ended, check_before = self._before(
            hit, dec, call, trust=trust, data=data, key=key, op=op
        )
        before, found = probed if probed else (_before_call(hit, dec), None)
        if probed and hit.writing_set:
            before = _writing_cleared(before, dec)
        if isinstance(trust, Pending) and not before.partial:
            self.trust.check(hit.map_type, dec, trust, before)
        if not ended and self.opts.crosscheck:
            check_before = _before_call(hit, dec)
        if not ended:
            call.end()
        end = call.wait()
        header_after = self.watched.header_after(
            hit, lambda a: _word(mem, a, dec), dec.layout.ptr_size
        )
        pipelined = self.opts.pipeline and not last_event and not end.ends_watch
        # pipeline, a delete's scalar keys: the bytes the read after it needs, read raw now
        # and decoded once the program runs again
        captured = (
            dec.recapture(header_after, before)
            if pipelined
            and op == "delete"
            and not self.opts.live_keys
            and dec.keys.scalar_dtype() is not None
            else None
        )

        def read_after(reader: Decoder) -> tuple[MapSnapshot, list[str]]:
            return self._after(hit, reader, header_after, before, found=found, op=op, key=key)

        if captured is None:
            after, warnings = read_after(dec)
        check_after = dec.snapshot(header_after) if check_before is not None else None
        if pipelined:  # every byte of this event is read: the program runs while it is decoded
            call.resume()
        if captured is not None:
            after, warnings = read_after(dec.over(captured))
        d = diff(before, after)
        if not decoded and op == "delete":
            # the key argument was unreadable (an optimised runtime at a watchpoint's trap):
            # a present key's delete empties exactly the slot that held it
            key, decoded = _emptied_key(d)
        if check_before is not None and check_after is not None:
            warnings += crosscheck(d, diff(check_before, check_after))
        self.last = after
        return Recorded(op, key, decoded, before, after, d, tuple(warnings), end, header_after)

    def _before(
        self,
        hit: Hit,
        dec: Decoder,
        call: CallControl,
        *,
        trust: Pending | Trusted | Refused | None,
        data: bytes | None,
        key: KeyValue,
        op: str,
    ) -> tuple[tuple[MapSnapshot, bool] | None, bool, MapSnapshot | None]:
        """The probe's snapshot (None: read the whole map); whether the call's end was sent
        already (pipeline: a delete's bytes read raw, the call ended, then decoded while it
        runs), and then the crosscheck's whole snapshot, taken first."""
        if data is None or not isinstance(trust, Trusted) or self.last is None:
            return None, False, None
        h, known = trust.hasher, self.last
        # capture and probe both hash the key with the map's seed: once is enough
        hash_of: Callable[[int], int] = functools.cache(lambda seed: h(data, seed))
        if self.opts.pipeline and op == "delete" and dec.keys.scalar_dtype() is not None:
            captured = dec.capture(hit.map_addr, hash_of, known)
            if captured is not None:
                check = _before_call(hit, dec) if self.opts.crosscheck else None
                call.end()
                try:
                    return dec.over(captured).probe(hit.map_addr, key, hash_of, known), True, check
                except DlvsnapError:
                    call.wait()  # let the call end before giving up
                    raise
        return dec.probe(hit.map_addr, key, hash_of, known, insert=op == "assign"), False, None

    def _after(
        self,
        hit: Hit,
        dec: Decoder,
        addr: int,
        before: MapSnapshot,
        *,
        found: bool | None,
        op: str,
        key: KeyValue,
    ) -> tuple[MapSnapshot, list[str]]:
        """The snapshot after the call: what ``before`` read, read again; with a warning
        (and whole snapshots from then on) if the count says the probe was wrong."""
        if not before.partial:
            return dec.snapshot(addr), []
        after = dec.reread(addr, before, structural=op == "assign")
        warnings = []
        if op == "assign":
            expect = before.count + (0 if found else 1)
        else:
            expect = before.count - (1 if found else 0)
        # an insert of a new key must have landed in what the probe read
        landed = (
            op != "assign"
            or bool(found)
            or not after.partial
            or any(after.rows.key(int(p)) == key for p in np.flatnonzero(after.full_mask))
        )
        if after.count != expect or not landed:
            where = "" if landed else ", and the new key is not where the probe looked"
            warnings.append(
                f"the probe found the key {'present' if found else 'absent'} but the "
                f"count went {before.count} -> {after.count}{where}: whole snapshots from now on"
            )
            self.trust.refuse(hit.map_type, f"its hash disagreed with the {op} of {key!r}")
        if self.opts.live_keys and after.partial:
            after = dec.snapshot(addr)
        return after, warnings


def _word(mem: MemoryReader, addr: int, dec: Decoder) -> int:
    p = dec.layout.ptr_size
    return int.from_bytes(mem.read(addr, p), dec.layout.order)


def deleted_key(
    hit: Hit, keys: KeyDecoder, mem: MemoryReader, order: ByteOrder
) -> tuple[KeyValue, bool]:
    """The key being deleted (or assigned), from the entry point's key argument; (None,
    False) for mapclear or a key that cannot be read."""
    a = hit.key
    if a is None or op_of(hit.entry) == "clear":
        return None, False
    try:
        if (
            not a.indirect
            and (hit.entry.endswith("_faststr") or a.is_string)
            and (keys.kt.kind != Kind.STRING)
        ):
            # a key type hashed as a string (struct{s string}): the argument is the string
            p = keys.ptr_size
            header = a.base.to_bytes(p, order) + a.length.to_bytes(p, order, signed=True)
            key = keys.from_value(header)
        elif not a.indirect and (hit.entry.endswith("_faststr") or a.is_string):
            key = keys.string_at(a.base, a.length)
        elif a.value is None:
            return None, False
        elif a.indirect:  # a pointer to the key's bytes, whatever the entry point
            if a.value == 0:
                return None, False
            key = keys.from_value(mem.read(a.value, keys.kt.size))
        elif hit.entry.endswith(("_fast32", "_fast64", "_fast32ptr", "_fast64ptr")):
            # the key itself (a pointer, for the ptr variants), not a pointer to it
            width = 4 if "_fast32" in hit.entry else 8
            key = keys.from_value(a.value.to_bytes(width, order))
        elif a.value == 0:  # runtime.mapdelete: an unsafe.Pointer to the key's bytes
            return None, False
        else:
            key = keys.from_value(mem.read(a.value, keys.kt.size))
    except (ValueError, OverflowError, LayoutError, MemoryReadError):
        return None, False
    return key, key is not None  # None: a string's data pointer was not readable


def _before_call(hit: Hit, dec: Decoder) -> MapSnapshot:
    """The whole map as it was before the call ``hit`` stopped."""
    snap = dec.snapshot(hit.map_addr)
    return _writing_cleared(snap, dec) if hit.writing_set else snap


def _writing_cleared(snap: MapSnapshot, dec: Decoder) -> MapSnapshot:
    """The snapshot with the header's writing flag as it was before the call set it."""
    name, mask = dec.layout.writing_field
    if name not in snap.header:
        return snap
    header = {**snap.header, name: int(snap.header[name]) ^ mask}
    return dataclasses.replace(snap, header=header)


def _emptied_key(d: MapDiff) -> tuple[KeyValue, bool]:
    """The key of the one slot a delete emptied, when exactly one left full without another
    becoming full (growth work moves entries); (None, False) otherwise (an absent key)."""
    left, entered = d.left_full(), [c for c in d.changes if c.after_state == FULL]
    if len(left) == 1 and not entered and left[0].key is not None:
        return left[0].key, True
    return None, False


def crosscheck(d: MapDiff, full: MapDiff) -> list[str]:
    """Where the diff of what was read differs from the diff of two whole snapshots."""

    def changes(x: MapDiff) -> set[tuple[object, ...]]:
        return {
            (str(c.loc), c.before_state, c.after_state, c.before_byte, c.after_byte)
            for c in x.changes
        }

    out = []
    if changes(d) != changes(full):
        out.append(f"crosscheck: slot changes {sorted(changes(d))} != {sorted(changes(full))}")
    if (d.count_before, d.count_after) != (full.count_before, full.count_after):
        out.append("crosscheck: counts differ")
    if d.header_changes != full.header_changes:
        out.append(f"crosscheck: header changes {d.header_changes} != {full.header_changes}")
    return out
