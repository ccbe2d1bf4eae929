"""Go's own spelling of scalar values, as fmt's ``%#v`` prints them inside a value: strings
quoted as strconv.Quote does, floats as ``%g`` with the shortest precision, unsigned
integers in hex. Pure functions of Python values; dlvsnap.model uses them for keys."""

from __future__ import annotations

import math

import numpy as np

_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPES |= {"\v": "\\v", "\\": "\\\\", '"': '\\"'}


def quote(s: str) -> str:
    """``s`` in double quotes as strconv.Quote writes it: printable characters as
    themselves, the rest as ``\\n``, ``\\x00``, ``\\u202e``, ``\\U0001f600`` escapes.
    (Python's idea of printable stands in for Go's unicode.IsPrint; they agree on control,
    format and separator characters.)"""
    out = ['"']
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def quote_bytes(b: bytes) -> str:
    """A Go string that is not valid UTF-8: its valid runes as ``quote`` writes them, each
    byte of an invalid sequence as ``\\xff``."""
    text = b.decode("utf-8", errors="surrogateescape")
    out = quote(text)  # lone surrogates are not printable: they come out as \udcXX
    for byte in range(0x80, 0x100):
        out = out.replace(f"\\u{0xDC00 + byte:04x}", f"\\x{byte:02x}")
    return out


def float_text(x: float, bits: int = 64) -> str:
    """A float as ``%v`` prints it: the shortest decimal that reads back as the same
    float32/float64 (strconv's ``%g`` with the shortest precision), in ``%e`` form when its
    decimal exponent is below -4 or at least 6: ``2.5``, ``123456``, ``1e+06``, ``1e-05``."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    sci = np.format_float_scientific(
        np.float32(x) if bits == 32 else np.float64(x), unique=True, trim="-"
    )
    mant, _, e = sci.partition("e")
    neg = mant.startswith("-")
    digits = mant.lstrip("-").replace(".", "")
    exp = int(e)
    sign = "-" if neg else ""
    if x == 0:
        return sign + "0"
    if exp < -4 or exp >= 6:
        frac = "." + digits[1:] if len(digits) > 1 else ""
        return f"{sign}{digits[0]}{frac}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp < 0:
        return f"{sign}0.{'0' * (-exp - 1)}{digits}"
    whole, frac = digits[: exp + 1], digits[exp + 1 :]
    return sign + whole.ljust(exp + 1, "0") + ("." + frac if frac else "")


def uint_text(v: int) -> str:
    """An unsigned integer as ``%#v`` prints it: ``0x2a``."""
    return hex(v)
