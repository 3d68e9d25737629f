"""The session schema: every variable of the session Dataset, declared once as data.

Each :class:`Spec` names a variable, its dimensions, its dtype, its units, a
description, where it lives in an AllenSDK NWB file and which AllenSDK attribute it
corresponds to.  :func:`ophys_xr.model.create_session_dataset` builds the Dataset from
this table, :func:`validate` checks a Dataset against it, and ``docs/schema.md`` is
rendered from it (``python -m ophys_xr.variables > docs/schema.md``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ophys_xr.backends import layout
from ophys_xr.backends.layout import INT_NULL
from ophys_xr.exceptions import MissingDataError, SchemaError

__all__ = ["CELL_DIM", "DIMS", "IMAGING_DIMS", "INT_NULL", "METADATA_ATTRS", "PRES_DIM",
           "SESSION_KINDS", "SPECS", "TABLE_DIMS", "TRIAL_COLUMNS", "TRIAL_DIM", "Spec",
           "is_imaging", "optional_variables", "render_markdown", "required_variables",
           "validate"]

Role = Literal["coord", "data"]

#: Every dimension of the session Dataset, with its meaning.
DIMS: dict[str, str] = {
    "cell_specimen_id": "ROIs (cells). Index: cell_specimen_id (-1 = not matched across sessions); "
    "`cell_roi_id` also has an index, so `ds.sel(cell_roi_id=...)` selects any ROI.",
    "time": "Two-photon imaging frames; coordinate = ophys timestamps in seconds.",
    "row": "Field-of-view pixel rows (y); attrs `spacing` and `unit` give the pixel size.",
    "column": "Field-of-view pixel columns (x); attrs `spacing` and `unit` give the pixel size.",
    "eye_frame": "Eye-tracking camera frames; `eye_timestamps` holds their times.",
    "stimulus_frame": "Stimulus (monitor vsync) frames, ~60 Hz; `stimulus_timestamps` holds their "
    "times. Running speed and the encoder signals are sampled on this clock.",
    "trials_id": "Behavior trials (rows of the AllenSDK `trials` table).",
    "trials_lick": "All trial lick times, trial after trial (a contiguous ragged array; "
    "`lick_times_count` gives how many belong to each trial).",
    "stimulus_presentations_id": "Stimulus presentations (rows of `stimulus_presentations`).",
    "lick": "Lick events (rows of the AllenSDK `licks` table).",
    "reward": "Rewards delivered (rows of the AllenSDK `rewards` table).",
    "template_image_name": "Stimulus template images, by image name.",
    "template_row": "Rows of the stimulus template images (monitor pixels).",
    "template_column": "Columns of the stimulus template images (monitor pixels).",
}

#: Dimensions of the small tables (cells, trials, presentations, licks, rewards).  Variables
#: along these alone are read when a session is opened, from any source; the others (traces,
#: images, eye tracking, running) stay lazy.
TABLE_DIMS: frozenset[str] = frozenset(
    {"cell_specimen_id", "trials_id", "trials_lick", "stimulus_presentations_id", "lick",
     "reward"}
)


@dataclass(frozen=True)
class Spec:
    """Declaration of one session variable.

    Parameters
    ----------
    name
        Variable name in the Dataset.
    dims
        Dimension names, in order.
    dtype
        numpy dtype string the variable always has (``"O"`` = Python ``str`` objects),
        or ``"numeric"`` for "as stored in the file" (projection images).
    units
        Units (``attrs["units"]``); ``""`` for dimensionless/categorical values.
    description
        One-sentence meaning (``attrs["description"]``).
    allensdk
        The AllenSDK ``BehaviorOphysExperiment`` attribute it corresponds to.
    nwb
        Where it is read from in an AllenSDK NWB file (2023 layout).
    role
        ``"coord"`` for coordinates, ``"data"`` for data variables.
    required
        Whether every ophys session has it.  Optional variables are left out when the
        file lacks them, and their names are listed in ``ds.attrs["ophys_xr_missing"]``.
    nullable_bool
        A boolean with missing values, stored as float64 1.0/0.0/NaN.
    """

    name: str
    dims: tuple[str, ...]
    dtype: str
    units: str
    description: str
    allensdk: str
    nwb: str
    role: Role = "data"
    required: bool = True
    nullable_bool: bool = False
    extra_attrs: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [d for d in self.dims if d not in DIMS]
        if unknown:
            msg = f"Spec {self.name!r} uses unknown dims {unknown}; known dims: {list(DIMS)}"
            raise SchemaError(msg)

    def attrs(self) -> dict[str, object]:
        """The attrs stamped on the variable (netCDF-safe)."""
        out: dict[str, object] = {"description": self.description}
        if self.units:
            out["units"] = self.units
        if self.nullable_bool:
            out["flag_values"] = "1.0 = True, 0.0 = False, NaN = missing"
        out.update(self.extra_attrs)
        return out


_OPHYS = layout.OPHYS
_SEG = layout.SEG
_EYE = layout.EYE
_PRES = f"intervals/*{layout.PRESENTATIONS_SUFFIX}"
_TRIALS = layout.TRIALS

#: Names of the dimensions that code refers to (declared once, here).
CELL_DIM = "cell_specimen_id"
PRES_DIM = "stimulus_presentations_id"
TRIAL_DIM = "trials_id"

CELL = (CELL_DIM,)
TRACE = ("time", CELL_DIM)
IMAGE = ("row", "column")
EYE = ("eye_frame",)
STIM = ("stimulus_frame",)
TRIAL = (TRIAL_DIM,)
PRES = (PRES_DIM,)


def _cell_coord(name: str, dtype: str, units: str, desc: str, *, column: str | None = None
                ) -> Spec:
    return Spec(name, CELL, dtype, units, desc, f"cell_specimen_table.{name}",
                f"{_SEG}/{column or name}", "coord")


def _trace(name: str, desc: str, allensdk: str, nwb: str, *, required: bool = True) -> Spec:
    return Spec(name, TRACE, "f8", "", desc, allensdk, nwb, required=required)


def _eye(name: str, units: str, desc: str, nwb: str) -> Spec:
    return Spec(name, EYE, "f8", units, desc, f"eye_tracking.{name}", f"{_EYE}/{nwb}",
                required=False)


def _pres(name: str, dtype: str, units: str, desc: str, *, nullable_bool: bool = False,
          role: Role = "data", allensdk_col: str | None = None, column: str | None = None,
          required: bool = True) -> Spec:
    """A presentation column: AllenSDK column ``allensdk_col``, stored as ``column``."""
    allensdk_col = allensdk_col or name
    return Spec(name, PRES, dtype, units, desc, f"stimulus_presentations.{allensdk_col}",
                f"{_PRES}/{column or allensdk_col}", role=role, nullable_bool=nullable_bool,
                required=required)


def _trial(name: str, dtype: str, units: str, desc: str, *, col: str | None = None) -> Spec:
    col = col or name
    return Spec(name, TRIAL, dtype, units, desc, f"trials.{col}", f"{_TRIALS}/{col}")


_ALL: list[Spec] = [
    # ---- cells -------------------------------------------------------------------------
    Spec("cell_specimen_id", CELL, "i8", "", "Unified cell id across sessions; -1 where the ROI "
         "was not matched to a cell", "cell_specimen_table.index", f"{_SEG}/cell_specimen_id",
         "coord"),
    _cell_coord("cell_roi_id", "i8", "", "Experiment-specific ROI id", column="id"),
    _cell_coord("valid_roi", "b1", "", "Whether cell classification found the ROI to be a cell"),
    _cell_coord("x", "i8", "pixel", "Column of the top-left corner of the ROI bounding box"),
    _cell_coord("y", "i8", "pixel", "Row of the top-left corner of the ROI bounding box"),
    _cell_coord("width", "i8", "pixel", "Width of the ROI bounding box"),
    _cell_coord("height", "i8", "pixel", "Height of the ROI bounding box"),
    _cell_coord("mask_image_plane", "i8", "", "Mask plane of the ROI (overlapping ROIs are on "
                "different planes)"),
    _cell_coord("max_correction_up", "f8", "pixel", "Max motion correction in up direction"),
    _cell_coord("max_correction_down", "f8", "pixel", "Max motion correction in down direction"),
    _cell_coord("max_correction_left", "f8", "pixel", "Max motion correction in left direction"),
    _cell_coord("max_correction_right", "f8", "pixel", "Max motion correction in right direction"),
    Spec("r", CELL, "f8", "", "Neuropil contamination ratio of the corrected fluorescence",
         "corrected_fluorescence_traces.r", f"{_OPHYS}/corrected_fluorescence/r", required=False),
    Spec("RMSE", CELL, "f8", "", "RMSE of the neuropil subtraction fit",
         "corrected_fluorescence_traces.RMSE", f"{_OPHYS}/corrected_fluorescence/RMSE",
         required=False),
    Spec("lambda", CELL, "f8", "", "Event-detection regularisation value (NaN: ROI has no event "
         "trace)", "events.lambda", f"{_OPHYS}/event_detection/lambdas", required=False),
    Spec("noise_std", CELL, "f8", "", "Noise standard deviation of the events trace (NaN: ROI has "
         "no event trace)", "events.noise_std", f"{_OPHYS}/event_detection/noise_stds",
         required=False),
    # ---- ophys time ---------------------------------------------------------------------
    Spec("time", ("time",), "f8", "s", "Ophys frame timestamps (sync clock)", "ophys_timestamps",
         f"{_OPHYS}/dff/traces/timestamps", "coord"),
    _trace("dff", "ΔF/F of each cell", "dff_traces.dff", f"{_OPHYS}/dff/traces/data"),
    _trace("corrected_fluorescence", "Neuropil-corrected fluorescence (2021 files: the demixed "
           "trace, see the differences from the AllenSDK)",
           "corrected_fluorescence_traces.corrected_fluorescence",
           f"{_OPHYS}/corrected_fluorescence/traces/data"),
    _trace("demixed_trace", "Demixed fluorescence", "demixed_traces.demixed_trace",
           f"{_OPHYS}/demixed_trace/traces/data", required=False),
    _trace("neuropil_trace", "Neuropil fluorescence", "neuropil_traces.neuropil_trace (the "
           "AllenSDK property returns demixed traces)", f"{_OPHYS}/neuropil_trace/traces/data",
           required=False),
    _trace("events", "Detected events (rise times of calcium transients; NaN: ROI has no event "
           "trace)", "events.events", f"{_OPHYS}/event_detection/data", required=False),
    _trace("filtered_events", "Events smoothed with a causal half-normal filter (computed)",
           "events.filtered_events", f"computed from {_OPHYS}/event_detection/data",
           required=False),
    Spec("motion_correction_x", ("time",), "numeric", "pixel",
         "Rigid motion-correction shift along x",
         "motion_correction.x", f"{_OPHYS}/ophys_motion_correction_x/data"),
    Spec("motion_correction_y", ("time",), "numeric", "pixel",
         "Rigid motion-correction shift along y",
         "motion_correction.y", f"{_OPHYS}/ophys_motion_correction_y/data"),
    # ---- field of view ------------------------------------------------------------------
    Spec("row", ("row",), "i8", "pixel", "Pixel row index of the field of view",
         "roi_mask row", f"{_SEG}/image_mask axis 1", "coord"),
    Spec("column", ("column",), "i8", "pixel", "Pixel column index of the field of view",
         "roi_mask column", f"{_SEG}/image_mask axis 2", "coord"),
    Spec("roi_mask", ("cell_specimen_id", "row", "column"), "b1", "", "Boolean mask of each ROI "
         "at its location in the field of view", "cell_specimen_table.roi_mask",
         f"{_SEG}/image_mask"),
    Spec("max_projection", IMAGE, "numeric", "", "Maximum-intensity projection of the motion-"
         "corrected movie (dtype as stored)", "max_projection", f"{_OPHYS}/images/max_projection"),
    Spec("average_projection", IMAGE, "numeric", "", "Average projection of the motion-corrected "
         "movie (dtype as stored)", "average_projection", f"{_OPHYS}/images/average_image"),
    Spec("segmentation_mask_image", IMAGE, "i8", "", "1 where any ROI covers the pixel, else 0 "
         "(the union of roi_mask, as the AllenSDK computes it)", "segmentation_mask_image",
         f"computed from {_SEG}/image_mask"),
    # ---- eye tracking -------------------------------------------------------------------
    Spec("eye_frame", EYE, "i8", "", "Eye-tracking camera frame number", "eye_tracking.index",
         f"{_EYE}/eye_tracking/timestamps", "coord", required=False),
    Spec("eye_timestamps", EYE, "f8", "s", "Eye-tracking frame times (sync clock)",
         "eye_tracking.timestamps", f"{_EYE}/eye_tracking/timestamps", "coord", required=False),
    Spec("likely_blink", EYE, "b1", "", "Frame is likely a blink (outlier or missing area, "
         "dilated)", "eye_tracking.likely_blink", f"computed from {_EYE}/*/area_raw",
         required=False),
    _eye("cr_area", "pixel**2", "Corneal reflection area (NaN at likely blinks)",
         "corneal_reflection_tracking/area_raw"),
    _eye("eye_area", "pixel**2", "Eye (eyelid ellipse) area (NaN at likely blinks)",
         "eye_tracking/area_raw"),
    _eye("pupil_area", "pixel**2", "Pupil area (NaN at likely blinks)",
         "pupil_tracking/area_raw"),
    _eye("cr_area_raw", "pixel**2", "Corneal reflection area, not blink-filtered",
         "corneal_reflection_tracking/area_raw"),
    _eye("eye_area_raw", "pixel**2", "Eye area, not blink-filtered", "eye_tracking/area_raw"),
    _eye("pupil_area_raw", "pixel**2", "Pupil area, not blink-filtered",
         "pupil_tracking/area_raw"),
]
for _part, _nwb in (("cr", "corneal_reflection_tracking"), ("eye", "eye_tracking"),
                    ("pupil", "pupil_tracking")):
    _label = {"cr": "Corneal reflection", "eye": "Eye", "pupil": "Pupil"}[_part]
    _masked = "" if _part == "cr" else " (NaN at likely blinks)"
    _ALL += [
        _eye(f"{_part}_center_x", "pixel", f"{_label} ellipse centre x", f"{_nwb}/data[:, 0]"),
        _eye(f"{_part}_center_y", "pixel", f"{_label} ellipse centre y", f"{_nwb}/data[:, 1]"),
        _eye(f"{_part}_width", "pixel", f"{_label} ellipse width{_masked}", f"{_nwb}/width"),
        _eye(f"{_part}_height", "pixel", f"{_label} ellipse height{_masked}", f"{_nwb}/height"),
        _eye(f"{_part}_phi", "radian", f"{_label} ellipse angle{_masked}", f"{_nwb}/angle"),
    ]

_ALL += [
    # ---- stimulus clock: timestamps and running -----------------------------------------
    Spec("stimulus_frame", STIM, "i8", "", "Stimulus frame number", "stimulus_timestamps index",
         "processing/stimulus/timestamps", "coord"),
    Spec("stimulus_timestamps", STIM, "f8", "s", "Stimulus (vsync) frame times, without monitor "
         "delay", "stimulus_timestamps", "processing/stimulus/timestamps/timestamps", "coord"),
    Spec("running_speed", STIM, "f8", "cm/s", "Running speed, low-pass filtered",
         "running_speed.speed", "processing/running/speed/data"),
    Spec("raw_running_speed", STIM, "f8", "cm/s", "Running speed, not filtered",
         "raw_running_speed.speed", "processing/running/speed_unfiltered/data", required=False),
    Spec("dx", STIM, "f8", "", "Running wheel angular change logged during collection",
         "running_data_df.dx", "processing/running/dx/data", required=False),
    Spec("v_sig", STIM, "f8", "V", "Running wheel encoder voltage", "running_data_df.v_sig",
         "acquisition/v_sig/data", required=False),
    Spec("v_in", STIM, "f8", "V", "Running wheel encoder supply voltage", "running_data_df.v_in",
         "acquisition/v_in/data", required=False),
    # ---- licks and rewards --------------------------------------------------------------
    Spec("licks_timestamps", ("lick",), "f8", "s", "Lick times", "licks.timestamps",
         "processing/licking/licks/timestamps", "coord"),
    Spec("licks_frame", ("lick",), "i8", "", "Stimulus frame of each lick", "licks.frame",
         "processing/licking/licks/data"),
    Spec("rewards_timestamps", ("reward",), "f8", "s", "Reward times", "rewards.timestamps",
         "processing/rewards/autorewarded/timestamps", "coord"),
    Spec("rewards_volume", ("reward",), "f8", "mL", "Reward volume", "rewards.volume",
         "processing/rewards/volume/data"),
    Spec("rewards_auto_rewarded", ("reward",), "b1", "", "Reward was given automatically",
         "rewards.auto_rewarded", "processing/rewards/autorewarded/data"),
    # ---- trials -------------------------------------------------------------------------
    Spec("trials_id", TRIAL, "i8", "", "Trial number", "trials.index", f"{_TRIALS}/id", "coord"),
    _trial("trials_start_time", "f8", "s", "Trial start time", col="start_time"),
    _trial("trials_stop_time", "f8", "s", "Trial stop time", col="stop_time"),
    _trial("initial_image_name", "O", "", "Image shown at the start of the trial"),
    _trial("change_image_name", "O", "", "Image after the (sham) change"),
    _trial("trials_is_change", "b1", "", "A real image change happened in the trial",
           col="is_change"),
    _trial("change_time", "f8", "s", "Time of the (sham) change, with monitor delay"),
    _trial("go", "b1", "", "Go trial"),
    _trial("catch", "b1", "", "Catch trial"),
    Spec("lick_times", ("trials_lick",), "f8", "s", "Lick times of each trial, concatenated "
         "(see lick_times_count)", "trials.lick_times", f"{_TRIALS}/lick_times"),
    Spec("lick_times_trials_id", ("trials_lick",), "i8", "", "Trial of each lick_times entry",
         "trials.index (repeated per lick)", f"{_TRIALS}/lick_times_index", "coord"),
    Spec("lick_times_count", TRIAL, "i8", "", "Number of lick_times entries of each trial",
         "len(trials.lick_times)", f"{_TRIALS}/lick_times_index",
         extra_attrs={"sample_dimension": "trials_lick"}),
    _trial("response_time", "f8", "s", "Time of the first lick of the trial"),
    _trial("response_latency", "f8", "s", "First lick time minus change time (inf: no lick)"),
    _trial("reward_time", "f8", "s", "Reward time in the trial (NaN: none)"),
    _trial("reward_volume", "f8", "mL", "Reward volume delivered in the trial"),
    _trial("hit", "b1", "", "Hit trial"),
    _trial("false_alarm", "b1", "", "False-alarm trial"),
    _trial("miss", "b1", "", "Miss trial"),
    _trial("correct_reject", "b1", "", "Correct-reject trial"),
    _trial("aborted", "b1", "", "Aborted trial"),
    _trial("auto_rewarded", "b1", "", "Auto-rewarded trial"),
    _trial("change_frame", "i8", "", "Stimulus frame of the (sham) change; -99: none"),
    _trial("trial_length", "f8", "s", "Trial duration"),
    # ---- stimulus presentations ---------------------------------------------------------
    Spec("stimulus_presentations_id", PRES, "i8", "", "Presentation number",
         "stimulus_presentations.index", f"{_PRES} (sorted by start_time)", "coord"),
    _pres("stimulus_block", "i8", "", "Index of contiguous presentations of one stimulus type",
          required=False),
    _pres("stimulus_block_name", "O", "", "Name of the stimulus block", required=False),
    _pres("image_index", "i8", "", "Index of the image in the image set; -99: none"),
    _pres("image_name", "O", "", "Image name (omitted flashes: 'omitted'; '' for non-image rows)"),
    _pres("movie_frame_index", "i8", "", "Movie frame index; -99: not a movie frame",
          required=False),
    _pres("duration", "f8", "s", "Presentation duration"),
    _pres("start_time", "f8", "s", "Presentation start time (with monitor delay)"),
    _pres("end_time", "f8", "s", "Presentation end time (with monitor delay)",
          column="stop_time"),
    _pres("start_frame", "i8", "", "Stimulus frame at the start"),
    _pres("end_frame", "i8", "", "Stimulus frame at the end"),
    _pres("is_change", "b1", "", "First presentation of a new image (recomputed)"),
    _pres("is_image_novel", "f8", "", "Image is novel to the mouse", nullable_bool=True,
          required=False),
    _pres("omitted", "f8", "", "Flash was omitted", nullable_bool=True),
    _pres("movie_repeat", "i8", "", "Movie repeat number; -99: not a movie frame", required=False),
    _pres("flashes_since_change", "i8", "", "Flashes since the last change (recomputed)"),
    _pres("stimulus_presentations_trials_id", "i8", "", "Trial the presentation belongs to; "
          "-99: none", allensdk_col="trials_id"),
    _pres("active", "b1", "", "Presentation during the active behavior block"),
    _pres("is_sham_change", "b1", "", "Presentation at a catch trial's sham change",
          required=False),
    _pres("stimulus_name", "O", "", "Name of the stimulus", required=False),
    # ---- stimulus templates -------------------------------------------------------------
    Spec("template_image_name", ("template_image_name",), "O", "", "Template image name",
         "stimulus_templates.index", "stimulus/templates/*/control_description", "coord",
         required=False),
    Spec("stimulus_template_warped", ("template_image_name", "template_row", "template_column"),
         "u1", "", "Template images as shown on the monitor (warped)", "stimulus_templates.warped",
         "stimulus/templates/*/data", required=False),
    Spec("stimulus_template_unwarped", ("template_image_name", "template_row", "template_column"),
         "f8", "", "Template images before warping (NaN: not visible after warping)",
         "stimulus_templates.unwarped", "stimulus/templates/*/unwarped", required=False),
]

#: Every variable of the session Dataset, by name.
SPECS: dict[str, Spec] = {s.name: s for s in _ALL}
if len(SPECS) != len(_ALL):  # pragma: no cover - guards the table above
    raise SchemaError("duplicate variable names in the schema")

#: The AllenSDK ``trials`` table: (column, Dataset variable), in AllenSDK 2.16.2 column order
#: (which is also the order of the columns in the NWB file).
TRIAL_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (s.allensdk.removeprefix("trials."), s.name) for s in SPECS.values()
    if s.allensdk.startswith("trials.") and s.allensdk[7:].isidentifier()
    and s.allensdk != "trials.index"
)

#: Session attributes: name -> (type, meaning).  The AllenSDK ``metadata`` keys come first.
METADATA_ATTRS: dict[str, tuple[str, str]] = {
    "equipment_name": ("str", "Rig name, e.g. CAM2P.5 or MESO.1"),
    "sex": ("str", "Sex of the mouse"),
    "age_in_days": ("int", "Age of the mouse in days"),
    "stimulus_frame_rate": ("float", "Stimulus monitor frame rate, Hz"),
    "session_type": ("str", "Session type, e.g. OPHYS_1_images_A"),
    "date_of_acquisition": ("str", "ISO-8601 date and time of acquisition, with UTC offset"),
    "reporter_line": ("str", "Reporter line"),
    "cre_line": ("str", "Cre line (parsed from the genotype)"),
    "behavior_session_uuid": ("str", "UUID of the behavior session"),
    "driver_line": ("list of str", "Driver lines, sorted"),
    "mouse_id": ("str", "LabTracks id of the mouse"),
    "project_code": ("str", "Project code, e.g. VisualBehavior"),
    "full_genotype": ("str", "Full genotype"),
    "behavior_session_id": ("int", "Behavior session id"),
    "indicator": ("str", "Calcium indicator (parsed from the reporter line)"),
    "emission_lambda": ("float", "Emission wavelength, nm"),
    "excitation_lambda": ("float", "Excitation wavelength, nm"),
    "ophys_container_id": ("int", "Container id (2021 files: experiment_container_id)"),
    "field_of_view_height": ("int", "Field of view height, pixels"),
    "field_of_view_width": ("int", "Field of view width, pixels"),
    "imaging_depth": ("int", "Imaging depth, µm"),
    "targeted_imaging_depth": ("int", "Targeted imaging depth of the container, µm"),
    "imaging_plane_group": ("int", "Mesoscope plane group (absent if not multiplane)"),
    "imaging_plane_group_count": ("int", "Number of plane groups (0 if not multiplane)"),
    "ophys_experiment_id": ("int", "Ophys experiment id"),
    "ophys_frame_rate": ("float", "Imaging frame rate, Hz"),
    "ophys_session_id": ("int", "Ophys session id"),
    "targeted_structure": ("str", "Targeted brain structure, e.g. VISp"),
    "task_parameters": ("str (JSON)", "The AllenSDK task_parameters dict, as JSON"),
    "eye_tracking_rig_geometry": ("str (JSON)", "Eye-tracking rig geometry dict, as JSON"),
    "stimulus_templates_image_set": ("str", "Name of the stimulus template image set"),
    "pixel_spacing": ("list of float", "Pixel size (column, row) of the field of view"),
    "pixel_spacing_unit": ("str", "Unit of pixel_spacing (mm)"),
    "nwb_layout": ("str", "AllenSDK NWB file generation: '2023' or '2021'"),
    "session_kind": ("str", "'behavior_ophys' (imaging experiment) or 'behavior' (no imaging)"),
    "ophys_xr_missing": ("str", "Space-separated optional variables the source did not have"),
    "events_filter_scale_seconds": ("float", "Scale of the half-normal filter of filtered_events"),
    "events_filter_n_time_steps": ("int", "Length of the filter of filtered_events, frames"),
    "eye_tracking_z_threshold": ("float", "z-score threshold used for likely_blink"),
    "eye_tracking_dilation_frames": ("int", "Dilation (frames) used for likely_blink"),
}

#: The kinds of session file: ``ds.attrs["session_kind"]``.  A behavior session (AllenSDK
#: ``BehaviorSession``, ``behavior_session_*.nwb``) has no imaging: none of the
#: :data:`IMAGING_DIMS` variables.
SESSION_KINDS: dict[str, str] = {
    "behavior_ophys": "An imaging experiment with its behavior (behavior_ophys_experiment_*.nwb)",
    "behavior": "A behavior session without imaging (behavior_session_*.nwb)",
}
#: Dimensions that only imaging sessions have.
IMAGING_DIMS: frozenset[str] = frozenset({"cell_specimen_id", "time", "row", "column"})


def is_imaging(name: str) -> bool:
    """Whether variable ``name`` exists only in imaging (``behavior_ophys``) sessions."""
    return bool(IMAGING_DIMS.intersection(SPECS[name].dims))


def _of_kind(kind: str, *, required: bool) -> list[str]:
    return [n for n, s in SPECS.items()
            if s.required == required and (kind == "behavior_ophys" or not is_imaging(n))]


def required_variables(kind: str) -> list[str]:
    """The variables every session of ``kind`` (:data:`SESSION_KINDS`) has."""
    return _of_kind(kind, required=True)


def optional_variables(kind: str) -> list[str]:
    """The variables a session of ``kind`` may lack (listed in ``ophys_xr_missing``)."""
    return _of_kind(kind, required=False)


#: Variables that belong together: present or absent as a group.
GROUPS: dict[str, tuple[str, ...]] = {
    "eye_tracking": tuple(n for n, s in SPECS.items() if s.dims == EYE),
    "stimulus_templates": ("template_image_name", "stimulus_template_warped",
                           "stimulus_template_unwarped"),
    "events": ("events", "filtered_events", "lambda", "noise_std"),
}


def dtype_ok(spec: Spec, dtype: np.dtype) -> bool:
    """Whether ``dtype`` is allowed for ``spec``."""
    if spec.dtype == "numeric":
        return dtype.kind in "uif"
    if spec.dtype == "O":
        return dtype.kind in "OUT"
    return dtype == np.dtype(spec.dtype)


def validate(ds: object, names: Iterable[str] | str, *, purpose: str = "") -> None:
    """Check that ``ds`` has the variables ``names`` with the schema's dims and dtypes.

    Parameters
    ----------
    ds
        A session Dataset.
    names
        Variable names that must be present.
    purpose
        What the caller needs them for, used in the error message.

    Raises
    ------
    MissingDataError
        A variable is missing; the message lists what the Dataset has.
    SchemaError
        A variable has the wrong dims or dtype.
    """
    import xarray as xr

    if not isinstance(ds, xr.Dataset):
        msg = f"expected an xarray.Dataset, got {type(ds).__name__}"
        raise TypeError(msg)
    if isinstance(names, str):
        names = [names]
    for name in names:
        if name not in ds.variables:
            missing = str(ds.attrs.get("ophys_xr_missing", "")).split()
            why = (
                " The source file has no such data (see ds.attrs['ophys_xr_missing'])."
                if name in missing
                else ""
            )
            spec = SPECS.get(name)
            where = f" It is read from NWB path {spec.nwb!r}." if spec else ""
            need = f" {purpose} needs it." if purpose else ""
            msg = (
                f"No variable {name!r} in the session Dataset.{need}{why}{where} "
                f"Variables present: {sorted(map(str, ds.data_vars))}"
            )
            raise MissingDataError(msg)
        spec = SPECS.get(name)
        if spec is None:
            continue
        var = ds.variables[name]
        if var.dims != spec.dims:
            msg = f"variable {name!r} has dims {var.dims}, the schema expects {spec.dims}"
            raise SchemaError(msg)
        if not dtype_ok(spec, var.dtype):
            msg = f"variable {name!r} has dtype {var.dtype}, the schema expects {spec.dtype}"
            raise SchemaError(msg)


def render_markdown() -> str:
    """Render the schema as the Markdown page ``docs/schema.md``."""
    lines = [
        "# The session Dataset schema",
        "",
        "Generated from `ophys_xr/variables.py` by `python -m ophys_xr.variables`; do not edit.",
        "",
        "## Dimensions",
        "",
        "| dimension | meaning |",
        "|---|---|",
    ]
    lines += [f"| `{d}` | {m} |" for d, m in DIMS.items()]
    lines += [
        "",
        "Variables along only " + ", ".join(f"`{d}`" for d in DIMS if d in TABLE_DIMS)
        + " (the tables) are read when a session is opened, from an NWB file or a store; "
        "all others are lazy (dask).",
    ]
    lines += [
        "",
        "## Session kinds (`ds.attrs['session_kind']`)",
        "",
        "| kind | what it is |",
        "|---|---|",
    ]
    lines += [f"| `{k}` | {m} |" for k, m in SESSION_KINDS.items()]
    lines += [
        "",
        "A `behavior` session has none of the variables along "
        + ", ".join(f"`{d}`" for d in DIMS if d in IMAGING_DIMS)
        + "; it has every other variable (required = yes) of the table below.",
        "",
        "## Variables",
        "",
        (
            "Optional variables (required = no) are left out when the file lacks them and are "
            "then listed in `ds.attrs['ophys_xr_missing']`."
        ),
        "",
        "| name | kind | dims | dtype | units | required | AllenSDK | NWB path | description |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in SPECS.values():
        dtype = "str" if s.dtype == "O" else s.dtype
        if s.nullable_bool:
            dtype += " (nullable bool)"
        lines.append(
            f"| `{s.name}` | {s.role} | ({', '.join(s.dims)}) | {dtype} | {s.units} | "
            f"{'yes' if s.required else 'no'} | `{s.allensdk}` | `{s.nwb}` | {s.description} |"
        )
    lines += [
        "",
        "## Session attributes (`ds.attrs`)",
        "",
        (
            "All netCDF-safe (str, int, float, list of str). Keys of the AllenSDK `metadata` "
            "dict whose value is None are left out."
        ),
        "",
        "| attribute | type | meaning |",
        "|---|---|---|",
    ]
    lines += [f"| `{k}` | {t} | {d} |" for k, (t, d) in METADATA_ATTRS.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(render_markdown(), end="")


#: Index dimensions whose labels must be unique (``-1``, "no cell specimen id", may repeat).
UNIQUE_LABELS = ("cell_specimen_id", "cell_roi_id", "trials_id", "stimulus_presentations_id")


def check_time_labels(time: np.ndarray) -> None:
    """Refuse ophys timestamps that are not finite and strictly increasing
    (``sel(time=slice(...))`` relies on them); :class:`SchemaError` says where."""
    time = np.asarray(time, dtype=np.float64)
    if time.size and not np.isfinite(time).all():
        bad = np.flatnonzero(~np.isfinite(time))
        msg = (f"the ophys timestamps (time) hold {bad.size} NaN or infinite values "
               f"(first at frame {int(bad[0])})")
        raise SchemaError(msg)
    steps = np.diff(time)
    if (steps <= 0).any():
        bad = np.flatnonzero(steps <= 0)
        msg = (f"the ophys timestamps (time) are not strictly increasing: {bad.size} "
               f"frames go back or repeat (first at frame {int(bad[0]) + 1}: "
               f"{float(time[bad[0]])} s then {float(time[bad[0] + 1])} s)")
        raise SchemaError(msg)


def check_unique_labels(name: str, ids: np.ndarray) -> None:
    """Refuse duplicate ids of an index dimension (a duplicate makes ``sel`` return two
    rows for one id); ``-1`` may repeat in ``cell_specimen_id`` (ROIs without one)."""
    ids = np.asarray(ids)
    if name == "cell_specimen_id":
        ids = ids[ids != -1]
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = unique[counts > 1]
        msg = (f"{name} holds {dup.size} duplicate ids ({dup[:5].tolist()}"
               f"{' ...' if dup.size > 5 else ''}); each must label one row")
        raise SchemaError(msg)


__all__ += ["UNIQUE_LABELS", "check_time_labels", "check_unique_labels"]
