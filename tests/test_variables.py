"""ophys_xr.variables: the schema is data; the docs render from it and the Dataset follows it."""

from __future__ import annotations

from pathlib import Path

import pytest

import ophys_xr
from ophys_xr.variables import DIMS, METADATA_ATTRS, SPECS, render_markdown, validate

DOCS = Path(__file__).parents[1] / "docs"


def test_docs_schema_is_current() -> None:
    assert (DOCS / "schema.md").read_text() == render_markdown(), (
        "docs/schema.md is stale: regenerate it with "
        "python -c 'from ophys_xr.variables import render_markdown; "
        "print(render_markdown(), end=\"\")' > docs/schema.md"
    )


def test_every_variable_follows_its_spec(tiny_path) -> None:
    with ophys_xr.open_session(tiny_path) as ds:
        validate(ds, [n for n in SPECS if n in ds.variables])
        for name, var in ds.variables.items():
            spec = SPECS[str(name)]
            assert var.attrs["description"] == spec.description
            if spec.units:
                assert var.attrs["units"] == spec.units
        assert set(ds.dims) <= set(DIMS)
        assert set(ds.attrs) <= set(METADATA_ATTRS)


def test_validate_names_what_is_missing(tiny_path) -> None:
    with ophys_xr.open_session(tiny_path) as ds:
        with pytest.raises(ophys_xr.MissingDataError, match=r"stimulus_template_warped.*no such"):
            validate(ds, "stimulus_template_warped")
        with pytest.raises(ophys_xr.MissingDataError, match=r"Variables present: \["):
            validate(ds.drop_vars("dff"), "dff", purpose="the demo")
