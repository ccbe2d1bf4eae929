"""The layout data ships inside the wheel, where dlvsnap looks for it first."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_carries_the_layouts(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("dlvsnap-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for layout in (ROOT / "layouts").glob("*.toml"):
        assert f"dlvsnap/_layouts/{layout.name}" in names
    assert "dlvsnap/cli.py" in names
    for asset in ("page.html", "report.css", "report.js"):  # the report page's files
        assert f"dlvsnap/render/report/{asset}" in names
