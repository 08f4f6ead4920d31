"""A checkout and every way of installing it agree on where ``fastbp.kernels`` is.

``kernels/`` sits at the repository root and ``fastbp/kernels`` is a symlink
to it, so the source tree imports the kernels with no install step, and the
wheel and the sdist carry them under ``fastbp/kernels``, never as a
top-level package named ``kernels``. The builds run on a copy of the tree
(symlink kept) so that they leave nothing in the checkout.
"""

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
KERNEL_SOURCES = sorted(p.name for p in (REPO / "kernels").glob("*.py"))

SHOW_PATHS = (
    "import os, fastbp, fastbp.kernels; "
    "print(os.path.realpath(fastbp.__file__)); print(os.path.realpath(fastbp.kernels.__file__))"
)


def _python(args, cwd, pythonpath=None):
    """Run this interpreter with ``args`` in ``cwd``, PYTHONPATH set to ``pythonpath`` or unset."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def _check_ok(result):
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def test_fastbp_kernels_is_a_symlink_to_the_root_kernels():
    link = REPO / "fastbp" / "kernels"
    assert link.is_symlink()
    assert os.readlink(link) == os.path.join("..", "kernels")  # relative, so clones keep it
    assert link.resolve() == (REPO / "kernels").resolve()


def test_main_job_imports_the_checkout_from_the_repository_root():
    """The README's ``python -m fastbp`` from the root imports the checkout's fastbp, kernels included."""
    result = _python(["-c", SHOW_PATHS + "; import fastbp.__main__"], cwd=REPO)
    _check_ok(result)
    assert result.stdout.split() == [str((REPO / "fastbp" / "__init__.py").resolve()),
                                     str((REPO / "kernels" / "__init__.py").resolve())]


def test_source_tree_on_pythonpath_imports_kernels_without_an_install(tmp_path):
    result = _python(["-c", SHOW_PATHS], cwd=tmp_path, pythonpath=REPO)
    _check_ok(result)
    assert result.stdout.split() == [str((REPO / "fastbp" / "__init__.py").resolve()),
                                     str((REPO / "kernels" / "__init__.py").resolve())]


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """A wheel built from the tree (``pip install .``), and an sdist with the wheel built from it."""
    root = tmp_path_factory.mktemp("packaging")
    tree = root / "tree"
    shutil.copytree(REPO, tree, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", "__pycache__", "*.egg-info", "build", "dist", ".asv", ".pytest_cache",
        ".hypothesis", "*.nbi", "*.nbc"))
    assert (tree / "fastbp" / "kernels").is_symlink()
    commands = [["-m", "pip", "wheel", "--no-deps", "-q", "-w", str(root / "from_tree"), str(tree)],
                ["-m", "build", "--outdir", str(root / "from_sdist"), str(tree)]]
    with ThreadPoolExecutor(max_workers=2) as pool:  # each build waits mostly on installing setuptools
        for result in pool.map(lambda args: _python(args, cwd=root), commands):
            _check_ok(result)
    (tree_wheel,) = (root / "from_tree").glob("fastbp-*.whl")
    (sdist,) = (root / "from_sdist").glob("fastbp-*.tar.gz")
    (sdist_wheel,) = (root / "from_sdist").glob("fastbp-*.whl")
    return {"tree wheel": tree_wheel, "sdist": sdist, "sdist wheel": sdist_wheel}


@pytest.mark.parametrize("which", ["tree wheel", "sdist wheel"])
def test_wheel_maps_kernels_under_fastbp(builds, which):
    with zipfile.ZipFile(builds[which]) as wheel:
        names = wheel.namelist()
        kernels = sorted(n for n in names if n.startswith("fastbp/kernels/"))
        assert [Path(n).name for n in kernels] == KERNEL_SOURCES
        for name in kernels:
            assert wheel.read(name) == (REPO / "kernels" / Path(name).name).read_bytes()
        assert not any(n.startswith("kernels/") for n in names)
        assert "fastbp/__init__.py" in names and "fastbp/cli.py" in names
        top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        assert wheel.read(top_level).decode().split() == ["fastbp"]
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "fastbp = fastbp.cli:main" in wheel.read(entry_points).decode()


def test_sdist_carries_the_kernels_as_files_under_fastbp(builds):
    with tarfile.open(builds["sdist"]) as sdist:
        members = {m.name.split("/", 1)[1]: m for m in sdist.getmembers() if "/" in m.name}
        kernels = sorted(n for n in members if n.startswith("fastbp/kernels/") and n.endswith(".py"))
        assert [Path(n).name for n in kernels] == KERNEL_SOURCES
        for name in kernels:
            assert members[name].isfile()  # a copy, not a link: extracts anywhere
            content = sdist.extractfile(members[name]).read()
            assert content == (REPO / "kernels" / Path(name).name).read_bytes()
        assert not any(n.startswith("kernels/") for n in members)
        assert {"pyproject.toml", "README.md", "fastbp/__init__.py", "fastbp/cli.py"} <= set(members)
