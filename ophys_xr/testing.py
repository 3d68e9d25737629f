"""Synthetic Visual Behavior Ophys sessions, for tests, examples and benchmarks.

:func:`simulate_session` builds a deterministic (seeded) session Dataset that is valid
under the schema (:mod:`ophys_xr.variables`): plausible numbers, no biology claimed.
:func:`write_nwb` (:mod:`ophys_xr.backends.nwb_writer`, re-exported here) writes a session
Dataset (simulated, or opened from a file) as an NWB file in the layout AllenSDK 2.16.2
writes (``"2023"``, the VBO v1.1.0 release) or in the layout of the 2021 releases
(``"2021"``), with h5py only; :func:`write_session_nwb` is the two in one.  Opening the
written file with
``ophys_xr.open_session(path, exclude_invalid_rois=False)`` gives back the Dataset::

    expected = simulate_session(n_cells=20, minutes=5.0, seed=3)
    write_nwb(expected, "session.nwb")
    with ophys_xr.open_session("session.nwb", exclude_invalid_rois=False) as actual:
        xr.testing.assert_identical(actual.compute(), expected.compute())

Large sessions stay lazy: traces are dask arrays generated block by block from the seed
and are written block by block, so memory is bounded by a block of frames.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from ophys_xr import _options
from ophys_xr.backends.nwb_writer import (
    DEFAULT_IMAGE_SET as _IMAGE_SET,
    LAYOUTS,
    LayoutName as Layout,
    write_nwb,
)
from ophys_xr.exceptions import OptionError
from ophys_xr.model import create_session_dataset
from ophys_xr.variables import INT_NULL

__all__ = ["LAYOUTS", "simulate_multiplane_session", "simulate_session", "write_nwb",
           "write_session_nwb"]

#: Nominal and actual stimulus (monitor vsync) rates; monitors run slightly slow.
STIMULUS_FRAME_RATE = 60.0
_STIM_PERIOD = 1.0 / 59.95
_EYE_PERIOD = 1.0 / 59.97
#: A flash lasts 15 vsync frames (0.25 s) and one starts every 45 frames (0.75 s).
_FLASH_FRAMES = 15
_FLASH_PERIOD = 45
_FIRST_FLASH_FRAME = 8
#: AllenSDK fallback monitor delay (s) of behaviour sessions.
_MONITOR_DELAY = 0.02115
_IMAGE_NAMES = ("im065", "im077", "im066", "im085", "im063", "im062", "im069", "im061")
_STIMULUS_NAME = "Natural_Images_Lum_Matched_set_training_2017"
_SESSION_TYPE = "OPHYS_1_images_A"
_PASSIVE_SESSION_TYPE = "OPHYS_2_images_A_passive"
#: Session attributes of a behavior session (the AllenSDK ``BehaviorSession.metadata`` keys
#: and what the reader adds).
_BEHAVIOR_ATTRS = frozenset({
    "equipment_name", "sex", "age_in_days", "stimulus_frame_rate", "session_type",
    "date_of_acquisition", "reporter_line", "cre_line", "behavior_session_uuid", "driver_line",
    "mouse_id", "project_code", "full_genotype", "behavior_session_id", "nwb_layout",
    "task_parameters", "eye_tracking_rig_geometry", "stimulus_templates_image_set",
})
_BLOCK_NAME = "change_detection_behavior"
_PASSIVE_BLOCK_NAME = "change_detection_passive"
_EQUIPMENT = "CAM2P.4"
_MESOSCOPE = "MESO.1"
_MESOSCOPE_AREAS = ("VISp", "VISl", "VISal", "VISam")
_PIXEL_SPACING_MM = 0.00078125
#: (full genotype, reporter line, driver lines)
_GENOTYPES = (
    ("Slc17a7-IRES2-Cre/wt;Camk2a-tTA/wt;Ai93(TITL-GCaMP6f)/wt", "Ai93(TITL-GCaMP6f)",
     ("Camk2a-tTA", "Slc17a7-IRES2-Cre")),
    ("Vip-IRES-Cre/wt;Ai148(TIT2L-GC6f-ICL-tTA2)/wt", "Ai148(TIT2L-GC6f-ICL-tTA2)",
     ("Vip-IRES-Cre",)),
    ("Sst-IRES-Cre/wt;Ai148(TIT2L-GC6f-ICL-tTA2)/wt", "Ai148(TIT2L-GC6f-ICL-tTA2)",
     ("Sst-IRES-Cre",)),
)
_TASK_PARAMETERS: dict[str, Any] = {
    "auto_reward_volume": 0.005,
    "blank_duration_sec": [0.5, 0.5],
    "omitted_flash_fraction": 0.05,
    "response_window_sec": [0.15, 0.75],
    "reward_volume": 0.007,
    "stimulus": "images",
    "stimulus_distribution": "geometric",
    "stimulus_duration_sec": 0.25,
    "task": "change detection",
}
_RIG_GEOMETRY: dict[str, Any] = {
    "camera_position_mm": [102.8, 74.7, 31.6],
    "camera_rotation_deg": [0.0, 0.0, 2.8],
    "led_position": [246.0, 92.3, 52.6],
    "monitor_position_mm": [118.6, 86.2, 31.6],
    "monitor_rotation_deg": [0.0, 0.0, 0.0],
}
#: Running wheel: the mouse runs at 2/3 of the 6.5-inch wheel radius (AllenSDK), cm.
_WHEEL_RADIUS_CM = 0.5 * (2 * (6.5 * 2.54) / 3)
#: Frames per random-number block of the traces: the values do not depend on the chunks.
_GEN_BLOCK = 4096

# random streams: one SeedSequence key per part of the session
_S_META, _S_CLOCK, _S_CELLS, _S_TRACES, _S_BEHAVIOR, _S_EYE, _S_RUNNING, _S_IMAGES = range(8)
_S_TEMPLATES = 8
_S_NANS = 9


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def _smooth(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    """Stationary AR(1) noise with unit variance and lag-one correlation ``rho``."""
    from scipy.signal import lfilter

    white = rng.standard_normal(n + 2000)
    out = lfilter([math.sqrt(1.0 - rho * rho)], [1.0, -rho], white)
    return np.asarray(out[2000:])


# --------------------------------------------------------------------------------------
# simulation


def simulate_session(
    *,
    n_cells: int = 4,
    minutes: float = 2.0,
    seed: int = 0,
    n_invalid: int = 1,
    n_unmatched: int = 0,
    ophys_frame_rate: float = 31.0,
    eye_tracking: bool = True,
    licks: bool = True,
    rewards: bool = True,
    templates: bool = True,
    template_shape: tuple[int, int] = (24, 38),
    n_images: int | None = None,
    image_names: Sequence[str] | None = None,
    fov: tuple[int, int] = (64, 64),
    layout: Layout = "2023",
    passive: bool = False,
    behavior_only: bool = False,
    imaging_plane_group: int | None = None,
    imaging_plane_group_count: int = 0,
    chunk_frames: int | None = None,
    nan_traces: bool = False,
    nan_eye: bool = False,
    nan_running: bool = False,
) -> xr.Dataset:
    """A synthetic, deterministic Visual Behavior Ophys session Dataset.

    The content is plausible, not biological: ophys frames at ``ophys_frame_rate`` from
    about 17.6 s (imaging starts shortly before the stimulus, as in the AllenSDK fixture),
    stimulus (vsync) frames at ~60 Hz from 20 s, 0.25 s flashes every
    0.75 s of ``n_images`` images with image changes and ~5 % omitted flashes, a
    change-detection trial sequence (exactly one of hit / miss / false alarm / correct
    reject / auto-rewarded / aborted per trial) with the licks and rewards it implies,
    running, eye tracking with a few blinks (outliers and failed fits), elliptic ROIs in
    the field of view, and calcium-like traces built from sparse non-negative events.

    The result is what ``ophys_xr.open_session(path, exclude_invalid_rois=False)`` gives
    for the file that :func:`write_nwb` writes from it: it holds every ROI, valid or not,
    and the variables and attributes that a file of ``layout`` provides.

    Parameters
    ----------
    n_cells
        Number of valid ROIs.
    minutes
        Length of the stimulus (behaviour) part of the session.
    seed
        Seed of every random number; same arguments, same Dataset.
    n_invalid
        Number of additional ROIs with ``valid_roi`` False.
    n_unmatched
        Number of ROIs (of all) whose ``cell_specimen_id`` is -1.
    ophys_frame_rate
        Nominal imaging rate, Hz (``attrs["ophys_frame_rate"]``); the session has
        ``round(minutes * 60 * ophys_frame_rate)`` frames.
    eye_tracking, licks, rewards, templates
        Include eye tracking, licking, rewards (earned and automatic), stimulus templates.
        Without licks the mouse never licks (no hits, false alarms or aborted trials);
        without rewards no water is given (no auto-rewarded trials, hits earn nothing).
    template_shape
        (rows, columns) of the stimulus template images (real ones are 1200 x 1920).
    n_images
        Number of images in the image set (>= 2; default 8, or ``len(image_names)``).
    image_names
        Names of the images (any distinct, non-empty strings, unicode included, except
        ``"omitted"`` and ``"N/A"``, which name no image in the files, and without NUL
        characters); default ``im065``, ``im077``, ... (the VBO ``images_A`` names).
    fov
        (height, width) of the field of view in pixels (real ones are 512 x 512).
    layout
        ``"2023"`` (AllenSDK 2.16 files) or ``"2021"`` (2021 releases: no demixed and
        neuropil traces, no ``r``/``RMSE``, projections float32 in [0, 1], presentation
        times without monitor delay, fewer presentation columns, ``project_code``
        ``'Not Available'``, no ``targeted_imaging_depth``).
    passive
        A passive session (``OPHYS_2_images_A_passive``, a third of the released
        experiments): the mouse sees the change-detection block with the lick spout
        retracted, so there are no licks and no rewards, every trial is a miss (go) or a
        correct reject (catch), and the block is named ``change_detection_passive``.
    behavior_only
        A behavior session without imaging (``behavior_session_*.nwb``, the AllenSDK's
        ``BehaviorSession``): no cells, traces, ROI masks, projections or imaging
        metadata; ``attrs["session_kind"]`` is ``"behavior"``.  The cell options are then
        ignored.
    imaging_plane_group, imaging_plane_group_count
        One plane of a multiplane (mesoscope) session: plane group ``imaging_plane_group``
        of ``imaging_plane_group_count`` (>= 2).  The behavior (trials, presentations,
        licks, running, eye tracking) and the session ids are those of the other planes
        with the same ``seed``; the cells, traces and images are this plane's own, its
        frames are interleaved with the other planes' (the rig images the planes in turn),
        and it has its own ``ophys_experiment_id``.  See :func:`simulate_multiplane_session`.
    chunk_frames
        Frames per dask block of the traces (default: about 8 MB per trace and block).
        Values do not depend on it.
    nan_traces
        Blank a few blocks of frames (NaN) of some ROIs in ``dff``, the fluorescence,
        demixed and neuropil traces (``events`` stay finite), and make one ROI's traces NaN
        throughout.
    nan_eye
        A few tracking dropouts: blocks of eye frames where every ellipse fit (areas,
        centres, sizes, angles of eye, pupil and corneal reflection) is NaN.  No effect
        without ``eye_tracking``.
    nan_running
        A few encoder dropouts: blocks of stimulus frames where ``running_speed``,
        ``raw_running_speed`` and ``dx`` are NaN.

    Returns
    -------
    xarray.Dataset
        Built by :func:`ophys_xr.model.create_session_dataset`; the traces are dask
        arrays computed block by block, everything else is in memory.

    Raises
    ------
    OptionError
        Invalid argument values.
    """
    names = _check_image_names(n_images, image_names)
    n_rois = _check_options(n_cells, minutes, seed, n_invalid, n_unmatched, ophys_frame_rate,
                            template_shape, len(names), fov, layout, chunk_frames)
    _options.boolean(passive, "passive")
    _options.boolean(behavior_only, "behavior_only")
    plane = _check_plane(imaging_plane_group, imaging_plane_group_count, behavior_only)
    stim_ts, ophys_ts, eye_ts = _clocks(seed, minutes, ophys_frame_rate, plane)
    attrs = _session_attrs(seed, ophys_frame_rate, fov, layout, len(stim_ts),
                           eye_tracking=eye_tracking, templates=templates, passive=passive,
                           plane=plane)
    variables: dict[str, Any] = {
        "stimulus_frame": np.arange(len(stim_ts), dtype=np.int64),
        "stimulus_timestamps": stim_ts,
    }
    if behavior_only:
        attrs = {k: v for k, v in attrs.items() if k in _BEHAVIOR_ATTRS}
        attrs["session_kind"] = "behavior"
    else:
        # a plane's imaging has its own random streams; the behavior is the session's
        imaging_seed = seed if plane is None else seed + 7919 * (plane[0] + 1)
        variables.update(_imaging(imaging_seed, ophys_ts, n_cells, n_invalid, n_unmatched,
                                  n_rois, fov, layout, ophys_frame_rate, chunk_frames,
                                  nan_traces))
    variables.update(_behavior(seed, stim_ts, names, layout, licks=licks and not passive,
                               rewards=rewards and not passive, passive=passive))
    variables.update(_running(seed, stim_ts))
    if nan_running:
        _blank(variables, ("running_speed", "raw_running_speed", "dx"),
               _nan_blocks(seed, len(stim_ts), 0, key=1))
    if eye_tracking:
        eye = _eye(seed, eye_ts)
        if nan_eye:
            _blank(eye, [k for k in eye if k not in ("eye_frame", "eye_timestamps")],
                   _nan_blocks(seed, len(eye_ts), 0, key=2))
        variables.update(eye)
    if templates:
        variables.update(_templates(seed, names, template_shape))
    return create_session_dataset(variables, attrs)


def _imaging(seed: int, ophys_ts: np.ndarray, n_cells: int, n_invalid: int, n_unmatched: int,
             n_rois: int, fov: Sequence[int], layout: str, ophys_frame_rate: float,
             chunk_frames: int | None, nan_traces: bool) -> dict[str, Any]:
    """The imaging variables: ophys time, cells, traces, motion correction, projections."""
    out: dict[str, Any] = {"time": ophys_ts}
    cells, trace_params = _cells(seed, n_cells, n_invalid, n_unmatched, fov, layout,
                                 len(ophys_ts), ophys_frame_rate)
    if nan_traces:
        trace_params = trace_params._replace(nan_blocks=_nan_blocks(seed, len(ophys_ts), n_rois))
    out.update(cells)
    if chunk_frames is None:
        chunk_frames = max(256, (2**20) // n_rois)
    out.update(_trace_arrays(trace_params, min(chunk_frames, len(ophys_ts))))
    out.update(_motion(seed, len(ophys_ts), cells))
    out.update(_projections(seed, fov, cells, layout))
    return out


def _check_image_names(n_images: int | None, image_names: Sequence[str] | None) -> list[str]:
    """The image names (checked), from ``image_names`` or the default names."""
    if image_names is None:
        if n_images is None:
            n_images = 8
        if isinstance(n_images, bool) or not isinstance(n_images, int | np.integer) \
                or not 2 <= n_images <= 99:
            msg = f"n_images must be an integer between 2 and 99, got {n_images!r}"
            raise OptionError(msg)
        return _image_names(int(n_images))
    if isinstance(image_names, str) or not all(isinstance(v, str) for v in image_names):
        msg = f"image_names must be a sequence of str, got {image_names!r}"
        raise OptionError(msg)
    names = list(image_names)
    if n_images is not None and n_images != len(names):
        msg = (f"n_images={n_images!r} but {len(names)} image_names were given; pass one of "
               "them (n_images is len(image_names))")
        raise OptionError(msg)
    if not 2 <= len(names) <= 99:
        msg = f"image_names must hold 2 to 99 names, got {len(names)}"
        raise OptionError(msg)
    bad = [v for v in names if v in ("", "omitted", "N/A") or "\x00" in v]
    if bad:
        msg = (f"image_names {bad!r} cannot be image names: '' and 'N/A' mean 'no image' in "
               "the NWB files, 'omitted' names omitted flashes and HDF5 strings end at NUL")
        raise OptionError(msg)
    if len(set(names)) != len(names):
        msg = f"image_names must be distinct, got {names!r}"
        raise OptionError(msg)
    return names


def _nan_blocks(seed: int, n_frames: int, n_rois: int, *, key: int = 0
                ) -> tuple[tuple[int, int, int], ...]:
    """A few ``(roi, start, stop)`` blocks of missing frames (roi -1: all ROIs).

    With ROIs, the last block blanks one ROI (drawn) over the whole session.
    """
    rng = _rng(seed, _S_NANS, key)
    blocks = []
    for _ in range(int(rng.integers(1, 4))):
        start = int(rng.integers(0, max(n_frames - 1, 1)))
        stop = min(n_frames, start + int(rng.integers(1, 40)))
        roi = int(rng.integers(-1, n_rois)) if n_rois else -1
        blocks.append((roi, start, stop))
    if n_rois:
        blocks.append((int(rng.integers(n_rois)), 0, n_frames))
    return tuple(blocks)


def _blank(variables: dict[str, Any], names: Sequence[str],
           blocks: Sequence[tuple[int, int, int]]) -> None:
    """Set ``variables[name][start:stop] = NaN`` for every block (1-d arrays, in place)."""
    for name in names:
        values = np.array(variables[name], dtype=np.float64)
        for _, start, stop in blocks:
            values[start:stop] = np.nan
        variables[name] = values


def _check_options(n_cells: int, minutes: float, seed: int, n_invalid: int, n_unmatched: int,
                   ophys_frame_rate: float, template_shape: Sequence[int], n_images: int,
                   fov: Sequence[int], layout: str, chunk_frames: int | None) -> int:
    def integer(value: Any, name: str, minimum: int) -> int:
        return _options.integer(value, name, minimum=minimum)

    n_rois = integer(n_cells, "n_cells", 0) + integer(n_invalid, "n_invalid", 0)
    if n_rois < 1:
        msg = "the session needs at least one ROI (n_cells + n_invalid >= 1)"
        raise OptionError(msg)
    integer(seed, "seed", 0)
    if integer(n_unmatched, "n_unmatched", 0) > n_rois:
        msg = f"n_unmatched={n_unmatched} exceeds the number of ROIs ({n_rois})"
        raise OptionError(msg)
    # 0.3 min hold 24 flashes: enough for the first trial (it ends by flash 23)
    if not isinstance(minutes, int | float) or not 0.3 <= minutes <= 24 * 60:
        msg = f"minutes must be a number between 0.3 and 1440, got {minutes!r}"
        raise OptionError(msg)
    if not isinstance(ophys_frame_rate, int | float) or not 1.0 <= ophys_frame_rate <= 1000.0:
        msg = f"ophys_frame_rate must be a number between 1 and 1000 Hz, got {ophys_frame_rate!r}"
        raise OptionError(msg)
    if integer(n_images, "n_images", 2) > 99:
        msg = f"n_images must be <= 99, got {n_images}"
        raise OptionError(msg)
    for name, shape, minimum in (("fov", fov, 16), ("template_shape", template_shape, 4)):
        if len(shape) != 2:
            msg = f"{name} must be (rows, columns), got {shape!r}"
            raise OptionError(msg)
        for size in shape:
            integer(size, name, minimum)
    if layout not in LAYOUTS:
        msg = f"layout must be one of {LAYOUTS}, got {layout!r}"
        raise OptionError(msg)
    if chunk_frames is not None:
        integer(chunk_frames, "chunk_frames", 1)
    return n_rois


def _check_plane(group: int | None, count: int, behavior_only: bool
                 ) -> tuple[int, int] | None:
    """``(group, count)`` of a plane of a multiplane session, or None."""
    if group is None:
        if count not in (0, 1) or isinstance(count, bool):
            msg = ("imaging_plane_group_count needs imaging_plane_group (the plane's index), "
                   f"got count {count!r} without a group")
            raise OptionError(msg)
        return None
    count = _options.integer(count, "imaging_plane_group_count", minimum=2)
    if count > 8:
        msg = f"imaging_plane_group_count must be at most 8 (mesoscope planes), got {count}"
        raise OptionError(msg)
    group = _options.integer(group, "imaging_plane_group", minimum=0)
    if group >= count:
        msg = f"imaging_plane_group must be < imaging_plane_group_count ({count}), got {group}"
        raise OptionError(msg)
    if behavior_only:
        msg = "a behavior session has no imaging planes: drop imaging_plane_group"
        raise OptionError(msg)
    return group, count


def _clocks(seed: int, minutes: float, ophys_frame_rate: float,
            plane: tuple[int, int] | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stimulus (vsync), ophys and eye-camera timestamps (sync clock, seconds).

    The frames of plane ``(group, count)`` of a multiplane session follow the session's
    frame clock shifted by ``group`` of ``count`` steps of a frame: the planes are imaged in
    turn.
    """
    rng = _rng(seed, _S_CLOCK)
    n_stim = round(minutes * 60 * STIMULUS_FRAME_RATE)
    stim = 20.0 + np.arange(n_stim) * _STIM_PERIOD + rng.uniform(-5e-5, 5e-5, n_stim)
    stim[0] = 20.0
    n_ophys = round(minutes * 60 * ophys_frame_rate)
    period = 1.0 / (ophys_frame_rate * 0.9963)
    t0 = 17.6 + rng.uniform(0.0, 0.05)
    ophys = t0 + np.arange(n_ophys) * period + rng.uniform(-0.01, 0.01, n_ophys) * period
    if plane is not None:
        ophys = ophys + plane[0] * period / plane[1]
    n_eye = round((minutes * 60 + 3.0) / _EYE_PERIOD)
    eye = 18.5 + np.arange(n_eye) * _EYE_PERIOD + rng.uniform(-0.01, 0.01, n_eye) * _EYE_PERIOD
    return stim, ophys, eye


