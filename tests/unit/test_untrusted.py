"""dlvsnap/untrusted.py: JSON parsed with limits, fields read with their types, strings
made visible."""

from __future__ import annotations

import json
import re
import unicodedata

import pytest

from dlvsnap.untrusted import Fields, MalformedError, check_depth, describe, parse, visible


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("NaN", "unexpected character"),
        ("[Infinity]", "unexpected character"),
        ("-1e400", "number is infinity"),
        ('"\\ud800"', "surrogate"),
        (b'"\xff"', "not valid UTF-8"),
        ("[" * 2000 + "]" * 2000, "depth limit"),
        ("[" * 33 + "]" * 33, "nested more than 32 levels deep"),
        ('{"a":' * 40 + "1" + "}" * 40, "nested more than 32 levels deep"),
        ("{", "unexpected end"),
    ],
)
def test_parse_refuses_what_json_cannot_hold_exactly(text: str | bytes, reason: str) -> None:
    with pytest.raises(MalformedError, match=reason):
        parse(text)


def test_parse_keeps_64_bit_integers_and_turns_larger_ones_into_floats() -> None:
    assert parse(str(2**64 - 1)) == 2**64 - 1 and parse(str(-(2**63))) == -(2**63)
    assert isinstance(parse(str(2**64)), float)  # then refused by any integer field
    assert parse("[" * 32 + "]" * 32) is not None
    check_depth(1)
    check_depth("[[[[")


def test_fields_check_types_and_ranges() -> None:
    f = Fields(json.loads('{"n": 3, "b": true, "s": "x", "t": "true", "l": [1], "o": {"k": 1}}'))
    assert f.integer("n", 0, 3) == 3 and f.boolean("b") is True and f.string("s") == "x"
    assert f.array("l", 1) == [1] and f.obj("o").integer("k") == 1
    assert f.opt_integer("missing") is None and f.opt_obj("missing") is None
    bad = [
        (lambda: f.integer("b"), "b: true (a boolean) is not an integer"),
        (lambda: f.integer("n", 4), r"n: 3 \(an integer\) is not in \[4, "),
        (lambda: f.boolean("t"), "t: 'true' (a string) is not a boolean"),
        (lambda: f.string("s", choices=("y",)), "s: 'x' (a string) is not one of y"),
        (lambda: f.array("l", 0), "l: a list of 1 items"),
        (lambda: f.obj("o").string("k"), r"o\.k: 1 \(an integer\) is not a string"),
        (lambda: f.raw("nope"), "nope: missing"),
        (lambda: Fields([1], "line 3"), "line 3: a list is not an object"),
    ]
    for call, message in bad:
        with pytest.raises(MalformedError) as e:
            call()
        assert re.search(message, str(e.value)) or message in str(e.value), str(e.value)


def test_describe_shows_nothing_raw() -> None:
    assert (
        describe("\x1b[2J" * 30)
        == r"'\x1b[2J\x1b[2J\x1b[2J\x1b[2J\x1b[2J\x1b[2J\x1b[2J\x1b[2J\x1b[2J\x1b[2J'… (a string)"
    )
    assert describe(10**30) == "10000000000000000000… (an integer)"
    assert describe(1.5) == "1.5 (a number)" and describe(None) == "null"


def test_visible_escapes_every_character_that_changes_how_text_reads() -> None:
    assert visible("plain ASCII, é, 日本, emoji 😀") == "plain ASCII, é, 日本, emoji 😀"
    assert visible("\x1b[31mred\x1b[0m") == r"\x1b[31mred\x1b[0m"
    assert visible("a\u202eb\u2066c\u2069\u200e\u200f\u061c") == (
        r"a\u202eb\u2066c\u2069\u200e\u200f\u061c"
    )
    assert visible("c1\x85\x9b31m del\x7f") == r"c1\x85\x9b31m del\x7f"
    assert visible("tab\tnl\ncr\r") == r"tab\tnl\ncr\r"
    assert visible("zero\u200bwidth\ufeff\u00ad") == r"zero\u200bwidth\ufeff\xad"
    assert visible("h\u3164i\u034f\ufe0f\U000e0101\U000e0041") == (
        r"h\u3164i\u034f\ufe0f\U000e0101\U000e0041"
    )
    assert visible("sep\u2028\u2029nbsp\xa0") == r"sep\u2028\u2029nbsp\xa0"


def test_visible_leaves_no_control_format_or_separator_character() -> None:
    """Every code point of the categories that control or reorder text comes out escaped."""
    for cp in range(0x110000):
        ch = chr(cp)
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs"):
            out = visible("a" + ch + "b")
            assert out.startswith("a\\") and out.endswith("b") and out.isascii(), hex(cp)
