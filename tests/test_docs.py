"""The documentation builds with Sphinx (warnings are errors) and has every page."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_docs_build(tmp_path) -> None:
    # build a copy, so that the generated pages never land in the checkout
    shutil.copytree(ROOT / "docs", tmp_path / "docs",
                    ignore=shutil.ignore_patterns("_build", "generated", "notebooks"))
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    # the project-cache notebook serves the test suite's loopback bucket (tests/_bucket.py)
    (tmp_path / "tests").mkdir()
    for helper in ("_bucket.py", "_http.py"):
        shutil.copyfile(ROOT / "tests" / helper, tmp_path / "tests" / helper)
    out = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         str(tmp_path / "docs"), str(tmp_path / "html")],
        capture_output=True, text=True, check=False,
    )
    assert out.returncode == 0, out.stderr[-5000:]
    pages = {p.name for p in (tmp_path / "html").rglob("*.html")}
    for page in ("index.html", "quickstart.html", "schema.html", "differences.html",
                 "api.html", "notebooks.html"):
        assert page in pages, page
    html = (tmp_path / "html" / "api.html").read_text()
    for name in ("Dataset.ophys.roi_masks", "Dataset.ophys.blink_filter",
                 "Dataset.ophys.performance", "Dataset.ophys.stimulus_response"):
        assert name in html, name