def _session_attrs(seed: int, ophys_frame_rate: float, fov: Sequence[int], layout: str,
                   n_stim: int, *, eye_tracking: bool, templates: bool, passive: bool,
                   plane: tuple[int, int] | None = None) -> dict[str, Any]:
    """Session attributes as the NWB reader returns them (same keys, same order)."""
    rng = _rng(seed, _S_META)
    genotype, reporter, drivers = _GENOTYPES[int(rng.integers(len(_GENOTYPES)))]
    acquired = datetime(2019, 1, 1, tzinfo=UTC) + timedelta(
        days=int(rng.integers(0, 900)), seconds=int(rng.integers(8 * 3600, 18 * 3600)),
        microseconds=int(rng.integers(1, 1000)) * 1000)
    depth = int(rng.choice([150, 175, 225, 275, 375]))
    ids = 880_000_000 + rng.choice(1_000_000, 4, replace=False)
    session_type = _PASSIVE_SESSION_TYPE if passive else _SESSION_TYPE
    task = {**_TASK_PARAMETERS, "image_set": "images_A", "n_stimulus_frames": int(n_stim),
            "session_type": session_type,
            "stimulus_name": _STIMULUS_NAME if layout == "2023" else None}
    attrs: dict[str, Any] = {
        "equipment_name": _EQUIPMENT,
        "sex": str(rng.choice(["F", "M"])),
        "age_in_days": int(rng.integers(90, 220)),
        "stimulus_frame_rate": STIMULUS_FRAME_RATE,
        "session_type": session_type,
        "date_of_acquisition": acquired.isoformat(timespec="microseconds"),
        "reporter_line": reporter,
        "cre_line": genotype.split(";")[0].replace("/wt", ""),
        "behavior_session_uuid": str(uuid.UUID(bytes=rng.bytes(16), version=4)),
        "driver_line": sorted(drivers),
        "mouse_id": str(int(rng.integers(400_000, 600_000))),
        "project_code": "VisualBehavior" if layout == "2023" else "Not Available",
        "full_genotype": genotype,
        "behavior_session_id": int(ids[0]),
        "indicator": "GCaMP6f",
        "emission_lambda": 520.0,
        "excitation_lambda": 910.0,
        "ophys_container_id": int(ids[1]) + 200_000_000,
        "field_of_view_height": int(fov[0]),
        "field_of_view_width": int(fov[1]),
        "imaging_depth": depth,
        "targeted_imaging_depth": depth if layout == "2023" else None,
        "imaging_plane_group_count": 0,
        "ophys_experiment_id": int(ids[2]),
        "ophys_frame_rate": float(ophys_frame_rate),
        "ophys_session_id": int(ids[3]),
        "targeted_structure": str(rng.choice(["VISp", "VISl"])),
        "nwb_layout": layout,
        "task_parameters": json.dumps(dict(sorted(task.items()))),
    }
    if plane is not None:  # a mesoscope plane: its own experiment, depth and area
        group, count = plane
        attrs.update({
            "equipment_name": _MESOSCOPE,
            "imaging_plane_group": group,
            "imaging_plane_group_count": count,
            "ophys_experiment_id": int(ids[2]) + group,
            "ophys_container_id": int(ids[1]) + 200_000_000 + group,
            "imaging_depth": depth + 75 * (group % 2),
            "targeted_structure": _MESOSCOPE_AREAS[group // 2 % len(_MESOSCOPE_AREAS)],
        })
        if attrs["targeted_imaging_depth"] is not None:
            attrs["targeted_imaging_depth"] = attrs["imaging_depth"]
    if eye_tracking:
        geometry = {**_RIG_GEOMETRY, "equipment": attrs["equipment_name"]}
        attrs["eye_tracking_rig_geometry"] = json.dumps(dict(sorted(geometry.items())))
    attrs["pixel_spacing"] = [_PIXEL_SPACING_MM, _PIXEL_SPACING_MM]
    attrs["pixel_spacing_unit"] = "mm"
    if templates:
        attrs["stimulus_templates_image_set"] = _IMAGE_SET
    return {k: v for k, v in attrs.items() if v is not None}


# ---- cells and traces -----------------------------------------------------------------


class _TraceParams(NamedTuple):
    """Everything a block of traces depends on (picklable, tokenizable)."""

    seed: int
    n_frames: int
    rate: float
    kinds: tuple[str, ...]
    f0: np.ndarray
    r: np.ndarray
    np_base: np.ndarray
    np_phase: np.ndarray
    noise_std: np.ndarray
    p_event: np.ndarray
    amp_mu: np.ndarray
    kernels: np.ndarray
    #: ``(roi, start, stop)`` blocks of NaN frames (roi -1: every ROI); events stay finite
    nan_blocks: tuple[tuple[int, int, int], ...] = ()


def _ellipse(height: int, width: int) -> np.ndarray:
    rows = (np.arange(height) - (height - 1) / 2) / (height / 2)
    cols = (np.arange(width) - (width - 1) / 2) / (width / 2)
    return rows[:, None] ** 2 + cols[None, :] ** 2 <= 1.0


def _cells(seed: int, n_cells: int, n_invalid: int, n_unmatched: int, fov: Sequence[int],
           layout: str, n_frames: int, rate: float) -> tuple[dict[str, Any], _TraceParams]:
    rng = _rng(seed, _S_CELLS)
    n = n_cells + n_invalid
    height, width = int(fov[0]), int(fov[1])
    roi_id = 1_080_600_000 + np.sort(rng.choice(10_000_000, n, replace=False)).astype(np.int64)
    valid = np.ones(n, dtype=bool)
    valid[rng.choice(n, n_invalid, replace=False)] = False
    csid = (1_086_600_000 + rng.choice(10_000_000, n, replace=False)).astype(np.int64)
    csid[rng.choice(n, n_unmatched, replace=False)] = -1
    hi_h, hi_w = max(6, min(14, height // 3)), max(6, min(14, width // 3))
    h = np.where(valid, rng.integers(6, hi_h + 1, n), rng.integers(3, 6, n))
    w = np.where(valid, rng.integers(6, hi_w + 1, n), rng.integers(3, 6, n))
    y = rng.integers(0, height - h + 1)
    x = rng.integers(0, width - w + 1)
    masks = np.zeros((n, height, width), dtype=bool)
    planes = np.zeros(n, dtype=np.int64)
    occupied: list[np.ndarray] = []
    for i in range(n):
        masks[i, y[i]:y[i] + h[i], x[i]:x[i] + w[i]] = _ellipse(int(h[i]), int(w[i]))
        plane = 0
        while plane < len(occupied) and (occupied[plane] & masks[i]).any():
            plane += 1
        if plane == len(occupied):
            occupied.append(np.zeros((height, width), dtype=bool))
        occupied[plane] |= masks[i]
        planes[i] = plane
    correction = rng.integers(3, 13, 4).astype(np.float64)
    out: dict[str, Any] = {
        "cell_specimen_id": csid,
        "cell_roi_id": roi_id,
        "valid_roi": valid,
        "x": x.astype(np.int64),
        "y": y.astype(np.int64),
        "width": w.astype(np.int64),
        "height": h.astype(np.int64),
        "mask_image_plane": planes,
        "max_correction_up": np.full(n, correction[0]),
        "max_correction_down": np.full(n, correction[1]),
        "max_correction_left": np.full(n, correction[2]),
        "max_correction_right": np.full(n, correction[3]),
        "row": np.arange(height, dtype=np.int64),
        "column": np.arange(width, dtype=np.int64),
        "roi_mask": masks,
    }
    r = rng.uniform(0.6, 0.8, n)
    noise_std = rng.uniform(0.04, 0.2, n)
    if layout == "2023":
        out["r"] = r
        out["RMSE"] = rng.uniform(3.0, 14.0, n)
    out["lambda"] = rng.uniform(0.15, 0.3, n)
    out["noise_std"] = noise_std
    # calcium kernel: exponential decay, tau 0.4-1.0 s, truncated at 5 tau
    tau = rng.choice([0.4, 0.6, 0.8, 1.0], n) * rate
    n_taps = math.ceil(5 * tau.max())
    kernels = np.exp(-np.arange(n_taps)[None, :] / tau[:, None])
    event_rate = np.where(valid, rng.uniform(0.05, 0.4, n), 0.02)  # Hz
    kinds = ("dff", "corrected_fluorescence", "demixed_trace", "neuropil_trace", "events") \
        if layout == "2023" else ("dff", "corrected_fluorescence", "events")
    params = _TraceParams(
        seed=int(seed), n_frames=int(n_frames), rate=float(rate), kinds=kinds,
        f0=rng.uniform(150.0, 450.0, n), r=r, np_base=rng.uniform(150.0, 300.0, n),
        np_phase=rng.uniform(0.0, 2 * np.pi, n), noise_std=noise_std,
        p_event=event_rate / rate, amp_mu=np.log(rng.uniform(0.2, 0.6, n)), kernels=kernels,
    )
    return out, params


def _random_block(p: _TraceParams, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Events, dF/F noise and neuropil noise of one generation block (all ROIs)."""
    rng = _rng(p.seed, _S_TRACES, block)
    n = len(p.f0)
    length = min(_GEN_BLOCK, p.n_frames - block * _GEN_BLOCK)
    spikes = rng.random((n, length)) < p.p_event[:, None]
    rows, _ = np.nonzero(spikes)
    events = np.zeros((n, length))
    events[spikes] = rng.lognormal(p.amp_mu[rows], 0.5)
    return events, rng.standard_normal((n, length)), rng.standard_normal((n, length))


def _trace_block(p: _TraceParams, start: int, stop: int) -> np.ndarray:
    """Traces of frames ``start:stop`` of every ROI, stacked as ``p.kinds``.

    Each output frame depends only on the events of the ``len(kernel)`` frames up to it,
    summed in a fixed order, so the values do not depend on the block boundaries.
    """
    n_taps = p.kernels.shape[1]
    lo = max(0, start - n_taps + 1)
    first, last = lo // _GEN_BLOCK, (stop - 1) // _GEN_BLOCK
    n, length, skip = len(p.f0), stop - start, start - lo
    events = np.empty((n, stop - lo))
    noise = np.empty((n, length))
    np_noise = np.empty((n, length))
    for b in range(first, last + 1):  # copy the needed frames of each generation block
        b0 = b * _GEN_BLOCK
        part = _random_block(p, b)
        a, z = max(lo, b0), min(stop, b0 + part[0].shape[1])
        events[:, a - lo:z - lo] = part[0][:, a - b0:z - b0]
        a = max(start, b0)
        if a < z:
            noise[:, a - start:z - start] = part[1][:, a - b0:z - b0]
            np_noise[:, a - start:z - start] = part[2][:, a - b0:z - b0]
        del part
    calcium = np.zeros((n, length))
    event_roi, frame = np.nonzero(events)
    cols = (frame - skip)[:, None] + np.arange(n_taps)[None, :]
    vals = events[event_roi, frame][:, None] * p.kernels[event_roi]
    rows = np.broadcast_to(event_roi[:, None], cols.shape)
    ok = (cols >= 0) & (cols < length)
    np.add.at(calcium, (rows[ok], cols[ok]), vals[ok])
    dff = calcium + p.noise_std[:, None] * noise
    t = np.arange(start, stop) / p.rate
    phase = p.np_phase[:, None]
    neuropil = p.np_base[:, None] * (1.0 + 0.05 * np.sin(2 * np.pi * t / 47.0 + phase))
    neuropil += 4.0 * np_noise
    corrected = p.f0[:, None] * (1.0 + dff)
    demixed = corrected + p.r[:, None] * neuropil
    for roi, first_nan, stop_nan in p.nan_blocks:
        lo_nan, hi_nan = max(first_nan, start) - start, min(stop_nan, stop) - start
        if lo_nan < hi_nan:
            which = slice(None) if roi < 0 else slice(roi, roi + 1)
            for trace in (dff, corrected, demixed, neuropil):
                trace[which, lo_nan:hi_nan] = np.nan
    values = {
        "dff": dff,
        # the 2021 files store the demixed trace as corrected fluorescence
        "corrected_fluorescence": corrected if "demixed_trace" in p.kinds else demixed,
        "demixed_trace": demixed,
        "neuropil_trace": neuropil,
        "events": events[:, skip:],
    }
    return np.stack([values[k] for k in p.kinds])


def _trace_arrays(p: _TraceParams, chunk_frames: int) -> dict[str, Any]:
    import dask.array as da
    from dask.base import tokenize

    bounds = [(a, min(a + chunk_frames, p.n_frames)) for a in range(0, p.n_frames, chunk_frames)]
    name = f"ophys-simulated-traces-{tokenize(p, bounds)}"
    graph = {(name, 0, 0, j): (_trace_block, p, a, b) for j, (a, b) in enumerate(bounds)}
    chunks = ((len(p.kinds),), (len(p.f0),), tuple(b - a for a, b in bounds))
    stacked = da.Array(graph, name, chunks, dtype=np.float64,
                       meta=np.empty((0, 0, 0), dtype=np.float64))
    # (time, cell_specimen_id): the schema order, as NWB stores traces
    return {kind: stacked[i].T for i, kind in enumerate(p.kinds)}


def _motion(seed: int, n_frames: int, cells: Mapping[str, Any]) -> dict[str, Any]:
    rng = _rng(seed, _S_IMAGES, 1)
    out = {}
    for axis, (lo, hi) in (("x", ("max_correction_left", "max_correction_right")),
                           ("y", ("max_correction_up", "max_correction_down"))):
        shift = np.round(1.5 * _smooth(rng, n_frames, 0.99) + 0.4 * rng.standard_normal(n_frames))
        shift = np.clip(shift, -cells[lo][0], cells[hi][0])
        out[f"motion_correction_{axis}"] = shift.astype(np.int64)
    return out


def _projections(seed: int, fov: Sequence[int], cells: Mapping[str, Any],
                 layout: str) -> dict[str, Any]:
    rng = _rng(seed, _S_IMAGES)
    height, width = int(fov[0]), int(fov[1])
    rows, cols = np.mgrid[0:height, 0:width]
    background = 45.0 + 12.0 * np.sin(rows / height * 3.1 + rng.uniform(0, 6)) \
        * np.cos(cols / width * 2.3 + rng.uniform(0, 6))
    brightness = rng.uniform(25.0, 70.0, len(cells["roi_mask"]))
    cells_image = np.zeros((height, width))
    for value, mask in zip(brightness, cells["roi_mask"], strict=True):
        cells_image[mask] += value
    average = background + cells_image + rng.normal(0.0, 3.0, (height, width))
    maximum = 1.6 * average + 25.0 + rng.normal(0.0, 6.0, (height, width))
    out = {}
    for name, image in (("max_projection", maximum), ("average_projection", average)):
        image = np.clip(np.round(image), 0, 255)
        out[name] = image.astype(np.uint8) if layout == "2023" \
            else (image / 255.0).astype(np.float32)
    return out


# ---- behaviour ------------------------------------------------------------------------


def _image_names(n_images: int) -> list[str]:
    names = list(_IMAGE_NAMES[:n_images])
    extra = 100
    while len(names) < n_images:
        if f"im{extra:03d}" not in names:
            names.append(f"im{extra:03d}")
        extra += 7
    return names


def _bout(rng: np.random.Generator, first: int, n_min: int, n_max: int) -> list[int]:
    """Lick frames of one bout starting at ``first`` (6-11 frames apart)."""
    frames = [first]
    for _ in range(int(rng.integers(n_min, n_max + 1)) - 1):
        frames.append(frames[-1] + int(rng.integers(6, 12)))
    return frames


def _behavior(seed: int, stim_ts: np.ndarray, names: Sequence[str], layout: str, *,
              licks: bool, rewards: bool, passive: bool = False) -> dict[str, Any]:
    """Trials, licks, rewards and stimulus presentations of one change-detection block."""
    rng = _rng(seed, _S_BEHAVIOR)
    n_images = len(names)
    n_stim = len(stim_ts)
    starts = np.arange(_FIRST_FLASH_FRAME, n_stim - _FLASH_FRAMES - 1, _FLASH_PERIOD)
    n_flash = len(starts)
    image = np.zeros(n_flash, dtype=np.int64)
    protected = np.zeros(n_flash, dtype=bool)  # (sham) change flashes are never omitted
    current, done = int(rng.integers(n_images)), 0
    lick_frames: list[int] = []
    if licks:  # a few licks before the first trial
        for _ in range(int(rng.integers(0, 3))):
            lick_frames.append(int(rng.integers(1, starts[3])))
    trials: list[dict[str, Any]] = []
    reward_frames: list[tuple[int, float, bool]] = []
    n_auto = 3 if rewards else 0
    k = 4
    while True:
        change = k + 2 + min(int(rng.geometric(0.3)), 9)
        if change + 7 >= n_flash:
            break
        u = rng.random()
        if n_auto > 0:
            kind, n_auto = "auto_rewarded", n_auto - 1
        elif licks and u < 0.25:
            kind = "aborted"
        elif u < (0.4 if licks else 0.2):
            kind = "catch"
        else:
            kind = "go"
        trial: dict[str, Any] = {"start_frame": int(starts[k]) - 1, "kind": kind,
                                 "initial": current, "change_flash": -1}
        if kind == "aborted":
            flash = int(rng.integers(k + 1, change))
            bout = _bout(rng, int(starts[flash]) + int(rng.integers(5, 40)), 1, 3)
            lick_frames += bout
            trial["stop_frame"] = bout[-1] + 20
            trial["change"] = current
        else:
            trial["change_flash"] = change
            change_frame = int(starts[change])
            protected[change] = True
            if kind in ("go", "auto_rewarded"):
                image[done:change] = current
                current = int(rng.choice([i for i in range(n_images) if i != current]))
                done = change
            trial["change"] = current
            responds = licks and rng.random() < {"go": 0.65, "catch": 0.2,
                                                   "auto_rewarded": 0.8}[kind]
            if responds:
                first = change_frame + round(rng.uniform(0.22, 0.62) * STIMULUS_FRAME_RATE)
                bout = _bout(rng, first, 4, 10)
                lick_frames += bout
                if kind == "go":
                    kind = trial["kind"] = "hit"
                    if rewards:
                        reward_frames.append((first, _TASK_PARAMETERS["reward_volume"], False))
                elif kind == "catch":
                    kind = trial["kind"] = "false_alarm"
            else:
                kind = trial["kind"] = {"go": "miss", "catch": "correct_reject"}.get(kind, kind)
                if kind == "miss" and licks and rng.random() < 0.3:  # late licks
                    lick_frames += _bout(rng, change_frame + int(rng.integers(60, 150)), 1, 3)
            if kind == "auto_rewarded":
                reward_frames.append((change_frame, _TASK_PARAMETERS["auto_reward_volume"], True))
            trial["stop_frame"] = change_frame + 255
        trials.append(trial)
        k = int(np.searchsorted(starts, trial["stop_frame"] + int(rng.integers(10, 40)),
                                side="right"))
    image[done:] = current

    omitted = np.zeros(n_flash, dtype=bool)
    for i in range(2, n_flash):
        if not protected[i] and not omitted[i - 1] and rng.random() < 0.05:
            omitted[i] = True
    out = _trials(trials, stim_ts, starts, names, np.array(sorted(set(lick_frames))),
                  reward_frames)
    out.update(_presentations(stim_ts, starts, image, omitted, names, out, trials, layout,
                              passive=passive))
    return out


def _trials(trials: list[dict[str, Any]], stim_ts: np.ndarray, starts: np.ndarray,
            names: Sequence[str], lick_frames: np.ndarray,
            reward_frames: list[tuple[int, float, bool]]) -> dict[str, Any]:
    """Trials, licks and rewards variables, with the AllenSDK's trial-table rules."""
    n = len(trials)
    start_frame = np.array([t["start_frame"] for t in trials], dtype=np.int64)
    stop_frame = np.array([t["stop_frame"] for t in trials], dtype=np.int64)
    kind = np.array([t["kind"] for t in trials])
    start_time, stop_time = stim_ts[start_frame], stim_ts[stop_frame]
    flags = {k: kind == k for k in ("hit", "miss", "false_alarm", "correct_reject",
                                    "auto_rewarded", "aborted")}
    catch = flags["false_alarm"] | flags["correct_reject"]
    go = flags["hit"] | flags["miss"]
    change_flash = np.array([t["change_flash"] for t in trials])
    has_change = change_flash >= 0
    change_frame = np.where(has_change, starts[np.maximum(change_flash, 0)], INT_NULL)
    change_time = np.where(has_change, stim_ts[np.maximum(change_frame, 0)] + _MONITOR_DELAY,
                           np.nan)
    # each lick belongs to the trial whose start frame precedes it (AllenSDK rule)
    lick_frames = lick_frames.astype(np.int64)
    owner = np.searchsorted(start_frame, lick_frames, side="left") - 1
    counts = np.bincount(owner[owner >= 0], minlength=n).astype(np.int64)
    lick_times = stim_ts[lick_frames[owner >= 0]]
    first_lick = np.full(n, np.nan)
    has_licks = counts > 0
    first_lick[has_licks] = lick_times[(np.cumsum(counts) - counts)[has_licks]]
    aborted = flags["aborted"]
    response_time = np.where(aborted, np.nan, first_lick)
    response_latency = np.where(aborted, np.nan,
                                np.where(counts > 0, first_lick - change_time, np.inf))
    reward_time = np.full(n, np.nan)
    reward_volume = np.zeros(n)
    rewards = np.array([stim_ts[f] for f, _, _ in reward_frames])
    for i in range(n):
        inside = np.flatnonzero((rewards >= start_time[i]) & (rewards <= stop_time[i]))
        if len(inside):
            reward_time[i] = rewards[inside[0]]
            reward_volume[i] = reward_frames[inside[0]][1]
    out: dict[str, Any] = {
        "trials_id": np.arange(n, dtype=np.int64),
        "trials_start_time": start_time,
        "trials_stop_time": stop_time,
        "initial_image_name": np.array([names[t["initial"]] for t in trials], dtype=object),
        "change_image_name": np.array([names[t["change"]] for t in trials], dtype=object),
        "trials_is_change": go | flags["auto_rewarded"],
        "change_time": change_time,
        "go": go,
        "catch": catch,
        "lick_times": lick_times,
        "lick_times_count": counts,
        "response_time": response_time,
        "response_latency": response_latency,
        "reward_time": reward_time,
        "reward_volume": reward_volume,
        **flags,
        "change_frame": change_frame.astype(np.int64),
        "trial_length": stop_time - start_time,
        "licks_timestamps": stim_ts[lick_frames],
        "licks_frame": lick_frames,
        "rewards_timestamps": rewards.astype(np.float64),
        "rewards_volume": np.array([v for _, v, _ in reward_frames], dtype=np.float64),
        "rewards_auto_rewarded": np.array([a for _, _, a in reward_frames], dtype=bool),
    }
    return out


def _presentations(stim_ts: np.ndarray, starts: np.ndarray, image: np.ndarray,
                   omitted: np.ndarray, names: Sequence[str], trials: Mapping[str, Any],
                   trial_list: list[dict[str, Any]], layout: str, *, passive: bool = False
                   ) -> dict[str, Any]:
    """Stimulus presentations as the NWB reader returns them for ``layout``."""
    n = len(starts)
    n_images = len(names)
    delay = _MONITOR_DELAY if layout == "2023" else 0.0  # 2021: no monitor delay
    end_frame = starts + _FLASH_FRAMES
    start_time = stim_ts[starts] + delay
    end_time = np.where(omitted, start_time + 0.25, stim_ts[end_frame] + delay)
    duration = np.where(omitted, 0.25, end_time - start_time)
    if layout == "2021":
        end_frame = np.where(omitted, INT_NULL, end_frame)
    image_name = np.array([("omitted" if o else names[i]) for i, o in zip(image, omitted,
                                                                           strict=True)],
                          dtype=object)
    # changes: first flash of a new image, omitted flashes skipped
    is_change = np.zeros(n, dtype=bool)
    shown = np.flatnonzero(~omitted)
    is_change[shown[1:]] = image[shown[1:]] != image[shown[:-1]]
    since = np.zeros(n, dtype=np.int64)
    for i in range(1, n):
        since[i] = since[i - 1] if omitted[i] else (0 if is_change[i] else since[i - 1] + 1)
    t_start, t_stop = trials["trials_start_time"], trials["trials_stop_time"]
    which = np.searchsorted(t_start, start_time, side="left") - 1
    in_trial = (start_time < t_stop.max()) & (which >= 0)
    trials_id = np.where(in_trial, trials["trials_id"][np.maximum(which, 0)], INT_NULL)
    active = (start_time > t_start.min()) & (start_time < t_stop.max())
    out: dict[str, Any] = {
        "stimulus_presentations_id": np.arange(n, dtype=np.int64),
        "image_index": np.where(omitted, n_images, image).astype(np.int64),
        "image_name": image_name,
        "duration": duration,
        "start_time": start_time,
        "end_time": end_time,
        "start_frame": starts.astype(np.int64),
        "end_frame": end_frame.astype(np.int64),
        "is_change": is_change,
        "omitted": omitted.astype(np.float64),
        "flashes_since_change": since,
        "stimulus_presentations_trials_id": trials_id.astype(np.int64),
    }
    if layout == "2021":
        out["active"] = active
        return out
    sham = [int(starts[t["change_flash"]]) for t in trial_list
            if t["kind"] in ("false_alarm", "correct_reject")]
    out.update({
        "stimulus_block": np.ones(n, dtype=np.int64),
        "stimulus_block_name": np.full(n, _PASSIVE_BLOCK_NAME if passive else _BLOCK_NAME,
                                       dtype=object),
        "movie_frame_index": np.full(n, INT_NULL, dtype=np.int64),
        "is_image_novel": np.where(omitted, np.nan, 0.0),
        "movie_repeat": np.full(n, INT_NULL, dtype=np.int64),
        # one stimulus block: all of it is active when any presentation is
        "active": np.full(n, bool(active.any())),
        "is_sham_change": np.isin(starts, sham),
        "stimulus_name": np.full(n, _STIMULUS_NAME, dtype=object),
    })
    return out


# ---- running, eye tracking, templates -------------------------------------------------


def _running(seed: int, stim_ts: np.ndarray) -> dict[str, Any]:
    from scipy.signal import butter, filtfilt

    rng = _rng(seed, _S_RUNNING)
    n = len(stim_ts)
    speed = np.clip(12.0 + 14.0 * _smooth(rng, n, 0.998), 0.0, None)
    raw = speed + rng.normal(0.0, 2.5, n)
    b, a = butter(3, 4.0, fs=STIMULUS_FRAME_RATE, btype="lowpass")
    filtered = filtfilt(b, a, raw)
    dt = np.diff(stim_ts, prepend=stim_ts[0] - _STIM_PERIOD)
    dtheta = raw * dt / _WHEEL_RADIUS_CM
    dx = np.degrees(dtheta).astype(np.float32)
    levels = np.array([4.88159376, 4.88288361, 4.88417346])
    v_in = levels[rng.choice(3, n, p=[0.2, 0.6, 0.2])]
    v_sig = np.mod(np.cumsum(dtheta) / (2 * np.pi) + rng.uniform(), 1.0) * 4.87 \
        + rng.normal(0.0, 0.002, n)
    return {
        "running_speed": np.asarray(filtered, dtype=np.float64),
        "raw_running_speed": raw,
        "dx": dx.astype(np.float64),
        "v_sig": np.abs(v_sig),
        "v_in": v_in,
    }


def _eye(seed: int, eye_ts: np.ndarray) -> dict[str, Any]:
    rng = _rng(seed, _S_EYE)
    n = len(eye_ts)
    eye_cx = 346.7 + 0.6 * _smooth(rng, n, 0.99)
    eye_cy = 264.0 + 0.6 * _smooth(rng, n, 0.99)
    fit = {
        "eye": {
            "center_x": eye_cx, "center_y": eye_cy,
            "width": 165.0 + 1.5 * _smooth(rng, n, 0.995),
            "height": 143.0 + 1.5 * _smooth(rng, n, 0.995),
            "phi": 0.035 + 0.015 * _smooth(rng, n, 0.99),
        },
        "pupil": {
            "center_x": eye_cx + 2.0 * _smooth(rng, n, 0.99),
            "center_y": eye_cy + 2.0 * _smooth(rng, n, 0.99),
            "width": 46.0 + 4.0 * _smooth(rng, n, 0.999),
            "phi": 0.3 * _smooth(rng, n, 0.95),
        },
        "cr": {
            "width": 7.9 + 0.4 * rng.standard_normal(n),
            "height": 7.9 + 0.4 * rng.standard_normal(n),
            "phi": rng.uniform(-1.5, 1.5, n),
        },
    }
    pupil = fit["pupil"]
    pupil["height"] = 0.95 * pupil["width"] + 0.5 * rng.standard_normal(n)
    fit["cr"]["center_x"] = pupil["center_x"] + 6.0 + 0.3 * rng.standard_normal(n)
    fit["cr"]["center_y"] = pupil["center_y"] - 4.0 + 0.3 * rng.standard_normal(n)
    # blinks: a closed eye (tiny eye area, no pupil fit) or a bad pupil fit (outlier)
    n_blinks = max(2, int(rng.poisson(6.0 * n / 3600.0)))
    for start in rng.choice(max(n - 10, 1), n_blinks, replace=False):
        stop = min(n, int(start) + int(rng.integers(3, 9)))
        if rng.random() < 0.5:
            fit["eye"]["height"][start:stop] *= 0.15
            for key in pupil:
                pupil[key][start:stop] = np.nan
        else:
            pupil["width"][start:stop] *= 4.0
            pupil["height"][start:stop] *= 4.0
    out: dict[str, Any] = {"eye_frame": np.arange(n, dtype=np.int64), "eye_timestamps": eye_ts}
    for part, values in fit.items():
        for key, value in values.items():
            out[f"{part}_{key}"] = value
    out["cr_area_raw"] = np.pi * fit["cr"]["width"] * fit["cr"]["height"]
    out["eye_area_raw"] = np.pi * fit["eye"]["width"] * fit["eye"]["height"]
    out["pupil_area_raw"] = np.pi * np.fmax(pupil["width"], pupil["height"]) ** 2
    out["pupil_area_raw"][np.isnan(pupil["width"])] = np.nan
    return out


def _templates(seed: int, names: Sequence[str], shape: Sequence[int]) -> dict[str, Any]:
    rng = _rng(seed, _S_TEMPLATES)
    n_images = len(names)
    rows, cols = int(shape[0]), int(shape[1])
    y, x = np.meshgrid(np.linspace(-1, 1, rows), np.linspace(-1, 1, cols), indexing="ij")
    visible = (x / 1.05) ** 2 + (y / 0.95) ** 2 <= 1.0
    radius = np.sqrt(x * x + y * y)
    # the monitor warp: sample the image at a radially stretched position
    scale = 1.0 + 0.15 * radius**2
    src_r = np.clip(np.round((y * scale + 1) / 2 * (rows - 1)), 0, rows - 1).astype(int)
    src_c = np.clip(np.round((x * scale + 1) / 2 * (cols - 1)), 0, cols - 1).astype(int)
    unwarped = np.empty((n_images, rows, cols))
    warped = np.empty((n_images, rows, cols), dtype=np.uint8)
    for i in range(n_images):
        image = np.full((rows, cols), 128.0)
        for _ in range(6):
            cy, cx, s = rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0.15, 0.5)
            image += rng.uniform(-90, 90) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s))
        image = np.clip(np.round(image), 0, 255)
        warped[i] = image[src_r, src_c].astype(np.uint8)
        unwarped[i] = np.where(visible, image, np.nan)
    return {
        "template_image_name": np.array(list(names), dtype=object),
        "stimulus_template_warped": warped,
        "stimulus_template_unwarped": unwarped,
    }


def simulate_multiplane_session(n_planes: int = 2, **simulate_kwargs: Any) -> list[xr.Dataset]:
    """The planes of one multiplane (mesoscope) session, one Dataset per imaging plane.

    Every plane is one experiment (``imaging_plane_group`` 0 .. ``n_planes - 1``) of the
    same ophys session: same ids, same behavior; own cells, traces, images and frames.

    Parameters
    ----------
    n_planes
        2 to 8.
    **simulate_kwargs
        Arguments of :func:`simulate_session` (default ``ophys_frame_rate`` 11 Hz, the
        mesoscope's rate per plane).

    Returns
    -------
    list of xarray.Dataset
    """
    n_planes = _options.integer(n_planes, "n_planes", minimum=2)
    simulate_kwargs.setdefault("ophys_frame_rate", 11.0)
    return [simulate_session(imaging_plane_group=group, imaging_plane_group_count=n_planes,
                             **simulate_kwargs) for group in range(n_planes)]


# --------------------------------------------------------------------------------------
# writing simulated sessions


def write_session_nwb(path: str | os.PathLike[str], *, overwrite: bool = False,
                      **simulate_kwargs: Any) -> Path:
    """Simulate a session and write it as an NWB file.

    ``write_session_nwb(path, **kwargs)`` is ``write_nwb(simulate_session(**kwargs), path)``.

    Parameters
    ----------
    path
        The new file.
    overwrite
        Replace an existing file.
    **simulate_kwargs
        Arguments of :func:`simulate_session` (the layout is taken from ``layout``).

    Returns
    -------
    pathlib.Path
        The file.
    """
    return write_nwb(simulate_session(**simulate_kwargs), path, overwrite=overwrite)
