from __future__ import annotations

import pytest

from dlvsnap.delve.expr import normalise_expr
from dlvsnap.errors import TargetError
from dlvsnap.goversion import release_of, split_version
from dlvsnap.kinds import HASH_CANNOT_PANIC, kind_name
from dlvsnap.target import BUILDINFO_MAGIC, parse_buildinfo


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _buildinfo(version: str, modinfo: str) -> bytes:
    head = BUILDINFO_MAGIC + bytes([8, 0x2]) + bytes(32 - len(BUILDINFO_MAGIC) - 2)
    return (
        head + _varint(len(version)) + version.encode() + _varint(len(modinfo)) + modinfo.encode()
    )


def test_buildinfo() -> None:
    v, mod = parse_buildinfo(
        _buildinfo("go1.24.11 X:noswissmap", "path\tx\nbuild\tGOEXPERIMENT=noswissmap\n")
    )
    assert v == "go1.24.11 X:noswissmap"
    assert "GOEXPERIMENT=noswissmap" in mod


def test_not_go() -> None:
    with pytest.raises(TargetError, match="no Go build info"):
        parse_buildinfo(b"\0" * 64)


@pytest.mark.parametrize(
    ("expr", "want"),
    [
        ("m", "m"),
        ("s.byID", "s.byID"),
        ("main.cache", "main.cache"),
        ("example.com/pkg.Var", '"example.com/pkg".Var'),
        ('"example.com/pkg".Var', '"example.com/pkg".Var'),
    ],
)
def test_package_path_expressions(expr: str, want: str) -> None:
    assert normalise_expr(expr) == want


@pytest.mark.parametrize(
    ("version", "want"),
    [
        ("go1.26.8", ("go1.26.8", ())),
        ("go1.25.5 X:noswissmap", ("go1.25.5", ("noswissmap",))),
        ("go1.27.3-X:mapsplitgroup", ("go1.27.3", ("mapsplitgroup",))),
        (
            "go1.24.11 X:noswissmap,aliastypeparams",
            ("go1.24.11", ("noswissmap", "aliastypeparams")),
        ),
    ],
)
def test_version_and_experiments(version: str, want: tuple[str, tuple[str, ...]]) -> None:
    assert split_version(version) == want


@pytest.mark.parametrize(
    ("version", "want"),
    [
        ("go1.26.8", (1, 26)),
        ("go1.25.5 X:noswissmap", (1, 25)),
        ("go1.27.3-X:mapsplitgroup", (1, 27)),
        ("go1.27rc1", (1, 27)),
        ("1.22.10", (1, 22)),  # the matrix's spelling
        ("1.26", (1, 26)),  # layouts/index.toml's
    ],
)
def test_one_release_parser_for_every_spelling(version: str, want: tuple[int, int]) -> None:
    assert release_of(version) == want


def test_a_release_as_go_writes_it_is_required_where_asked() -> None:
    assert release_of("go1.26.8", require_go=True) == (1, 26)
    with pytest.raises(ValueError, match="is not a Go release"):
        release_of("1.26", require_go=True)


def test_kind_names_and_the_kinds_whose_hashing_cannot_panic() -> None:
    assert [kind_name(k) for k in (1, 2, 22, 24, 26)] == [
        "bool",
        "int",
        "pointer",
        "string",
        "unsafe.Pointer",
    ]
    assert kind_name(0) == "kind0" and kind_name(99) == "kind99"
    # booleans, numbers, chan, pointers, strings: never an interface, struct or array
    assert {*range(1, 17), 18, 22, 24, 26} == HASH_CANNOT_PANIC
