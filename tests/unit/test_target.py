from __future__ import annotations

import pytest

from dlvsnap.errors import TargetError
from dlvsnap.target import BUILDINFO_MAGIC, parse_buildinfo, split_version
from dlvsnap.watch import normalise_expr


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
