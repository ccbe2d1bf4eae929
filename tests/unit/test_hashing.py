"""The runtime's AES map hash, re-implemented: the AES round against FIPS-197, and the
length classes of aeshashbody against each other's invariants. (Agreement with the Go
runtime itself is checked live: the watch trusts a hasher only after it placed a map's
own keys, and tests/live run with DLVSNAP_CROSSCHECK=1 compare probe diffs to whole ones.)"""

from __future__ import annotations

import pytest

from dlvsnap.decode.keys import KeyDecoder
from dlvsnap.hashing import HASHERS, SBOX, aesenc, aeshash, memhash32, memhash64
from dlvsnap.memory import SparseMem
from dlvsnap.model import KeyType, RawKey

KS = bytes(range(128))


def test_aes_round_matches_fips197_appendix_b() -> None:
    # round 1 of the FIPS-197 Appendix B example: start state, round key 1 -> round 2 start
    state = bytes.fromhex("193de3bea0f4e22b9ac68d2ae9f84808")
    key = bytes.fromhex("a0fafe1788542cb123a339392a6c7605")
    assert aesenc(state, key).hex() == "a49c7ff2689f352b6b5bea43026a5049"
    assert SBOX[0x00] == 0x63 and SBOX[0x53] == 0xED


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 32, 33, 64, 65, 128, 129, 300])
def test_every_length_class_depends_on_every_byte_and_the_seed(n: int) -> None:
    data = bytes((7 * i + 1) & 0xFF for i in range(n))
    h = aeshash(data, 42, KS)
    assert h == aeshash(data, 42, KS) and 0 <= h < 1 << 64
    assert aeshash(data, 43, KS) != h
    for i in range(n):
        flipped = bytearray(data)
        flipped[i] ^= 1
        assert aeshash(bytes(flipped), 42, KS) != h, i


def test_fixed_size_hashers_differ_from_the_generic_one() -> None:
    # memhash64/32 use their own sequence (data in the high half, 3 key-schedule rounds)
    assert memhash64(b"\x01" + bytes(7), 5, KS) != aeshash(b"\x01" + bytes(7), 5, KS)
    # memhash32 puts the 4 bytes where memhash64 puts 8: a zero-extended uint32 hashes alike
    assert memhash32(b"\x01\x00\x00\x00", 5, KS) == memhash64(b"\x01" + bytes(7), 5, KS)
    assert memhash32(b"\x01\x00\x00\x00", 5, KS) != memhash32(b"\x02\x00\x00\x00", 5, KS)


def test_float_zero_hashes_alike_for_both_signs() -> None:
    f64 = HASHERS["runtime.f64hash"]
    plus, minus = bytes(8), bytes(7) + b"\x80"
    assert f64(plus, 9, KS) == f64(minus, 9, KS)
    assert f64(b"\x00" * 7 + b"\x3f", 9, KS) != f64(plus, 9, KS)


def test_hash_input_gives_back_the_bytes_the_runtime_hashes() -> None:
    def dec(kind: int, size: int) -> KeyDecoder:
        return KeyDecoder(KeyType(kind, size, False), 8, True, SparseMem())

    assert dec(2, 8).hash_input(-2) == (-2).to_bytes(8, "little", signed=True)
    assert dec(10, 4).hash_input(7) == b"\x07\x00\x00\x00"
    assert dec(24, 16).hash_input("héllo") == "héllo".encode()
    assert dec(24, 16).hash_input("cut…") is None  # a truncated long string
    assert dec(14, 8).hash_input(-0.0) == bytes(7) + b"\x80"
    assert dec(17, 3).hash_input(RawKey(b"abc")) == b"abc"
    assert dec(17, 3).hash_input(RawKey(b"ab")) is None
    assert dec(1, 1).hash_input(True) == b"\x01"
