"""The AllenSDK NWB file layouts, as data: written once, read by the reader and the writer.

Every path, column name, rename and null encoding of a Visual Behavior Ophys NWB file is
declared here, per file generation, together with the detection of the generation.  The
reader (:mod:`ophys_xr.backends.nwb`), its inverse the writer
(:mod:`ophys_xr.backends.nwb_writer`), the metadata reader of the catalog and the schema
(:mod:`ophys_xr.variables`, whose ``nwb`` paths a test checks against this table) all read
it, so a new file generation is one new :class:`Layout` entry.

Generations (named after the year of their public release):

``"2023"``
    AllenSDK 2.16 (VBO release v1.1.0): ``ophys_container_id``, demixed and neuropil
    traces, the neuropil fit (``r``, ``RMSE``), trials ``is_change`` and integer
    ``change_frame`` (-99 = none), one presentations table per ``stimulus_name``, nullable
    booleans stored as float 1/0/NaN.
``"2021"``
    AllenSDK 2.10-2.13 (VBO v0.2.0-v1.0.1): ``experiment_container_id``, only ΔF/F,
    corrected fluorescence and events, trials ``stimulus_change`` and float
    ``change_frame`` (NaN = none), float ``end_frame`` (NaN for omitted flashes, a column
    absent from their table), boolean ``omitted``, presentations grouped by ``image_name``
    (one table per image plus ``omitted_presentations``) or, where the writer had the
    column, by ``stimulus_name``.
``"2019"``
    AllenSDK <= 2.3 (``processing/two_photon_imaging``): refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ophys_xr.exceptions import NotAnOphysSessionError, NotNwbFileError, UnsupportedLayoutError

__all__ = [
    "CELL_COLUMNS",
    "EYE",
    "EYE_PARTS",
    "IMAGES",
    "INT_NULL",
    "LAYOUTS",
    "LICKS",
    "METADATA",
    "OPHYS",
    "OPHYS_METADATA_KEYS",
    "PLANE",
    "PRESENTATION_DROP",
    "PRESENTATION_INT_NULL",
    "PRESENTATION_RENAME",
    "PRESENTATION_SKIP",
    "REWARDS",
    "RIG",
    "RUNNING_SERIES",
    "SEG",
    "STIMULUS_TIMESTAMPS",
    "SUBJECT",
    "TASK",
    "TEMPLATES",
    "TRACE_SERIES",
    "TRIALS",
    "TRIAL_STORED",
    "Layout",
    "detect",
    "paths",
    "session_kind",
]

#: The integer null of the AllenSDK tables (``INT_NULL`` of ``allensdk/core/dataframe_utils``).
INT_NULL = -99

# ---- paths shared by every generation that ophys_xr reads --------------------------------

OPHYS = "processing/ophys"
SEG = f"{OPHYS}/image_segmentation/cell_specimen_table"
IMAGES = f"{OPHYS}/images"
EYE = "acquisition/EyeTracking"
METADATA = "general/metadata"
SUBJECT = "general/subject"
PLANE = "general/optophysiology/imaging_plane_1"
TASK = "general/task_parameters"
RIG = "processing/eye_tracking_rig_metadata/eye_tracking_rig_metadata"
STIMULUS_TIMESTAMPS = "processing/stimulus/timestamps"
LICKS = "processing/licking/licks"
REWARDS = "processing/rewards"
TRIALS = "intervals/trials"
TEMPLATES = "stimulus/templates"
#: Presentation tables are ``intervals/<name><PRESENTATIONS_SUFFIX>``.
PRESENTATIONS_SUFFIX = "_presentations"

#: Trace series: variable -> (NWB container type, group of the series).  The ROI response
#: series of a container is ``<group>/traces``; events are their own series.
TRACE_SERIES: dict[str, tuple[str, str]] = {
    "dff": ("DfOverF", f"{OPHYS}/dff"),
    "corrected_fluorescence": ("Fluorescence", f"{OPHYS}/corrected_fluorescence"),
    "demixed_trace": ("Fluorescence", f"{OPHYS}/demixed_trace"),
    "neuropil_trace": ("Fluorescence", f"{OPHYS}/neuropil_trace"),
}
#: The event-detection series (data, lambdas, noise_stds, rois, timestamps).
EVENTS = f"{OPHYS}/event_detection"
#: Per-ROI fit of the neuropil subtraction: variable -> series.
FIT_SERIES: dict[str, str] = {
    "r": f"{OPHYS}/corrected_fluorescence/r",
    "RMSE": f"{OPHYS}/corrected_fluorescence/RMSE",
}
#: Event-detection per-ROI values: variable -> dataset name in :data:`EVENTS`.
EVENT_VALUES: dict[str, str] = {"lambda": "lambdas", "noise_std": "noise_stds"}
MOTION_SERIES: dict[str, str] = {
    "motion_correction_x": f"{OPHYS}/ophys_motion_correction_x",
    "motion_correction_y": f"{OPHYS}/ophys_motion_correction_y",
}
#: Projection images: variable -> dataset name in :data:`IMAGES`.
IMAGE_DATASETS: dict[str, str] = {
    "average_projection": "average_image",
    "max_projection": "max_projection",
    "segmentation_mask_image": "segmentation_mask_image",
}
#: Columns of the cell specimen table (besides ``id`` and ``image_mask``), with the
#: descriptions the AllenSDK writes.
CELL_COLUMNS: dict[str, str] = {
    "cell_specimen_id": "Unified id of segmented cell across experiments (after cell matching)",
    "height": "Height of ROI in pixels",
    "mask_image_plane": "Which image plane an ROI resides on. Overlapping ROIs are stored on "
                        "different mask image planes.",
    "max_correction_down": "Max motion correction in down direction in pixels",
    "max_correction_left": "Max motion correction in left direction in pixels",
    "max_correction_right": "Max motion correction in right direction in pixels",
    "max_correction_up": "Max motion correction in up direction in pixels",
    "valid_roi": "Indicates if cell classification found the ROI to be a cell or not",
    "width": "Width of ROI in pixels",
    "x": "x position of ROI in Image Plane in pixels (top left corner)",
    "y": "y position of ROI in Image Plane in pixels (top left corner)",
}
#: Series on the stimulus clock: variable -> series (``<series>/data``).
RUNNING_SERIES: dict[str, str] = {
    "running_speed": "processing/running/speed",
    "raw_running_speed": "processing/running/speed_unfiltered",
    "dx": "processing/running/dx",
    "v_sig": "acquisition/v_sig",
    "v_in": "acquisition/v_in",
}
#: Eye-tracking ellipse series: variable prefix -> series in :data:`EYE`.
EYE_PARTS: dict[str, str] = {
    "cr": "corneal_reflection_tracking",
    "eye": "eye_tracking",
    "pupil": "pupil_tracking",
}
#: Eye-tracking fields: variable suffix -> (dataset in the series, column of ``data``).
EYE_FIELDS: dict[str, tuple[str, int | None]] = {
    "area_raw": ("area_raw", None),
    "center_x": ("data", 0),
    "center_y": ("data", 1),
    "width": ("width", None),
    "height": ("height", None),
    "phi": ("angle", None),
}
#: The eye-tracking timestamps (the other ellipse series link to them).
EYE_TIMESTAMPS = f"{EYE}/eye_tracking/timestamps"
LIKELY_BLINK = f"{EYE}/likely_blink"

# ---- table columns --------------------------------------------------------------------

#: pynwb bookkeeping columns of a presentations table, not read.
PRESENTATION_SKIP = frozenset({"tags", "tags_index", "timeseries", "timeseries_index", "id"})
#: Presentation columns the AllenSDK drops on read (``image_set``, the 2021 ``index``).
PRESENTATION_DROP = frozenset({"image_set", "index"})
#: Stored presentation column -> Dataset variable, where they differ.
PRESENTATION_RENAME: dict[str, str] = {
    "stop_time": "end_time",
    "trials_id": "stimulus_presentations_trials_id",
}
#: Integer presentation columns whose null is :data:`INT_NULL` (a table without the column
#: gets -99 there when the tables are concatenated).
PRESENTATION_INT_NULL = frozenset({
    "flashes_since_change", "image_index", "movie_repeat", "movie_frame_index",
    "stimulus_presentations_trials_id", "start_frame", "end_frame", "stimulus_block",
})
#: Stored trial column -> Dataset variable, where they differ (every generation).
TRIAL_RENAME: dict[str, str] = {
    "start_time": "trials_start_time",
    "stop_time": "trials_stop_time",
    "is_change": "trials_is_change",
    "stimulus_change": "trials_is_change",
}
#: Stored trial columns in file order (2023 names; see :attr:`Layout.trial_is_change`).
TRIAL_STORED: tuple[str, ...] = (
    "start_time", "stop_time", "initial_image_name", "change_image_name", "is_change",
    "change_time", "go", "catch", "lick_times", "response_time", "response_latency",
    "reward_time", "reward_volume", "hit", "false_alarm", "miss", "correct_reject", "aborted",
    "auto_rewarded", "change_frame", "trial_length",
)
#: Trial columns the AllenSDK drops on read.
TRIAL_DROP = frozenset({"id", "lick_times", "lick_events"})

Encoding = Literal["int", "float-nan"]


@dataclass(frozen=True)
class Layout:
    """What one AllenSDK NWB file generation stores, and how.

    Parameters
    ----------
    name
        The generation (``ds.attrs["nwb_layout"]``).
    container_id_key
        Name of the container id in ``general/metadata``.
    metadata_keys
        ``general/metadata`` attributes this generation writes besides those of every
        generation (``ophys_container_id`` apart).
    task_stimulus_name
        Whether ``general/task_parameters`` has ``stimulus_name``.
    traces
        Trace variables stored (their series in :data:`TRACE_SERIES`).
    stores_fit
        Whether the neuropil fit (``r``, ``RMSE``) is stored.
    trial_is_change
        Stored name of the trials' ``is_change`` column.
    change_frame
        Encoding of the trials' ``change_frame`` null: ``"int"`` (-99) or ``"float-nan"``.
    end_frame
        Encoding of the presentations' ``end_frame`` null (omitted flashes).
    float_bools
        Presentation booleans stored as float 1/0 (NaN where missing).
    presentation_groupings
        Columns the writer grouped the presentation tables by (one table per value); the
        first is what the AllenSDK of this generation writes.
    presentation_columns
        Presentation columns in file order: (stored column, Dataset variable or None for
        the columns the reader drops).
    """

    name: str
    container_id_key: str
    metadata_keys: tuple[str, ...]
    task_stimulus_name: bool
    traces: tuple[str, ...]
    stores_fit: bool
    trial_is_change: str
    change_frame: Encoding
    end_frame: Encoding
    float_bools: frozenset[str]
    presentation_groupings: tuple[str, ...]
    presentation_columns: tuple[tuple[str, str | None], ...]

    def trial_column(self, variable: str, column: str) -> str:
        """The stored trial column of a Dataset variable (``column`` = AllenSDK name)."""
        return self.trial_is_change if variable == "trials_is_change" else column


LAYOUTS: dict[str, Layout] = {
    "2023": Layout(
        name="2023",
        container_id_key="ophys_container_id",
        metadata_keys=("project_code", "targeted_imaging_depth"),
        task_stimulus_name=True,
        traces=("dff", "corrected_fluorescence", "demixed_trace", "neuropil_trace"),
        stores_fit=True,
        trial_is_change="is_change",
        change_frame="int",
        end_frame="int",
        float_bools=frozenset({"is_change", "is_image_novel", "omitted"}),
        presentation_groupings=("stimulus_name",),
        presentation_columns=(
            ("start_time", "start_time"), ("stop_time", "end_time"),
            ("stimulus_block", "stimulus_block"), ("stimulus_block_name", "stimulus_block_name"),
            ("image_index", "image_index"), ("image_name", "image_name"),
            ("movie_frame_index", "movie_frame_index"), ("duration", "duration"),
            ("start_frame", "start_frame"), ("end_frame", "end_frame"),
            ("is_change", "is_change"), ("is_image_novel", "is_image_novel"),
            ("omitted", "omitted"), ("movie_repeat", "movie_repeat"),
            ("flashes_since_change", "flashes_since_change"),
            ("trials_id", "stimulus_presentations_trials_id"), ("image_set", None),
            ("active", "active"), ("is_sham_change", "is_sham_change"),
            ("stimulus_name", "stimulus_name"),
        ),
    ),
    "2021": Layout(
        name="2021",
        container_id_key="experiment_container_id",
        metadata_keys=(),
        task_stimulus_name=False,
        traces=("dff", "corrected_fluorescence"),
        stores_fit=False,
        trial_is_change="stimulus_change",
        change_frame="float-nan",
        end_frame="float-nan",
        float_bools=frozenset(),
        presentation_groupings=("image_name", "stimulus_name"),
        presentation_columns=(
            ("start_time", "start_time"), ("stop_time", "end_time"), ("duration", "duration"),
            ("end_frame", "end_frame"), ("image_index", "image_index"),
            ("image_name", "image_name"), ("image_set", None), ("index", None),
            ("is_change", "is_change"), ("omitted", "omitted"), ("start_frame", "start_frame"),
            ("stimulus_name", "stimulus_name"),
        ),
    ),
}

#: Generations ophys_xr refuses: name -> (the group that marks them, what to do instead).
REFUSED: dict[str, tuple[str, str]] = {
    "2019": (
        "processing/two_photon_imaging",
        (
            "is in the 2019 AllenSDK layout (AllenSDK <= 2.3, processing/two_photon_imaging), "
            "which ophys_xr does not read. Download the released Visual Behavior Ophys file "
            "of this experiment (2021 or 2023 layout)."
        ),
    ),
}


def detect(f: Any, path: str = "<file>") -> Layout:
    """The generation of an open h5py file.

    A ``general/metadata`` with ``ophys_container_id``, ``project_code`` or
    ``targeted_imaging_depth``, or trials with an ``is_change`` column (not
    ``stimulus_change``), is 2023; any other NWB file is read as 2021.

    Raises
    ------
    NotNwbFileError
        An HDF5 file that is not NWB.
    UnsupportedLayoutError
        A refused generation (:data:`REFUSED`).
    """
    if "nwb_version" not in f.attrs and "general" not in f:
        msg = (
            f"{path!r} is an HDF5 file but not an NWB file (no 'nwb_version' attribute, no "
            "'general' group). Pass an AllenSDK behavior_ophys_experiment_*.nwb file."
        )
        raise NotNwbFileError(msg)
    for marker, what in REFUSED.values():
        if marker in f:
            msg = f"{path!r} {what}"
            raise UnsupportedLayoutError(msg)
    meta = f[METADATA].attrs if METADATA in f else {}
    new = LAYOUTS["2023"]
    if any(key in meta for key in (new.container_id_key, *new.metadata_keys)):
        return new
    # a behavior session has no container: its trials name the generation
    if f"{TRIALS}/{new.trial_is_change}" in f:
        return new
    return LAYOUTS["2021"]


#: ``general/metadata`` attributes that only the files of imaging experiments have.
OPHYS_METADATA_KEYS = ("ophys_experiment_id", "ophys_session_id", "imaging_depth")


def session_kind(f: Any, path: str = "<file>") -> str:
    """``"behavior_ophys"`` (an imaging experiment) or ``"behavior"`` (no imaging).

    A file whose metadata names an ophys experiment but lacks the ophys module (or its
    ΔF/F) is damaged, not a behavior session.

    Raises
    ------
    NotAnOphysSessionError
        An ophys experiment's file without its traces.
    """
    meta = f[METADATA].attrs if METADATA in f else {}
    ophys_meta = any(key in meta for key in OPHYS_METADATA_KEYS)
    if OPHYS not in f and not ophys_meta:
        return "behavior"
    dff = f"{TRACE_SERIES['dff'][1]}/traces/data"
    if dff not in f:
        msg = (
            f"{path!r} is the file of an ophys experiment (its general/metadata names one) but "
            f"has no {dff}: the file is incomplete or damaged (a behavior-only session has no "
            "ophys metadata). Download it again."
        )
        raise NotAnOphysSessionError(msg)
    return "behavior_ophys"


def paths() -> set[str]:
    """Every dataset path this table names (patterns with ``*`` for named groups).

    The schema's ``Spec.nwb`` paths are checked against this set by the tests.
    """
    out = {
        f"{SEG}/{c}" for c in (*CELL_COLUMNS, "id", "image_mask")
    }
    for _, group in TRACE_SERIES.values():
        out |= {f"{group}/traces/data", f"{group}/traces/timestamps", f"{group}/traces/rois"}
    out |= {f"{EVENTS}/{d}" for d in ("data", "timestamps", "rois", *EVENT_VALUES.values())}
    out |= {f"{s}/data" for s in (*FIT_SERIES.values(), *MOTION_SERIES.values(),
                                  *RUNNING_SERIES.values())}
    out |= {f"{IMAGES}/{d}" for d in IMAGE_DATASETS.values()}
    for series in EYE_PARTS.values():
        out |= {f"{EYE}/{series}/{d}" for d, _ in EYE_FIELDS.values()}
        out |= {f"{EYE}/{series}/area", f"{EYE}/{series}/timestamps"}
    out |= {f"{LIKELY_BLINK}/data", f"{STIMULUS_TIMESTAMPS}/timestamps",
            f"{STIMULUS_TIMESTAMPS}/data", f"{LICKS}/data", f"{LICKS}/timestamps",
            f"{REWARDS}/volume/data", f"{REWARDS}/autorewarded/data",
            f"{REWARDS}/autorewarded/timestamps", f"{TRIALS}/id", f"{TRIALS}/lick_times",
            f"{TRIALS}/lick_times_index", f"{TEMPLATES}/*/data", f"{TEMPLATES}/*/unwarped",
            f"{TEMPLATES}/*/control_description"}
    for layout in LAYOUTS.values():
        out |= {f"{TRIALS}/{c}" for c in (*TRIAL_STORED, layout.trial_is_change)}
        out |= {f"intervals/*{PRESENTATIONS_SUFFIX}/{c}" for c, _ in layout.presentation_columns}
    return out


def int_null_of(encoding: Encoding) -> float | int:
    """The stored null of an encoding: -99 or NaN."""
    return INT_NULL if encoding == "int" else float("nan")
