"""The wheel installs the kernels as fastbp.kernels, never as a top-level package."""

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_maps_kernels_under_fastbp(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(REPO)],
        check=True, capture_output=True, timeout=600,
    )
    (wheel,) = tmp_path.glob("fastbp-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    kernel_sources = sorted(p.name for p in (REPO / "kernels").glob("*.py"))
    assert sorted(Path(n).name for n in names if n.startswith("fastbp/kernels/")) == kernel_sources
    assert not any(n.startswith("kernels/") for n in names)
    assert "fastbp/__init__.py" in names and "fastbp/cli.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "fastbp = fastbp.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
