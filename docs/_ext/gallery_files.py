"""sphinx-gallery hooks for fastbp's examples, which write their pictures to files.

Each example is a script that saves its figures (PNG, and an animated GIF)
into ``--out DIR`` and closes them, so sphinx-gallery's matplotlib scraper
would find no open figure. :func:`example_argv` runs every example as
``script.py --out output`` (plus ``--quick`` when the environment variable
``FASTBP_GALLERY_QUICK`` is ``1``), and :func:`scrape_written_images` puts
the pictures the example wrote during its run on its page, in the order it
wrote them.
"""

import os
import shutil
import time
from pathlib import Path

from sphinx_gallery.scrapers import figure_rst

OUT_DIR = "output"
IMAGE_SUFFIXES = (".png", ".gif")
_STARTED = "fastbp_started_ns"


def quick():
    """Whether the gallery runs the examples with ``--quick`` (``FASTBP_GALLERY_QUICK=1``)."""
    return os.environ.get("FASTBP_GALLERY_QUICK", "0") == "1"


def example_argv(gallery_conf, script_vars):
    """Command-line arguments of an example run by sphinx-gallery.

    Also notes when the example starts, so that pictures left in the output
    directory by earlier runs are not shown.
    """
    script_vars[_STARTED] = time.time_ns()
    return ["--out", OUT_DIR] + (["--quick"] if quick() else [])


def scrape_written_images(block, block_vars, gallery_conf):
    """Copy the pictures an example wrote since it started into the gallery; return their reST."""
    out_dir = Path(block_vars["src_file"]).parent / OUT_DIR
    started = block_vars.get(_STARTED, 0)
    seen = block_vars.setdefault("fastbp_scraped", set())
    written = sorted(
        (path for path in out_dir.glob("*")
         if path.suffix in IMAGE_SUFFIXES and path.stat().st_mtime_ns >= started
         and path.name not in seen),
        key=lambda path: (path.stat().st_mtime_ns, path.name),
    )
    rst = ""
    for path in written:
        target = Path(next(block_vars["image_path_iterator"])).with_suffix(path.suffix)
        shutil.copyfile(path, target)
        seen.add(path.name)
        # one at a time: each picture at full width rather than side by side
        rst += figure_rst([target], gallery_conf["src_dir"])
    return rst
