"""The Go runtime's map hash functions on amd64 with AES (pure; no memory, no Delve).

dlvsnap hashes the deleted key itself to know which bucket chain (classic) or which
table and probe groups (swiss) a delete can touch, so it reads those and not the whole
map. What is implemented is what runtime/asm_amd64.s does when ``runtime.useAeshash`` is
set: memhash32, memhash64 and aeshashbody (memhash, strhash), seeded with the map's seed
and the per-process ``runtime.aeskeysched``; f32hash/f64hash on top of them. A hasher not
listed in HASHERS is not hashed: the watch then snapshots the whole map.

A wrong hash can never produce a wrong diff silently: the watch checks the hash against
the map's own control bytes (h2 or tophash of live keys) before it relies on it, and
checks every delete's count against what it found.
"""

from __future__ import annotations

from collections.abc import Callable

MASK64 = (1 << 64) - 1

# AES S-box (FIPS-197 figure 7), generated from the field inverse and the affine map.


def _sbox() -> bytes:
    def mul(a: int, b: int) -> int:
        r = 0
        while b:
            if b & 1:
                r ^= a
            a = ((a << 1) ^ 0x11B) if a & 0x80 else a << 1
            b >>= 1
        return r

    inv = [0] * 256
    for a in range(1, 256):
        for b in range(1, 256):
            if mul(a, b) == 1:
                inv[a] = b
                break
    out = bytearray(256)
    for a in range(256):
        x = inv[a]
        y = x
        for _ in range(4):
            x = ((x << 1) | (x >> 7)) & 0xFF
            y ^= x
        out[a] = y ^ 0x63
    return bytes(out)


SBOX = _sbox()
_XTIME = bytes(((b << 1) ^ 0x1B) & 0xFF if b & 0x80 else b << 1 for b in range(256))


def _tables() -> tuple[list[int], ...]:
    """SubBytes and MixColumns folded into four tables of 32-bit column words (byte 0 of a
    column is the word's low byte): the contribution of a column's row-r byte."""
    out: tuple[list[int], ...] = ([], [], [], [])
    for x in range(256):
        s1 = SBOX[x]
        s2 = _XTIME[s1]
        s3 = s2 ^ s1
        for r, col in enumerate(
            ((s2, s1, s1, s3), (s3, s2, s1, s1), (s1, s3, s2, s1), (s1, s1, s3, s2))
        ):
            out[r].append(int.from_bytes(bytes(col), "little"))
    return out


_T0, _T1, _T2, _T3 = _tables()


def aesenc(state: bytes, key: bytes) -> bytes:
    """One AESENC: ShiftRows, SubBytes, MixColumns, then XOR the round key. The state is
    column-major (byte i is row i%4 of column i//4); ShiftRows moves row r left by r, so
    column c takes row r from column c+r."""
    s = state
    w = (
        _T0[s[0]] ^ _T1[s[5]] ^ _T2[s[10]] ^ _T3[s[15]]
        | (_T0[s[4]] ^ _T1[s[9]] ^ _T2[s[14]] ^ _T3[s[3]]) << 32
        | (_T0[s[8]] ^ _T1[s[13]] ^ _T2[s[2]] ^ _T3[s[7]]) << 64
        | (_T0[s[12]] ^ _T1[s[1]] ^ _T2[s[6]] ^ _T3[s[11]]) << 96
    )
    return (w ^ int.from_bytes(key, "little")).to_bytes(16, "little")


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "little") ^ int.from_bytes(b, "little")).to_bytes(16, "little")


def _scramble(x: bytes, rounds: int = 1) -> bytes:
    for _ in range(rounds):
        x = aesenc(x, x)
    return x


def _low64(x: bytes) -> int:
    return int.from_bytes(x[:8], "little")


def memhash64(data: bytes, seed: int, ks: bytes) -> int:
    x = (seed & MASK64).to_bytes(8, "little") + data[:8]
    for r in range(3):
        x = aesenc(x, ks[16 * r : 16 * r + 16])
    return _low64(x)


