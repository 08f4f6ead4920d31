"""Sphinx configuration of fastbp's documentation.

Build the site with ``python -m sphinx -W --keep-going -b html docs OUT`` and
run the code on its pages with the doctest builder (``-b doctest``). The
examples in ``examples/`` are run by sphinx-gallery; set
``FASTBP_GALLERY_QUICK=1`` to run them with ``--quick``, as CI does.
"""

import doctest
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# the fastbp of this checkout, and the gallery helpers beside this file
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_ext"))

import fastbp  # noqa: E402

project = "fastbp"
author = "the fastbp developers"
copyright = "the fastbp developers"
release = fastbp.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip", "auto_examples/*.json"]
root_doc = "index"
default_role = "literal"

# -- API reference -------------------------------------------------------------
autosummary_generate = True
autodoc_typehints = "none"
autodoc_preserve_defaults = True
toc_object_entries_show_parents = "hide"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
# Every public docstring of fastbp is checked by numpydoc's validator; with
# -W a missing parameter or section fails the build.
numpydoc_validation_checks = {"GL08", "PR01", "PR02", "PR03", "PR04", "PR10", "RT01", "SS01"}
numpydoc_validation_exclude = {
    # scikit-learn's own methods, inherited through its mixins
    r"\.get_params$", r"\.set_params$", r"\.score$", r"\.set_.*_request$",
    r"\.get_metadata_routing$", r"\.set_callbacks$", r"\.__sklearn_tags__$",
}

# -- The code on the pages -----------------------------------------------------
# Each page's code runs in a new temporary directory (it writes files).
doctest_global_setup = """
import os
import tempfile
import warnings

from sklearn.exceptions import ConvergenceWarning

warnings.simplefilter("ignore", ConvergenceWarning)
_doctest_cwd = os.getcwd()
_doctest_dir = tempfile.TemporaryDirectory()
os.chdir(_doctest_dir.name)
"""
doctest_global_cleanup = """
os.chdir(_doctest_cwd)
_doctest_dir.cleanup()
"""
doctest_default_flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE | doctest.DONT_ACCEPT_TRUE_FOR_1

# -- Gallery -------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r".*\.py$",
    "ignore_pattern": r"__init__\.py|/output/",
    # the examples write their pictures to files: those are the figures shown
    "image_scrapers": ("gallery_files.scrape_written_images",),
    "reset_argv": "gallery_files.example_argv",
    "download_all_examples": False,
    "abort_on_example_error": True,
    # run times are measurements of one build on one machine: not shown
    "min_reported_time": 10**9,
    "write_computation_times": False,
    # "Examples using ..." on every API page
    "doc_module": ("fastbp",),
    "backreferences_dir": "generated/backreferences",
    "reference_url": {"fastbp": None},
}

# -- HTML ----------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"fastbp {release}"
html_static_path = ["_static"]
html_css_files = ["fastbp.css"]
html_show_sourcelink = False
html_theme_options = {
    "navbar_align": "left",
    "navbar_persistent": ["search-button"],
    "header_links_before_dropdown": 5,
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
# The user guide's pages are top-level (in the navigation bar): no left sidebar.
html_sidebars = {
    page: []
    for page in ("index", "getting_started", "drop_in", "beyond", "network", "model_files",
                 "cli", "dask", "performance", "changelog")
}


# -- Inherited docstrings ------------------------------------------------------
# scikit-learn's and distributed's docstrings, inherited by fastbp's classes,
# point into their own sites' glossaries and guides (plain text here) and use
# LaTeX (literals here: the site loads no math renderer from the network).
_FOREIGN_ROLE = re.compile(r":(?:ref|term|doc):`(?:([^`<]*?)\s*<[^`>]*>|([^`]*))`")
_MATH_ROLE = re.compile(r":math:`([^`]*)`")


def _plain_foreign_roles(app, what, name, obj, options, lines):
    module = getattr(obj, "__module__", None) or ""
    if module.split(".")[0] in ("sklearn", "distributed"):
        text = _FOREIGN_ROLE.sub(lambda m: m.group(1) or m.group(2), "\n".join(lines))
        text = _MATH_ROLE.sub(r"``\1``", text)
        lines[:] = text.split("\n")


def _skip_worker_plugin_hooks(app, what, name, obj, skip, options):
    """ThreadLimitPlugin's page shows its own methods, not every hook of distributed's WorkerPlugin."""
    if getattr(obj, "__qualname__", "").startswith("WorkerPlugin."):
        return True
    return None


def setup(app):
    app.connect("autodoc-process-docstring", _plain_foreign_roles)
    app.connect("autodoc-skip-member", _skip_worker_plugin_hooks)
