"""Sphinx configuration of the ophys_xr documentation."""

from __future__ import annotations

import shutil
from pathlib import Path

import sphinx_autosummary_accessors

# The notebooks live in ../notebooks (run by the test suite); render copies of them here.
_here = Path(__file__).parent
(_here / "notebooks").mkdir(exist_ok=True)
for _nb in sorted((_here.parent / "notebooks").glob("*.ipynb")):
    shutil.copyfile(_nb, _here / "notebooks" / _nb.name)

project = "ophys_xr"
author = "ophys_xr developers"
copyright = "2026, ophys_xr developers"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx_autosummary_accessors",
]
templates_path = ["_templates", sphinx_autosummary_accessors.templates_path]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
autosummary_generate = True
autodoc_typehints = "description"
napoleon_numpy_docstring = True
napoleon_google_docstring = False
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
# The notebooks run on generated sessions (offline); the docs execute them, so the rendered
# pages show their outputs and a notebook that fails fails the docs build.
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_timeout = 600
suppress_warnings = ["myst.header"]
html_theme = "alabaster"
html_title = "ophys_xr"
intersphinx_mapping = {}
