"""Checks of option values, shared by the public functions (one wording for every error).

Each check returns the value as a plain Python type or raises
:class:`~ophys_xr.exceptions.OptionError` naming the option, what it must be and what it got.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from ophys_xr.exceptions import OptionError

__all__ = ["SessionOptions", "boolean", "integer", "number", "positive_number"]


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


#: AllenSDK 2.16 defaults of ``BehaviorOphysExperiment.from_nwb``.
DEFAULT_EYE_TRACKING_Z_THRESHOLD = 3.0
DEFAULT_EYE_TRACKING_DILATION_FRAMES = 2
DEFAULT_EVENTS_FILTER_SCALE_SECONDS = 2.0 / 31.0
DEFAULT_EVENTS_FILTER_N_TIME_STEPS = 20


@dataclass(frozen=True)
class SessionOptions:
    """The options of opening a session, validated once (at construction).

    Every reader and :func:`ophys_xr.model.apply_session_options` take this one object;
    the public functions keep explicit keywords (xarray's backend needs them) and build it.

    Parameters
    ----------
    exclude_invalid_rois
        Leave out the ROIs whose ``valid_roi`` is False (the AllenSDK default).
    eye_tracking_z_threshold, eye_tracking_dilation_frames
        Blink detection of ``likely_blink``.
    events_filter_scale_seconds, events_filter_n_time_steps
        The causal half-normal filter of ``filtered_events``.

    Raises
    ------
    OptionError
        An invalid value, named.
    """

    exclude_invalid_rois: bool = True
    eye_tracking_z_threshold: float = DEFAULT_EYE_TRACKING_Z_THRESHOLD
    eye_tracking_dilation_frames: int = DEFAULT_EYE_TRACKING_DILATION_FRAMES
    events_filter_scale_seconds: float = DEFAULT_EVENTS_FILTER_SCALE_SECONDS
    events_filter_n_time_steps: int = DEFAULT_EVENTS_FILTER_N_TIME_STEPS

    def __post_init__(self) -> None:
        checked = {
            "exclude_invalid_rois": boolean(self.exclude_invalid_rois, "exclude_invalid_rois"),
            "eye_tracking_z_threshold": positive_number(
                self.eye_tracking_z_threshold, "eye_tracking_z_threshold"),
            "eye_tracking_dilation_frames": integer(
                self.eye_tracking_dilation_frames, "eye_tracking_dilation_frames", minimum=0),
            "events_filter_scale_seconds": positive_number(
                self.events_filter_scale_seconds, "events_filter_scale_seconds",
                unit="seconds"),
            "events_filter_n_time_steps": integer(
                self.events_filter_n_time_steps, "events_filter_n_time_steps", minimum=1),
        }
        for key, value in checked.items():
            object.__setattr__(self, key, value)

    @classmethod
    def recorded(cls, attrs: Mapping[str, Any], **given: Any) -> SessionOptions:
        """The options recorded in a session's attrs, overridden by the ``given`` not None.

        ROI exclusion is not recorded; it is False unless given.
        """
        recorded: dict[str, Any] = {"exclude_invalid_rois": False}
        for f in fields(cls):
            if f.name in attrs:
                value = attrs[f.name]
                recorded[f.name] = value.item() if isinstance(value, np.generic) else value
        recorded.update({k: v for k, v in given.items() if v is not None})
        return cls(**recorded)


def interval(value: object, name: str, *, unit: str = "", example: str = "") -> tuple[float, float]:
    """A ``(start, end)`` pair of finite real numbers (not bools) with ``start < end``.

    Any sequence or array of two numbers but a string; ``unit`` and ``example`` are named in
    the message.
    """
    from collections.abc import Sequence

    pair: Any = value
    ok = (
        isinstance(pair, Sequence | np.ndarray)
        and not isinstance(pair, str)
        and len(pair) == 2
        and all(_real(v) and math.isfinite(v) for v in pair)
    )
    if not ok or not float(pair[0]) < float(pair[1]):
        what = f"(start, end){f' in {unit}' if unit else ''} with start < end"
        eg = f", e.g. {example}" if example else ""
        msg = f"{name} must be {what}{eg}; got {value!r}"
        raise OptionError(msg)
    return float(pair[0]), float(pair[1])


def significance_level(value: object, name: str) -> float:
    """A real number in ``(0, 1]`` (not a bool), e.g. the ``alpha`` of a test."""
    if not (_real(value) and 0 < value <= 1):  # type: ignore[operator]
        msg = f"{name} must be a number in (0, 1], got {value!r}"
        raise OptionError(msg)
    return float(value)  # type: ignore[arg-type]


def chunk_sizes(value: object, dims: Mapping[Any, int], name: str = "chunks"
                ) -> dict[str, int]:
    """A ``{dimension: size}`` mapping of chunk sizes: each a positive integer or ``-1``
    (the whole dimension), for dimensions in ``dims`` (name -> length).

    ``None`` values (leave the dimension as it is) are dropped.
    """
    if not isinstance(value, Mapping):
        msg = (f"{name} must be a mapping of dimension name to chunk size, e.g. "
               f"{{'time': 10000}}; got {value!r}")
        raise OptionError(msg)
    unknown = [d for d in value if d not in dims]
    if unknown:
        msg = f"{name} names unknown dimensions {unknown}; dimensions: {list(dims)}"
        raise OptionError(msg)
    out: dict[str, int] = {}
    for dim, size in value.items():
        if size is None:
            continue
        if isinstance(size, bool | np.bool_) or not isinstance(size, numbers.Integral) \
                or not (int(size) > 0 or int(size) == -1):
            msg = (f"{name}[{dim!r}] must be a positive integer or -1 (the whole "
                   f"dimension), got {size!r}")
            raise OptionError(msg)
        out[str(dim)] = int(size)
    return out


__all__ += ["chunk_sizes", "interval", "significance_level"]
