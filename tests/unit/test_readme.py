"""README.md's examples are all run by a test (tests/readme.py says which), its links stay
inside the repository, and what needs no Go or dlv runs here: the goldens' diff, the
Makefile's demo recipe."""

from __future__ import annotations

import re
import shlex
import subprocess

from tests import readme
from tests.readme import ROOT


def test_every_block_is_marked_and_run_by_a_test() -> None:
    blocks = readme.blocks()
    unmarked = [b.line for b in blocks if b.name is None]
    assert not unmarked, f"README.md lines {unmarked}: a block without <!-- example: NAME -->"
    names = [b.name for b in blocks]
    assert len(names) == len(set(names)), names
    assert set(names) == set(readme.COVERED) | set(readme.NOT_COMMANDS), (
        "every README block must be run by a test (tests/readme.py COVERED): "
        f"uncovered {set(names) - set(readme.COVERED) - set(readme.NOT_COMMANDS)}, "
        f"gone {set(readme.COVERED) | set(readme.NOT_COMMANDS) - set(names)}"
    )
    assert len(blocks) == 16  # a new block: mark it, and cover it


def test_the_covering_tests_exist() -> None:
    ids = [i for ids in readme.COVERED.values() for i in ids]
    for nodeid in [*ids, readme.INLINE_COVERED, readme.CHEAT_SHEET_COVERED]:
        path, func = nodeid.split("::")
        assert f"\ndef {func}(" in (ROOT / path).read_text(), nodeid


def test_blocks_without_commands_hold_none() -> None:
    for b in readme.blocks():
        if b.name in readme.NOT_COMMANDS:
            assert b.commands == [], b
        elif b.name != "api":
            assert b.commands or str(b.name).endswith("-output"), f"{b.name}: no command found"


def test_commands_are_read_as_written() -> None:
    usage = readme.block("usage").commands
    assert usage[0] == "dlvsnap watch ./fixtures/deletes --map m"  # the comment cut off
    verify = readme.block("layouts-verify")
    assert verify.commands == ["dlvsnap layouts verify ./prog"]  # the prompt dropped
    assert verify.output[0].startswith("./prog: go1.")
    assert "dlvsnap snap --connect 127.0.0.1:4040 --map main.Inventory" in (
        readme.inline_commands()
    )
    assert ["--map", 'outer["b"]'] in readme.cheat_sheet()


LINK_RE = re.compile(r"\]\(([^)\s]+)\)")


def test_no_link_outside_the_repository() -> None:
    text = readme.text()
    for target in LINK_RE.findall(text):
        if re.match(r"https://", target):
            continue
        assert not re.match(r"[a-z]+:", target), f"{target}: only https links leave the repo"
        path = (ROOT / target.split("#")[0]).resolve()
        assert ROOT in path.parents or path == ROOT, f"{target}: outside the repository"
        assert path.exists(), f"{target}: no such file in the repository"
    # a path to a file beside the repository, linked or not, is a reference no reader has
    assert re.findall(r"`(\.\./[^`\s]*)`", text) == []


def test_goldens_diff_example() -> None:
    example = readme.block("regress-diff")
    (cmd,) = example.commands
    assert cmd.startswith("diff goldens/")
    r = subprocess.run(shlex.split(cmd), cwd=ROOT, capture_output=True, text=True, check=False)
    assert r.returncode == 1, r.stderr  # the files differ
    lines = r.stdout.splitlines()
    shown = example.output
    assert shown and all(s.startswith(("< ", "> ")) for s in shown), shown
    # the lines shown are real lines of the diff, in its order: an event's line before and
    # after, the release that added tombstonePossible
    at = [lines.index(s) for s in shown]
    assert at == sorted(at), (shown, lines)
    (old,), (new,) = ([s for s in shown if s.startswith(c)] for c in "<>")
    assert old.split(" | ")[0][2:] == new.split(" | ")[0][2:]
    assert "tombstonePossible" in new and "tombstonePossible" not in old


def test_make_demo_runs_what_the_readme_says() -> None:
    """`make demo` echoes its one recipe line without `@` (the demo output's first line),
    the command the README's comment names; tests/live/test_readme.py runs it."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe
    echoed = [ln.strip() for ln in recipe.group(1).splitlines() if not ln.strip().startswith("@")]
    assert echoed == [readme.block("demo-output").text.splitlines()[0]]
    setup = readme.block("setup").commands
    assert setup == ["make demo", "make test"]
    said = readme.block("setup").text.splitlines()[0].split("then: ", 1)[1]
    assert echoed[0] == f".venv/bin/{said}"
