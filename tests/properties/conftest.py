"""Hypothesis profiles of the property tests.

``ci`` (the default): few examples, derandomized (the same examples on every run, so a CI
failure reproduces locally), no example database written into the tree.  ``dev`` runs
many more random examples and keeps a database of failures; choose it with
``HYPOTHESIS_PROFILE=dev python -m pytest tests/properties``.
"""

from __future__ import annotations

import contextlib
import os
import warnings

from hypothesis import HealthCheck, settings

# On a failure, hypothesis's pytest plugin writes the failing examples as a patch with
# libcst, which imports the deprecated mypy_extensions.TypedDict: with warnings as errors
# that happens inside pytest's report hook and turns the failure into an INTERNALERROR that
# hides it.  Import it once here, without the warning.
with warnings.catch_warnings(), contextlib.suppress(ImportError):
    warnings.filterwarnings("ignore", message="mypy_extensions.TypedDict is deprecated",
                            category=DeprecationWarning)
    import hypothesis.extra._patching  # noqa: F401

settings.register_profile(
    "ci",
    max_examples=16,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    max_examples=200,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