def memhash32(data: bytes, seed: int, ks: bytes) -> int:
    x = (seed & MASK64).to_bytes(8, "little") + data[:4] + bytes(4)
    for r in range(3):
        x = aesenc(x, ks[16 * r : 16 * r + 16])
    return _low64(x)


def aeshash(data: bytes, seed: int, ks: bytes) -> int:
    """aeshashbody: memhash(p, seed, len(data)) and strhash."""
    n = len(data)
    x1 = (seed & MASK64).to_bytes(8, "little") + (n & 0xFFFF).to_bytes(2, "little") * 4
    x0 = _scramble(_xor(x1, ks[:16]))
    if n == 0:
        return _low64(_scramble(x0))
    if n <= 16:
        return _low64(_scramble(_xor(data + bytes(16 - n), x0), 3))
    if n <= 32:
        s1 = _scramble(_xor(x1, ks[16:32]))
        a = _scramble(_xor(data[:16], x0), 3)
        b = _scramble(_xor(data[n - 16 :], s1), 3)
        return _low64(_xor(a, b))
    nseeds = 4 if n <= 64 else 8
    seeds = [x0] + [_scramble(_xor(x1, ks[16 * i : 16 * i + 16])) for i in range(1, nseeds)]
    half = nseeds // 2
    if n <= 128:
        blocks = [data[16 * i : 16 * i + 16] for i in range(half)]
        blocks += [data[n - 16 * (half - i) : n - 16 * (half - i) + 16] for i in range(half)]
        st = [_scramble(_xor(b, s), 3) for b, s in zip(blocks, seeds, strict=True)]
    else:
        tail = data[n - 128 :]
        st = [_xor(tail[16 * i : 16 * i + 16], seeds[i]) for i in range(8)]
        for off in range(0, ((n - 1) >> 7) * 128, 128):
            st = [
                aesenc(aesenc(st[i], st[i]), data[off + 16 * i : off + 16 * i + 16])
                for i in range(8)
            ]
        st = [_scramble(s, 3) for s in st]
    while len(st) > 1:  # combine: (0^4, 1^5, 2^6, 3^7), then (0^2, 1^3), then 0^1
        h = len(st) // 2
        st = [_xor(st[i], st[i + h]) for i in range(h)]
    return _low64(st[0])


# runtime/alg.go: c0, c1 on 64-bit platforms.
_C0 = 33054211828000289
_C1 = 23344194077549503


def _fhash(size: int) -> Callable[[bytes, int, bytes], int]:
    def h(data: bytes, seed: int, ks: bytes) -> int:
        if not any(data[: size - 1]) and data[size - 1] & 0x7F == 0:  # +0 or -0
            return (_C1 * (_C0 ^ seed)) & MASK64
        return aeshash(data[:size], seed, ks)

    return h


def _sized(size: int) -> Callable[[bytes, int, bytes], int]:
    return lambda data, seed, ks: aeshash(data[:size], seed, ks)


# Hash function (by symbol) -> f(key bytes, seed, aeskeysched). For strhash the key bytes
# are the string's contents. NaN floats hash randomly: such a key is never found anyway.
HASHERS: dict[str, Callable[[bytes, int, bytes], int]] = {
    "runtime.memhash64": memhash64,
    "runtime.memhash32": memhash32,
    "runtime.strhash": aeshash,
    "runtime.f64hash": _fhash(8),
    "runtime.f32hash": _fhash(4),
    "runtime.memhash8": _sized(1),
    "runtime.memhash16": _sized(2),
    "runtime.memhash128": _sized(16),
}


# The per-process AES key schedule and the switch, by release (1.27 moved them).
AESKEYSCHED = ("runtime.aeskeysched", "internal/runtime/maps.aeskeysched")
USE_AESHASH = ("runtime.useAeshash", "internal/runtime/maps.UseAeshash")


class KeyHasher:
    """One map type's hash function: ``hasher(key bytes, seed) -> hash``."""

    def __init__(self, name: str, ks: bytes) -> None:
        self.name = name
        self.fn = HASHERS[name]
        self.ks = ks

    def __call__(self, data: bytes, seed: int) -> int:
        return self.fn(data, seed, self.ks)
