"""Checks of option values, shared by the public functions (one wording for every error).

Each check returns the value as a plain Python type or raises
:class:`~ophys_xr.exceptions.OptionError` naming the option, what it must be and what it got.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ophys_xr.exceptions import OptionError

__all__ = ["boolean", "integer", "number", "positive_number"]


def _real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def number(value: object, name: str) -> float:
    """A finite real number (not a bool)."""
    if not (_real(value) and math.isfinite(float(value))):  # type: ignore[arg-type]
        msg = f"{name} must be a number, got {value!r}"
        raise OptionError(msg)
    return float(value)  # type: ignore[arg-type]


def positive_number(value: object, name: str, *, unit: str = "") -> float:
    """A finite real number > 0 (not a bool); ``unit`` is named in the message."""
    if not (_real(value) and math.isfinite(float(value)) and float(value) > 0):  # type: ignore[arg-type]
        what = f"a positive number{f' of {unit}' if unit else ''}"
        msg = f"{name} must be {what}, got {value!r}"
        raise OptionError(msg)
    return float(value)  # type: ignore[arg-type]


def integer(value: object, name: str, *, minimum: int) -> int:
    """An integer >= ``minimum`` (not a bool)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral) \
            or value < minimum:
        msg = f"{name} must be an integer >= {minimum}, got {value!r}"
        raise OptionError(msg)
    return int(value)


def boolean(value: object, name: str) -> bool:
    """True or False (numpy bools too)."""
    if not isinstance(value, bool | np.bool_):
        msg = f"{name} must be True or False, got {value!r}"
        raise OptionError(msg)
    return bool(value)
