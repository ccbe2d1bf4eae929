"""Untrusted input: what a file (a snapshot file, an events file) or a debugged program's
data holds is hostile until checked.

* ``parse`` reads JSON with limits: it refuses what JSON cannot hold exactly (``NaN``,
  ``Infinity``, numbers that overflow a double, integers outside 64 bits, which come out
  as floats and then fail any integer field), invalid UTF-8 and lone surrogates, and
  nesting deeper than the formats use.
* ``Fields`` reads one object's fields with their types and ranges; every error names the
  field (``target.ptr_size: '8' (a string) is not an integer``).
* ``visible`` makes a string safe to show on a terminal or a page: control characters,
  bidi controls and other invisible or reordering characters become escapes.

Errors are ``MalformedError`` (a ValueError): the reader of each format turns them into its own
one-line DlvsnapError with the file's name.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

import orjson

MAX_DEPTH = 32  # the formats nest at most 26 deep (keys and types of 6 nested levels)
U64 = 2**64 - 1
I64_MIN, I64_MAX = -(2**63), 2**63 - 1


class MalformedError(ValueError):
    """A document or one of its fields is not what its format allows."""


def parse(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """One JSON document, parsed with limits (see the module's docstring)."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise MalformedError(visible(str(e))) from None
    check_depth(doc, max_depth)
    return doc


def check_depth(value: Any, max_depth: int = MAX_DEPTH) -> None:
    """Refuse nesting deeper than ``max_depth`` (without recursing: a hostile depth must
    not reach Python's recursion limit here or in any code that walks the value later)."""
    level = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:  # one container level at a time
        depth += 1
        if depth > max_depth:
            raise MalformedError(f"nested more than {max_depth} levels deep")
        nxt: list[Any] = []
        for v in level:
            for x in v.values() if type(v) is dict else v:
                if type(x) is list or type(x) is dict:
                    nxt.append(x)
        level = nxt


def describe(v: Any) -> str:
    """A value in an error message: short, its type said, nothing shown raw."""
    if isinstance(v, bool) or v is None:
        return {None: "null", True: "true (a boolean)", False: "false (a boolean)"}[v]
    if isinstance(v, int):
        s = str(v)
        return (s if len(s) <= 24 else s[:20] + "…") + " (an integer)"
    if isinstance(v, str):
        return visible(repr(v[:40]) + ("…" if len(v) > 40 else "")) + " (a string)"
    kind = {float: "a number", list: "a list", dict: "an object"}.get(type(v))
    return f"{v!r} ({kind})" if isinstance(v, float) else kind or type(v).__name__


def as_int(v: Any, where: str, lo: int = 0, hi: int = U64) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise MalformedError(f"{where}: {describe(v)} is not an integer")
    if not lo <= v <= hi:
        raise MalformedError(f"{where}: {describe(v)} is not in [{lo}, {hi}]")
    return v


def as_str(
    v: Any, where: str, max_len: int = 1 << 16, choices: Collection[str] | None = None
) -> str:
    if not isinstance(v, str):
        raise MalformedError(f"{where}: {describe(v)} is not a string")
    if len(v) > max_len:
        raise MalformedError(f"{where}: a string of {len(v):,} characters (at most {max_len:,})")
    if choices is not None and v not in choices:
        raise MalformedError(f"{where}: {describe(v)} is not one of {', '.join(sorted(choices))}")
    return v


def as_bool(v: Any, where: str) -> bool:
    if not isinstance(v, bool):
        raise MalformedError(f"{where}: {describe(v)} is not a boolean (true or false)")
    return v


def as_list(v: Any, where: str, max_len: int) -> list[Any]:
    if not isinstance(v, list):
        raise MalformedError(f"{where}: {describe(v)} is not a list")
    if len(v) > max_len:
        raise MalformedError(f"{where}: a list of {len(v):,} items (at most {max_len:,})")
    return v


class Fields:
    """The fields of one JSON object read with their types; ``where`` names the object in
    errors (``target``, ``line 3``, ``line 3 changes[2]``). A missing field is an error;
    the ``opt_`` readers return None for a missing or null field."""

    def __init__(self, value: Any, where: str = "") -> None:
        if not isinstance(value, dict):
            raise MalformedError(f"{where or 'the document'}: {describe(value)} is not an object")
        self.d: dict[str, Any] = value
        self.where = where

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def raw(self, key: str) -> Any:
        if key not in self.d:
            raise MalformedError(f"{self.path(key)}: missing")
        return self.d[key]

    def integer(self, key: str, lo: int = 0, hi: int = U64) -> int:
        return as_int(self.raw(key), self.path(key), lo, hi)

    def opt_integer(self, key: str, lo: int = 0, hi: int = U64) -> int | None:
        v = self.d.get(key)
        return None if v is None else as_int(v, self.path(key), lo, hi)

    def string(
        self, key: str, max_len: int = 1 << 16, choices: Collection[str] | None = None
    ) -> str:
        return as_str(self.raw(key), self.path(key), max_len, choices)

    def opt_string(self, key: str, max_len: int = 1 << 16) -> str | None:
        v = self.d.get(key)
        return None if v is None else as_str(v, self.path(key), max_len)

    def boolean(self, key: str) -> bool:
        return as_bool(self.raw(key), self.path(key))

    def opt_boolean(self, key: str) -> bool | None:
        v = self.d.get(key)
        return None if v is None else as_bool(v, self.path(key))

    def array(self, key: str, max_len: int) -> list[Any]:
        return as_list(self.raw(key), self.path(key), max_len)

    def opt_array(self, key: str, max_len: int) -> list[Any] | None:
        v = self.d.get(key)
        return None if v is None else as_list(v, self.path(key), max_len)

    def obj(self, key: str) -> Fields:
        return Fields(self.raw(key), self.path(key))

    def opt_obj(self, key: str) -> Fields | None:
        v = self.d.get(key)
        return None if v is None else Fields(v, self.path(key))


# Characters that change how text reads without being seen as themselves: C0 and C1
# controls (terminal escapes start with ESC or CSI), bidi embeddings, overrides, isolates
# and marks, zero-width and other format characters, line and paragraph separators,
# spaces other than ' ', unassigned and private-use code points and surrogates (all of
# these are what str.isprintable() refuses), and the default-ignorable characters it
# accepts: combining grapheme joiner, Hangul fillers, Khmer inherent vowels, Mongolian
# variation selectors, variation selectors.
_IGNORABLE_RANGES = (
    (0x034F, 0x034F),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFFA0, 0xFFA0),
    (0xE0100, 0xE01EF),
)
_IGNORABLE = re.compile("[" + "".join(f"{chr(a)}-{chr(b)}" for a, b in _IGNORABLE_RANGES) + "]")


_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(ch: str) -> str:
    o = ord(ch)
    if ch in _SHORT:
        return _SHORT[ch]
    if o < 0x100:
        return f"\\x{o:02x}"
    return f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


def visible(s: str) -> str:
    """``s`` with every character that is not shown as itself, or that changes how the
    text around it reads (see above), written as ``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN``."""
    if s.isprintable() and not _IGNORABLE.search(s):
        return s
    return "".join(
        ch if (ch.isprintable() and not _IGNORABLE.match(ch)) else _escape(ch) for ch in s
    )
