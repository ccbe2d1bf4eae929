"""The README's examples, read from README.md itself, for the tests that run them.

Every fenced block of README.md is preceded by a marker, ``<!-- example: NAME -->``,
invisible on the rendered page. ``COVERED`` says which test runs each block's commands;
tests/unit/test_readme.py fails when a block has no marker, or a name no test covers, so
an example cannot be added without a test running it. The commands of a block are its
lines that start with a command (a ``$ `` prompt is dropped, and a trailing ``# comment``);
output lines of a transcript are not commands.

The examples name real things wherever they can: fixtures (`fixtures/deletes`,
`fixtures/realcode/realprog`). What they keep as a placeholder on purpose, the README
says how the tests fill in (`README_PROG`: ``./prog``, a running program's pid, a server's
address)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

# What `./prog` is in the README's examples (the README says so, and how it is built).
README_PROG = "interactive"
README_PROG_BUILD = "go build -C fixtures -gcflags=all='-N -l' -o ../prog ./interactive"

# block name -> the tests that run its commands (path::function)
LIVE = "tests/live/test_readme.py::"
UNIT = "tests/unit/test_readme.py::"
COVERED: dict[str, list[str]] = {
    # `make demo`: the recipe line is checked, its command run; `make test` is the suite
    # itself (CI's .ci/run), not run from inside it
    "setup": [UNIT + "test_make_demo_runs_what_the_readme_says"],
    "demo-output": [LIVE + "test_make_demo_prints_what_the_readme_shows"],
    "usage": [LIVE + "test_usage_examples"],
    "optimised-error": [LIVE + "test_optimised_binary_example"],
    "snap": [LIVE + "test_snap_examples", LIVE + "test_connect_examples"],
    "phases": [LIVE + "test_phases_example"],
    "connect": [LIVE + "test_connect_examples"],
    "core": ["tests/live/test_core.py::test_readme_core_examples"],
    "census": [LIVE + "test_census_example"],
    "census-output": [LIVE + "test_census_example"],
    "api": ["tests/live/test_interactive.py::test_readme_python_example_runs"],
    "report": [LIVE + "test_report_example"],
    "layouts-verify": [LIVE + "test_layouts_verify_example"],
    "regress-diff": [UNIT + "test_goldens_diff_example"],
    "delve-setup": [LIVE + "test_delve_setup_examples"],
}
# the inline `dlvsnap ... --connect` commands and the cheat-sheet table's examples
INLINE_COVERED = LIVE + "test_connect_examples"
CHEAT_SHEET_COVERED = LIVE + "test_cheat_sheet_examples"
# blocks that hold no command (checked: none of their lines looks like one)
NOT_COMMANDS = {"layers": "the architecture diagram"}

MARKER_RE = re.compile(r"<!-- example: ([\w-]+) -->")
FENCE_RE = re.compile(r"^```(\S*)\n(.*?)^```\n", re.M | re.S)
COMMAND_RE = re.compile(r"^(?:\$ )?(?:dlvsnap|dlv|make|go|diff|cd) ")


@dataclass(frozen=True)
class Block:
    name: str | None  # from the marker before it; None: no marker
    line: int  # of the opening fence
    lang: str
    text: str

    @property
    def commands(self) -> list[str]:
        """The commands of the block, without a ``$ `` prompt or a trailing comment."""
        out = []
        for line in self.text.splitlines():
            if COMMAND_RE.match(line):
                cmd = line.removeprefix("$ ")
                out.append(cmd[: _comment_start(cmd)].rstrip())
        return out

    @property
    def output(self) -> list[str]:
        """A transcript's lines that are not commands."""
        return [ln for ln in self.text.splitlines() if not COMMAND_RE.match(ln)]


def _comment_start(line: str) -> int:
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] == " "):
            return i
    return len(line)


def text() -> str:
    return README.read_text()


def blocks() -> list[Block]:
    src = text()
    out = []
    for m in FENCE_RE.finditer(src):
        before = src[: m.start()].rstrip().rsplit("\n", 1)[-1]
        marker = MARKER_RE.fullmatch(before.strip())
        line = src.count("\n", 0, m.start()) + 1
        out.append(Block(marker.group(1) if marker else None, line, m.group(1), m.group(2)))
    return out


def block(name: str) -> Block:
    found = [b for b in blocks() if b.name == name]
    assert len(found) == 1, f"README.md: {len(found)} blocks marked <!-- example: {name} -->"
    return found[0]


# Inline examples: a whole `dlvsnap SUBCOMMAND ... --OPTION ...` command in a code span,
# not a name (`dlvsnap layouts verify`) or a form with a placeholder (`...`, `PROG`,
# `1.NN.x`).
INLINE_RE = re.compile(r"`(dlvsnap [a-z]+ [^`]*--[^`]*)`")
PLACEHOLDER_RE = re.compile(r"\.\.\.|…|PROG|NN|\.N\b|\\\|")


def inline_commands() -> list[str]:
    return [c for c in INLINE_RE.findall(text()) if not PLACEHOLDER_RE.search(c)]


def cheat_sheet() -> list[list[str]]:
    """The "Which map is watched" table: the options of each example in its first column
    (each code span one example), as words."""
    src = text()
    section = src.split("### Which map is watched", 1)[1].split("\n\n", 2)[1]
    out = []
    for row in section.splitlines()[2:]:
        first = row.split(" | ")[0]
        out += [shlex.split(span) for span in re.findall(r"`([^`]+)`", first)]
    return out
