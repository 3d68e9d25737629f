"""Write a session Dataset as an AllenSDK Visual Behavior Ophys NWB file: the reader's inverse.

:func:`write_nwb` writes, with h5py only, the groups, datasets, dtypes and NWB attributes
that the AllenSDK's own writer writes, in any generation of
:mod:`ophys_xr.backends.layout`, over the same table the reader
(:mod:`ophys_xr.backends.nwb`) reads: opening the written file gives the Dataset back.
The simulator (:mod:`ophys_xr.testing`), the CLI's ``demo`` and the round-trip tests use
it.
"""

from __future__ import annotations

import gzip
import json
import os
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr

from ophys_xr._atomic import temporary_sibling
from ophys_xr.backends import layout as L
from ophys_xr.exceptions import OptionError, SchemaError
from ophys_xr.variables import INT_NULL, TRIAL_COLUMNS

__all__ = ["LAYOUTS", "write_nwb"]

LayoutName = Literal["2023", "2021"]
#: The generations the writer writes.
LAYOUTS: tuple[str, ...] = tuple(L.LAYOUTS)
#: Image set written when the Dataset does not name one.
DEFAULT_IMAGE_SET = "Natural_Images_Lum_Matched_set_training_2017.07.14"

_NS_BEHAVIOR = "ndx-aibs-behavior-ophys"
_NWB_VERSION = "2.7.0"
#: Bytes of traces per written block (all ROIs x a block of frames, per variable).
_WRITE_BLOCK_BYTES = 8 * 2**20
_PRESENTATION_DESCRIPTIONS = {
    "start_time": "Start time of epoch, in seconds",
    "stop_time": "Stop time of epoch, in seconds",
    "stimulus_block": "Index of contiguous presentations of one stimulus type",
    "stimulus_name": "Name of stimulus",
}
_EXPERIMENT_DESCRIPTION = (
    "2-photon calcium imaging in the visual cortex of the mouse brain as the mouse performs a "
    "visual change detection task with a set of natural images upon which it has been "
    "previously trained. Image stimuli are displayed for 250 ms with a 500 ms intervening gray "
    "period. 5% of non-change image presentations are randomly omitted. The session is 75 "
    "minutes long, with 5 minutes of gray screen before and after 60 minutes of behavior, "
    "followed by 10 repeats of a 30 second natural movie stimulus at the end of the session."
)
_V_IN_DESCRIPTION = (
    'The theoretical maximum voltage that the running wheel encoder will reach prior to '
    '"wrapping". This should theoretically be 5V (after crossing 5V goes to 0V, or vice '
    'versa). In practice the encoder does not always reach this value before wrapping, which '
    'can cause transient spikes in speed at the voltage "wraps".'
)


def write_nwb(
    ds: xr.Dataset,
    path: str | os.PathLike[str],
    *,
    layout: LayoutName | None = None,
    presentation_grouping: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a session Dataset as an AllenSDK Visual Behavior Ophys NWB file (h5py only).

    The file has the groups, datasets, dtypes and NWB attributes (``neurodata_type``,
    ``namespace``, ``object_id``, ``colnames``, descriptions, region and index
    references, soft links) that AllenSDK 2.16.2 writes (``layout="2023"``), or the
    layout of the 2021 releases (``layout="2021"``: ``experiment_container_id``, no
    demixed / neuropil traces, trials ``stimulus_change`` and float ``change_frame``, one
    presentations table per image name plus ``omitted_presentations``), and it caches the
    NWB specifications so that pynwb can read it.  ROI masks and traces are written block
    by block (traces time-major, contiguous; events gzip-compressed and chunked), so a
    dask-backed Dataset is never held in memory at once.

    The file is written under a temporary name in the same folder and renamed at the
    end: an interrupted write never leaves a complete-looking file.

    Parameters
    ----------
    ds
        A session Dataset (from :func:`simulate_session` or ``ophys_xr.open_session``).
        All its ROIs are written; optional variables it lacks are left out of the file.
    path
        The new file.
    layout
        ``"2023"`` or ``"2021"``; default ``ds.attrs["nwb_layout"]`` (else ``"2023"``).
        Variables that the layout has no place for are not written.
    presentation_grouping
        The column the presentation tables are grouped by, one of the layout's
        :attr:`~ophys_xr.backends.layout.Layout.presentation_groupings` (default: the
        first, what the AllenSDK of that generation writes; 2021 files exist grouped by
        ``image_name`` and by ``stimulus_name``).
    overwrite
        Replace an existing file written by ``write_nwb`` (its ``general/source_script``
        says so); any other file is kept and :class:`~ophys_xr.exceptions.OutputExistsError`
        raised.

    Returns
    -------
    pathlib.Path
        The file.

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``overwrite`` is False, or it is not a file ``write_nwb``
        wrote.
    OptionError
        Unknown layout or presentation grouping.
    SchemaError
        ``ds`` lacks a variable or attribute every session file has, or holds what the
        layout cannot store (2021: an image name with ``/``, since tables are named after
        the images).
    """
    import h5py

    name = layout or str(ds.attrs.get("nwb_layout", "2023"))
    if name not in LAYOUTS:
        msg = f"layout must be one of {LAYOUTS}, got {name!r}"
        raise OptionError(msg)
    spec = L.LAYOUTS[name]
    grouping = presentation_grouping or spec.presentation_groupings[0]
    if grouping not in spec.presentation_groupings:
        msg = (f"presentation_grouping must be one of {spec.presentation_groupings} for the "
               f"{name} layout, got {grouping!r}")
        raise OptionError(msg)
    target = Path(os.fspath(path)).expanduser()
    with temporary_sibling(target, overwrite=overwrite, owned=is_own_nwb) as tmp, \
            h5py.File(tmp, "w", rdcc_nbytes=64 * 2**20, rdcc_nslots=100_003) as f:
        _Writer(f, ds, spec, grouping).write()
    return target


#: ``general/source_script`` of every NWB file ophys_xr writes.
SOURCE_SCRIPT = "ophys_xr (simulated or converted session, not an Allen Institute release)"


def is_own_nwb(path: Path) -> bool:
    """Whether ``path`` is an NWB file written by :func:`write_nwb` (``overwrite`` replaces
    only those)."""
    import h5py

    if not path.is_file() or not h5py.is_hdf5(path):
        return False
    try:
        with h5py.File(path, "r") as f:
            script = f.get("general/source_script")
            return script is not None and script.asstr()[()] == SOURCE_SCRIPT
    except OSError:
        return False


def _index_dtype(n_target: int) -> type[np.unsignedinteger]:
    """hdmf's VectorIndex dtype: the smallest unsigned integer that holds ``n_target``."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if n_target <= np.iinfo(dtype).max:
            return dtype
    return np.uint64


def _resolution(spacing_mm: float) -> float:
    """The ``resolution`` attribute (cm/pixel) that gives back ``spacing_mm`` times 10."""
    value = spacing_mm / 10.0
    for direction in (np.inf, -np.inf):
        candidate = value
        for _ in range(4):
            if candidate * 10.0 == spacing_mm:
                return float(candidate)
            candidate = float(np.nextafter(candidate, direction))
    return value


def _spec_texts(layout: L.Layout) -> dict[str, str]:
    """The cached NWB namespaces (``/specifications``), as AllenSDK 2.16.2 files carry them.

    For the 2021 layout the ``ndx-aibs-behavior-ophys`` extension is adapted to the
    attributes of the 2021 files (``experiment_container_id``; no ``project_code``,
    ``targeted_imaging_depth`` or task ``stimulus_name``), as the 2021 writers defined it
    under the same namespace version.
    """
    raw = resources.files("ophys_xr").joinpath("_nwb_specs/namespaces.json.gz").read_bytes()
    texts: dict[str, str] = json.loads(gzip.decompress(raw))
    if layout.name == "2021":
        key = f"{_NS_BEHAVIOR}/0.2.0/{_NS_BEHAVIOR}.extension"
        spec = json.loads(texts[key])
        for group in spec["groups"]:
            attrs = []
            for attr in group.get("attributes", []):
                if attr["name"] in ("project_code", "targeted_imaging_depth", "stimulus_name"):
                    continue
                if attr["name"] == "ophys_container_id":
                    attr = {**attr, "name": "experiment_container_id"}
                attrs.append(attr)
            if "attributes" in group:
                group["attributes"] = attrs
        texts[key] = json.dumps(spec, separators=(",", ":"))
    return texts


class _Writer:
    """Writes one session Dataset into an open, empty h5py file."""

    def __init__(self, f: Any, ds: xr.Dataset, layout: L.Layout, grouping: str) -> None:
        import h5py

        self.h5py = h5py
        self.f = f
        self.ds = ds
        self.layout = layout
        # without the grouping column, the tables are named after the images
        self.grouping = grouping if grouping in ds.variables else "image_name"
        self.imaging = str(ds.attrs.get("session_kind", "behavior_ophys")) == "behavior_ophys"
        self.attrs = dict(ds.attrs)
        self.text = h5py.string_dtype("utf-8")

    # ---- low-level helpers ------------------------------------------------------------

    def require(self, key: str) -> Any:
        if key not in self.attrs:
            msg = f"the session Dataset has no attribute {key!r}, which an NWB file needs"
            raise SchemaError(msg)
        return self.attrs[key]

    def values(self, name: str) -> np.ndarray:
        if name not in self.ds.variables:
            msg = f"the session Dataset has no variable {name!r}, which an NWB file needs"
            raise SchemaError(msg)
        return np.asarray(self.ds[name].values)

    def set_attr(self, obj: Any, key: str, value: Any) -> None:
        if isinstance(value, self.h5py.Reference | str):
            obj.attrs[key] = value
        elif isinstance(value, list | tuple | np.ndarray):
            obj.attrs.create(key, np.array([str(v) for v in value], dtype=object),
                             dtype=self.text)
        elif isinstance(value, bool | np.bool_):
            obj.attrs[key] = np.bool_(value)
        elif isinstance(value, int | np.integer):
            obj.attrs[key] = np.int64(value)
        else:
            obj.attrs[key] = np.float64(value)

    def typed(self, obj: Any, neurodata_type: str, namespace: str, **attrs: Any) -> Any:
        for key, value in attrs.items():
            self.set_attr(obj, key, value)
        obj.attrs["namespace"] = namespace
        obj.attrs["neurodata_type"] = neurodata_type
        obj.attrs["object_id"] = str(uuid.uuid4())
        return obj

    def group(self, path: str, neurodata_type: str | None = None, namespace: str = "core",
              **attrs: Any) -> Any:
        g = self.f.require_group(path)
        if neurodata_type is not None:
            self.typed(g, neurodata_type, namespace, **attrs)
        else:
            for key, value in attrs.items():
                self.set_attr(g, key, value)
        return g

    def dataset(self, path: str, data: Any = None, *, neurodata_type: str | None = None,
                namespace: str = "hdmf-common", attrs: Mapping[str, Any] | None = None,
                **kwargs: Any) -> Any:
        if data is not None:
            array: Any = np.asarray(data)
            if array.dtype.kind == "O" and array.size and all(
                    isinstance(v, bytes) for v in array.ravel()):
                kwargs.setdefault("dtype", self.h5py.string_dtype("ascii"))
            elif array.dtype.kind in "OUT":
                kwargs.setdefault("dtype", self.text)
                array = np.array([str(v) for v in array.ravel()], dtype=object).reshape(
                    array.shape) if array.ndim else str(array[()])
            data = array
        dset = self.f.create_dataset(path, data=data, **kwargs)
        if neurodata_type is not None:
            self.typed(dset, neurodata_type, namespace, **(attrs or {}))
        else:
            for key, value in (attrs or {}).items():
                self.set_attr(dset, key, value)
        return dset

    def link(self, path: str, target: str) -> None:
        self.f[path] = self.h5py.SoftLink(f"/{target}")

    def timestamps(self, path: str, values: np.ndarray) -> None:
        self.dataset(path, np.asarray(values, dtype=np.float64),
                     attrs={"interval": 1, "unit": "seconds"})

    def timeseries(self, path: str, data: Any, *, unit: str, timestamps: np.ndarray | None = None,
                   timestamps_link: str | None = None, description: str = "no description",
                   neurodata_type: str = "TimeSeries", namespace: str = "core",
                   **data_kwargs: Any) -> None:
        self.group(path, neurodata_type, namespace, comments="no comments",
                   description=description)
        self.dataset(f"{path}/data", data, attrs={"conversion": 1.0, "offset": 0.0,
                                                  "resolution": -1.0, "unit": unit},
                     **data_kwargs)
        if timestamps_link is not None:
            self.link(f"{path}/timestamps", timestamps_link)
        elif timestamps is not None:
            self.timestamps(f"{path}/timestamps", timestamps)

    def table(self, path: str, columns: Mapping[str, Any], ids: np.ndarray, *,
              neurodata_type: str, description: str,
              descriptions: Mapping[str, str]) -> Any:
        """A DynamicTable; ``columns`` values are arrays, or ``(flat, counts)`` ragged pairs."""
        g = self.group(path, neurodata_type, "core", colnames=list(columns),
                       description=description)
        self.dataset(f"{path}/id", np.asarray(ids, dtype=np.int64),
                     neurodata_type="ElementIdentifiers")
        for name, values in columns.items():
            desc = descriptions.get(name, "No description")
            if isinstance(values, tuple):  # ragged: (flat values, counts per row)
                flat, counts = values
                target = self.dataset(f"{path}/{name}", flat, neurodata_type="VectorData",
                                      attrs={"description": desc})
                ends = np.cumsum(counts).astype(_index_dtype(len(flat)))
                self.dataset(f"{path}/{name}_index", ends, neurodata_type="VectorIndex",
                             attrs={"description": f"Index for VectorData '{name}'",
                                    "target": target.ref})
            else:
                self.dataset(f"{path}/{name}", values, neurodata_type="VectorData",
                             attrs={"description": desc})
        return g

    # ---- the file ---------------------------------------------------------------------

    def write(self) -> None:
        self.check()
        self.root()
        self.general()
        self.stimulus_timestamps()
        self.running()
        self.licks_rewards()
        if self.imaging:
            self.cells()
            self.traces()
            self.images()
        self.eye_tracking()
        self.trials()
        self.presentations()
        self.templates()
        self.specifications()

    def check(self) -> None:
        """Refuse, before writing anything, a Dataset that this layout cannot hold."""
        if self.grouping == "image_name" and "image_name" in self.ds:
            # one presentations table per image: intervals/<image name>_presentations
            bad = sorted({str(v) for v in self.values("image_name") if "/" in str(v)})
            if bad:
                msg = (
                    f"image names {bad} contain '/': the 2021 layout names a table after each "
                    "image (intervals/<image_name>_presentations) and HDF5 names cannot hold "
                    "'/'. Write layout='2023' (one table per stimulus) or rename the images."
                )
                raise SchemaError(msg)

    def root(self) -> None:
        f = self.f
        for name in ("acquisition", "analysis", "general", "intervals", "processing",
                     "stimulus/presentation", "stimulus/templates"):
            f.require_group(name)
        self.typed(f, "NWBFile", "core", nwb_version=_NWB_VERSION)
        start = str(self.require("date_of_acquisition"))
        # behavior sessions are identified by their behavior session id
        identifier = "ophys_experiment_id" if self.imaging else "behavior_session_id"
        self.dataset("identifier", str(self.require(identifier)))
        self.dataset("session_description", str(self.require("session_type")))
        ascii_text = self.h5py.string_dtype("ascii")  # NWB isodatetime
        self.dataset("session_start_time", start, dtype=ascii_text)
        self.dataset("timestamps_reference_time", start, dtype=ascii_text)
        created = datetime.now(UTC).isoformat(timespec="microseconds")
        self.dataset("file_create_date", np.array([created], dtype=object), dtype=ascii_text)

    def _behavior_metadata(self, equipment: str) -> dict[str, Any]:
        """``general/metadata`` of a behavior session (``BehaviorMetadata``)."""
        a = self.attrs
        meta: dict[str, Any] = {
            "behavior_session_id": int(self.require("behavior_session_id")),
            "behavior_session_uuid": str(a.get("behavior_session_uuid", "None")),
            "equipment_name": equipment,
        }
        if "project_code" in self.layout.metadata_keys:
            meta["project_code"] = str(a.get("project_code", "Not Available"))
        meta["session_type"] = str(self.require("session_type"))
        meta["stimulus_frame_rate"] = float(self.require("stimulus_frame_rate"))
        self.group(L.METADATA, "BehaviorMetadata", _NS_BEHAVIOR, **meta)
        return meta

    def _metadata(self, equipment: str) -> dict[str, Any]:
        """``general/metadata`` of an imaging experiment (``OphysBehaviorMetadata``)."""
        a = self.attrs
        meta: dict[str, Any] = {
            "behavior_session_id": int(self.require("behavior_session_id")),
            "behavior_session_uuid": str(a.get("behavior_session_uuid", "None")),
            "equipment_name": equipment,
            "field_of_view_height": int(self.require("field_of_view_height")),
            "field_of_view_width": int(self.require("field_of_view_width")),
            "imaging_depth": int(self.require("imaging_depth")),
            "imaging_plane_group": int(a.get("imaging_plane_group", -1)),
            "imaging_plane_group_count": int(a.get("imaging_plane_group_count", 0)),
        }
        container = a.get("ophys_container_id")
        if container is not None:
            meta[self.layout.container_id_key] = int(container)
        meta["ophys_experiment_id"] = int(self.require("ophys_experiment_id"))
        meta["ophys_session_id"] = int(self.require("ophys_session_id"))
        if "project_code" in self.layout.metadata_keys:
            meta["project_code"] = str(a.get("project_code", "Not Available"))
        meta["session_type"] = str(self.require("session_type"))
        meta["stimulus_frame_rate"] = float(self.require("stimulus_frame_rate"))
        if "targeted_imaging_depth" in self.layout.metadata_keys:
            depth = a.get("targeted_imaging_depth")
            meta["targeted_imaging_depth"] = int(
                meta["imaging_depth"] if depth is None else depth)
        self.group(L.METADATA, "OphysBehaviorMetadata", _NS_BEHAVIOR, **meta)
        return meta

    def general(self) -> None:
        a = self.attrs
        self.dataset("general/experiment_description", _EXPERIMENT_DESCRIPTION)
        self.dataset("general/institution", "Allen Institute for Brain Science")
        # NWB's record of the program that wrote the file: how overwrite=True knows its own
        self.dataset("general/source_script", SOURCE_SCRIPT)
        self.f["general/source_script"].attrs["file_name"] = "ophys_xr.backends.nwb_writer"
        keywords = (["2-photon", "calcium imaging", "visual cortex", "behavior", "task"]
                    if self.imaging else ["visual", "behavior", "task"])
        self.dataset("general/keywords", np.array(keywords, dtype=object))
        equipment = str(self.require("equipment_name"))
        rig = "Mesoscope" if equipment.startswith("MESO") else "Scientifica"
        self.group(f"general/devices/{equipment}", "Device", "core",
                   description=f"Allen Brain Observatory - {rig} 2P Rig",
                   manufacturer="Scientifica")
        meta = self._metadata(equipment) if self.imaging else self._behavior_metadata(equipment)
        # /general/subject
        subject: dict[str, Any] = {}
        if a.get("driver_line") is not None:
            subject["driver_line"] = list(a["driver_line"])
        subject["reporter_line"] = str(a.get("reporter_line", "None"))
        self.group(L.SUBJECT, "BehaviorSubject", _NS_BEHAVIOR, **subject)
        age = a.get("age_in_days")
        self.dataset(f"{L.SUBJECT}/age", f"P{int(age)}D" if age is not None else "null",
                     attrs={"reference": "birth"})
        self.dataset(f"{L.SUBJECT}/description",
                     "A visual behavior subject with a LabTracks ID")
        if a.get("full_genotype") is not None:
            self.dataset(f"{L.SUBJECT}/genotype", str(a["full_genotype"]))
        self.dataset(f"{L.SUBJECT}/sex", str(self.require("sex")))
        self.dataset(f"{L.SUBJECT}/species", "Mus musculus")
        self.dataset(f"{L.SUBJECT}/subject_id", str(self.require("mouse_id")))
        # /general/task_parameters
        params = json.loads(str(self.require("task_parameters")))
        task: dict[str, Any] = {}
        for key in ("auto_reward_volume", "omitted_flash_fraction", "reward_volume",
                    "stimulus_duration_sec"):
            if params.get(key) is not None:
                task[key] = float(params[key])
        for key in ("blank_duration_sec", "response_window_sec"):
            task[key] = [repr(float(v)) for v in params[key]]
        task["n_stimulus_frames"] = int(params["n_stimulus_frames"])
        for key in ("session_type", "stimulus", "stimulus_distribution", "task"):
            task[key] = str(params[key])
        if self.layout.task_stimulus_name and params.get("stimulus_name") is not None:
            task["stimulus_name"] = str(params["stimulus_name"])
        self.group(L.TASK, "BehaviorTaskParameters", _NS_BEHAVIOR,
                   **dict(sorted(task.items())))
        if self.imaging:
            self._imaging_plane(meta, equipment)
        self._rig_geometry(equipment)

    def _imaging_plane(self, meta: Mapping[str, Any], equipment: str) -> None:
        a = self.attrs
        plane = L.PLANE
        self.group(plane, "ImagingPlane", "core")
        self.group(f"{plane}/channel_1", "OpticalChannel", "core")
        self.dataset(f"{plane}/channel_1/description", "2P Optical Channel")
        self.dataset(f"{plane}/channel_1/emission_lambda",
                     np.float64(a.get("emission_lambda", 520.0)))
        structure = str(self.require("targeted_structure"))
        self.dataset(f"{plane}/description",
                     f"({meta['field_of_view_width']}, {meta['field_of_view_height']}) field of "
                     f"view in {structure} at depth {meta['imaging_depth']} um")
        self.link(f"{plane}/device", f"general/devices/{equipment}")
        self.dataset(f"{plane}/excitation_lambda", np.float64(a.get("excitation_lambda", 910.0)))
        self.dataset(f"{plane}/imaging_rate", np.float64(self.require("ophys_frame_rate")))
        self.dataset(f"{plane}/indicator", str(a.get("indicator") or "unknown"))
        self.dataset(f"{plane}/location", structure)

    def _rig_geometry(self, equipment: str) -> None:
        a = self.attrs
        if "eye_tracking_rig_geometry" in a:
            geometry = json.loads(str(a["eye_tracking_rig_geometry"]))
            self.group(L.RIG.rsplit("/", 1)[0], "ProcessingModule", "core",
                       description="Eye tracking rig metadata module")
            path = L.RIG
            self.group(path, "OphysEyeTrackingRigMetadata", _NS_BEHAVIOR,
                       equipment=str(geometry.get("equipment", equipment)))
            for name, key, unit in (("camera_position", "camera_position_mm", "mm"),
                                    ("camera_rotation", "camera_rotation_deg", "deg"),
                                    ("led_position", "led_position", "mm"),
                                    ("monitor_position", "monitor_position_mm", "mm"),
                                    ("monitor_rotation", "monitor_rotation_deg", "deg")):
                self.dataset(f"{path}/{name}", np.asarray(geometry[key], dtype=np.float64),
                             attrs={"unit_of_measurement": unit})

    def stimulus_timestamps(self) -> None:
        ts = self.values("stimulus_timestamps").astype(np.float64)
        self.group(L.STIMULUS_TIMESTAMPS.rsplit("/", 1)[0], "ProcessingModule", "core",
                   description="Stimulus Times processing")
        self.timeseries(L.STIMULUS_TIMESTAMPS, ts, unit="s", timestamps=ts)

    def running(self) -> None:
        ts = self.values("stimulus_timestamps").astype(np.float64)
        self.group(L.RUNNING_SERIES["running_speed"].rsplit("/", 1)[0], "ProcessingModule",
                   "core", description="Running speed processing module")
        for var, unit, description, dtype in (
            ("dx", "cm", "Running wheel angular change, computed during data collection",
             np.float32),
            ("running_speed", "cm/s", "no description", np.float64),
            ("raw_running_speed", "cm/s", "no description", np.float64),
            ("v_in", "V", _V_IN_DESCRIPTION, np.float64),
            ("v_sig", "V", "Voltage signal from the running wheel encoder", np.float64),
        ):
            if var in self.ds:
                self.timeseries(L.RUNNING_SERIES[var], self.values(var).astype(dtype),
                                unit=unit, timestamps=ts, description=description)

    def licks_rewards(self) -> None:
        frames = self.values("licks_frame").astype(np.int64)
        if len(frames):  # the AllenSDK skips empty lick and reward modules
            self.group(L.LICKS.rsplit("/", 1)[0], "ProcessingModule", "core",
                       description="Licking behavior processing module")
            self.timeseries(L.LICKS, frames, unit="N/A",
                            timestamps=self.values("licks_timestamps"),
                            description="Timestamps and stimulus presentation frame indices "
                                        "for lick events")
        volume = self.values("rewards_volume").astype(np.float64)
        if len(volume):
            ts = self.values("rewards_timestamps")
            self.group(L.REWARDS, "ProcessingModule", "core",
                       description="Licking behavior processing module")
            self.timeseries(f"{L.REWARDS}/autorewarded",
                            self.values("rewards_auto_rewarded").astype(bool), unit="mL",
                            timestamps=ts)
            self.timeseries(f"{L.REWARDS}/volume", volume, unit="mL", timestamps=ts)

    def cells(self) -> None:
        ds = self.ds
        self.group(L.OPHYS, "ProcessingModule", "core", description="Ophys processing module")
        self.group(L.SEG.rsplit("/", 1)[0], "ImageSegmentation", "core")
        columns = {name: self.values(name) for name in L.CELL_COLUMNS}
        self.table(L.SEG, columns, self.values("cell_roi_id"),
                   neurodata_type="PlaneSegmentation", description="Segmented rois",
                   descriptions=L.CELL_COLUMNS)
        self.set_attr(self.f[L.SEG], "colnames", [*L.CELL_COLUMNS, "image_mask"])
        mask = ds["roi_mask"]
        n, height, width = mask.shape
        dset = self.dataset(f"{L.SEG}/image_mask", shape=(n, height, width), dtype=bool,
                            neurodata_type="VectorData",
                            attrs={"description": "Image masks for each ROI"})
        step = max(1, (64 * 2**20) // max(height * width, 1))
        for a in range(0, n, step):
            dset[a:a + step] = np.asarray(mask[a:a + step].values, dtype=bool)
        self.f.require_group(f"{L.SEG}/reference_images")
        self.link(f"{L.SEG}/imaging_plane", L.PLANE)

    def traces(self) -> None:
        ds = self.ds
        n_rois, n_frames = ds.sizes["cell_specimen_id"], ds.sizes["time"]
        time = self.values("time").astype(np.float64)
        series = {name: L.TRACE_SERIES[name] for name in self.layout.traces}
        targets: dict[str, tuple[Any, np.ndarray]] = {}
        all_rows = np.arange(n_rois)
        region = f"{L.TRACE_SERIES['dff'][1]}/traces/rois"
        for name, (container, group) in series.items():
            if name not in ds:
                continue
            self.group(group, container, "core")
            path = f"{group}/traces"
            self.group(path, "RoiResponseSeries", "core", comments="no comments",
                       description="no description")
            dset = self.dataset(f"{path}/data", shape=(n_frames, n_rois), dtype=np.float64,
                                attrs={"conversion": 1.0, "offset": 0.0, "resolution": -1.0,
                                       "unit": "NA"})
            targets[name] = (dset, all_rows)
            if name == "dff":
                self.dataset(region, all_rows.astype(np.int64), neurodata_type="DynamicTableRegion",
                             attrs={"description": "segmented cells labeled by cell_specimen_id",
                                    "table": self.f[L.SEG].ref})
            else:
                self.link(f"{path}/rois", region)
            self.timestamps(f"{path}/timestamps", time)
        if self.layout.stores_fit and "corrected_fluorescence" in targets:
            for var, path in L.FIT_SERIES.items():
                if var in ds:
                    self.timeseries(path, self.values(var).astype(np.float64), unit="NA",
                                    timestamps=np.arange(n_rois, dtype=np.float64),
                                    neurodata_type="RoiResponseSeries")
                    self.link(f"{path}/rois", region)
        if "events" in ds:
            path = L.EVENTS
            rows = np.flatnonzero(~np.isnan(self.values("lambda"))) if "lambda" in ds \
                else all_rows
            self.group(path, "OphysEventDetection", "ndx-aibs-ophys-event-detection",
                       comments="no comments", description="no description")
            dset = self.dataset(f"{path}/data", shape=(n_frames, len(rows)), dtype=np.float64,
                                chunks=True if n_frames and len(rows) else None,
                                compression="gzip", compression_opts=4,
                                attrs={"conversion": 1.0, "offset": 0.0, "resolution": -1.0,
                                       "unit": "N/A"})
            targets["events"] = (dset, rows)
            for var, stored in L.EVENT_VALUES.items():
                values = self.values(var)[rows] if var in ds else np.full(len(rows), np.nan)
                self.dataset(f"{path}/{stored}", values.astype(np.float64))
            self.dataset(f"{path}/rois", rows.astype(np.int64), neurodata_type="DynamicTableRegion",
                         attrs={"description": "Cells with detected events",
                                "table": self.f[L.SEG].ref})
            self.timestamps(f"{path}/timestamps", time)
        self._write_trace_blocks(targets, n_rois, n_frames)
        for var, path in L.MOTION_SERIES.items():
            self.timeseries(path, self.values(var), unit="pixels", timestamps=time)

    def _write_trace_blocks(self, targets: Mapping[str, tuple[Any, np.ndarray]], n_rois: int,
                            n_frames: int) -> None:
        """Write the traces block by block of frames (all variables of a block at once)."""
        if not targets or not n_frames:
            return
        names = list(targets)
        chunks = self.ds[names[0]].chunks
        step = max(1, _WRITE_BLOCK_BYTES // (8 * max(n_rois, 1)))
        if chunks is not None:
            step = max(self.ds[names[0]].chunksizes["time"])
        for a in range(0, n_frames, step):
            b = min(a + step, n_frames)
            block = self.ds[names].isel(time=slice(a, b)).compute()
            for name in names:
                dset, rows = targets[name]
                values = block[name].transpose("time", "cell_specimen_id").values
                dset[a:b, :] = np.asarray(values, dtype=np.float64)[:, rows]

    def images(self) -> None:
        path = L.IMAGES
        self.group(path, "Images", "core", description="no description")
        spacing = self.require("pixel_spacing")
        resolution = _resolution(float(spacing[0]))
        for var, stored in L.IMAGE_DATASETS.items():
            values = self.values(var)
            if var == "segmentation_mask_image":
                values = values.astype(np.int64)
            self.dataset(f"{path}/{stored}", values, neurodata_type="GrayscaleImage",
                         namespace="core",
                         attrs={"description": f"{stored} image at pixels/cm resolution",
                                "resolution": resolution})

    def eye_tracking(self) -> None:
        ds = self.ds
        if "eye_timestamps" not in ds.variables:
            return
        self.group(L.EYE, "EllipseEyeTracking", "ndx-ellipse-eye-tracking")
        stamps = L.EYE_TIMESTAMPS
        for part, group in L.EYE_PARTS.items():
            path = f"{L.EYE}/{group}"
            self.group(path, "EllipseSeries", "ndx-ellipse-eye-tracking",
                       comments="no comments", description="no description")
            for name, var in (("angle", "phi"), ("area", "area"), ("area_raw", "area_raw")):
                self.dataset(f"{path}/{name}", self.values(f"{part}_{var}").astype(np.float64))
            centre = np.column_stack([self.values(f"{part}_center_x"),
                                      self.values(f"{part}_center_y")]).astype(np.float64)
            self.dataset(f"{path}/data", centre, attrs={"conversion": 1.0, "offset": 0.0,
                                                        "resolution": -1.0, "unit": "meters"})
            for name in ("height", "width"):
                self.dataset(f"{path}/{name}", self.values(f"{part}_{name}").astype(np.float64))
            self.dataset(f"{path}/reference_frame", "nose")
            if group == "eye_tracking":
                self.timestamps(stamps, self.values("eye_timestamps"))
            else:
                self.link(f"{path}/timestamps", stamps)
        self.timeseries(L.LIKELY_BLINK, self.values("likely_blink").astype(bool),
                        unit="N/A", timestamps_link=stamps, description="blinks")

    def trials(self) -> None:
        counts = self.values("lick_times_count").astype(np.int64)
        columns: dict[str, Any] = {}
        for column, var in TRIAL_COLUMNS:
            if var == "lick_times":
                flat = self.values("lick_times").astype(np.float64)
                if not len(flat):
                    # hdmf writes a ragged column without values (a passive session) as one
                    # empty byte string, every row's index 0
                    flat = np.array([b""], dtype=object)
                columns[column] = (flat, counts)
                continue
            if var not in self.ds:
                continue
            values = self.values(var)
            column = self.layout.trial_column(var, column)
            if column == "change_frame" and self.layout.change_frame == "float-nan":
                values = np.where(values == INT_NULL, np.nan, values.astype(np.float64))
            columns[column] = values
        descriptions = {c: f"NOT IMPLEMENTED: {c}" for c in columns}
        descriptions.update({k: v for k, v in _PRESENTATION_DESCRIPTIONS.items()
                             if k in ("start_time", "stop_time")})
        self.table(L.TRIALS, columns, self.values("trials_id"),
                   neurodata_type="TimeIntervals", description="experimental trials",
                   descriptions=descriptions)

    def presentations(self) -> None:
        ds = self.ds
        n = ds.sizes["stimulus_presentations_id"]
        image_name = self.values("image_name").astype(object) if "image_name" in ds \
            else np.full(n, "", dtype=object)
        omitted = self.values("omitted") == 1.0
        image_set = str(self.attrs.get("stimulus_templates_image_set", DEFAULT_IMAGE_SET))
        # ``index``: the 2021 writers' row number among the shown (or the omitted) flashes
        rank = np.empty(n, dtype=np.int64)
        for kind in (omitted, ~omitted):
            rank[kind] = np.arange(kind.sum())
        derived = {"image_set": np.where(omitted, "omitted",
                                         np.where(image_name == "", "", image_set)),
                   "index": rank}
        spec = self.layout.presentation_columns
        key = self.values(self.grouping) if self.grouping in ds else image_name
        stim_ts = self.values("stimulus_timestamps")
        for name in sorted({str(k) for k in key}):
            rows = np.flatnonzero(key == name)
            columns: dict[str, Any] = {}
            for column, var in spec:
                if var is None:
                    values = derived[column][rows]
                elif var in ds:
                    values = self.values(var)[rows]
                else:
                    continue
                kept = self._presentation_column(column, values)
                if kept is not None:
                    columns[column] = kept
            start = self.values("start_time")[rows]
            stop = self.values("end_time")[rows]
            first = np.searchsorted(stim_ts, start, side="left")
            count = np.searchsorted(stim_ts, stop, side="left") - first
            columns["tags"] = (np.full(len(rows), "stimulus_time_interval", dtype=object),
                               np.ones(len(rows), dtype=np.int64))
            columns["timeseries"] = (first, count)
            label = name or "spontaneous"
            path = f"intervals/{label}{L.PRESENTATIONS_SUFFIX}"
            self.table(path, {k: v for k, v in columns.items() if k != "timeseries"},
                       self.values("stimulus_presentations_id")[rows],
                       neurodata_type="TimeIntervals",
                       description=f"Presentation times and stimuli details for '{label}' "
                                   "stimuli. \nNote: image_name references control_description"
                                   " in stimulus/templates",
                       descriptions={**_PRESENTATION_DESCRIPTIONS, "tags": "user-defined tags"})
            self.set_attr(self.f[path], "colnames", list(columns))
            self._timeseries_column(path, first, count)

    def _presentation_column(self, column: str, values: np.ndarray) -> np.ndarray | None:
        """A presentation column as stored, or None where the AllenSDK drops it (all NaN)."""
        if values.dtype.kind == "O":
            if all(v == "" for v in values):
                return None
            return np.array(["N/A" if v == "" else str(v) for v in values], dtype=object)
        if values.dtype.kind == "f" and np.isnan(values).all():
            return None
        if column == "end_frame" and self.layout.end_frame == "float-nan":
            # the 2021 writers kept the NaN end frame of omitted flashes: a float column,
            # absent from the omitted flashes' table
            values = np.where(values == INT_NULL, np.nan, values.astype(np.float64))
            return None if np.isnan(values).all() else values
        if values.dtype.kind == "b" and column in self.layout.float_bools:
            return values.astype(np.float64)
        if column == "omitted" and column not in self.layout.float_bools:
            return values == 1.0
        return values

    def _timeseries_column(self, path: str, first: np.ndarray, count: np.ndarray) -> None:
        h5py = self.h5py
        dtype = np.dtype([("idx_start", "<i4"), ("count", "<i4"),
                          ("timeseries", h5py.ref_dtype)])
        ref = self.f[L.STIMULUS_TIMESTAMPS].ref
        data = np.empty(len(first), dtype=dtype)
        data["idx_start"] = first
        data["count"] = count
        data["timeseries"] = ref
        target = self.dataset(f"{path}/timeseries", data, neurodata_type=
                              "TimeSeriesReferenceVectorData", namespace="core",
                              attrs={"description": "index into a TimeSeries object"})
        ends = np.arange(1, len(first) + 1).astype(_index_dtype(len(first)))
        self.dataset(f"{path}/timeseries_index", ends, neurodata_type="VectorIndex",
                     attrs={"description": "Index for VectorData 'timeseries'",
                            "target": target.ref})

    def templates(self) -> None:
        ds = self.ds
        if "template_image_name" not in ds.variables:
            return
        name = str(self.attrs.get("stimulus_templates_image_set", DEFAULT_IMAGE_SET))
        path = f"{L.TEMPLATES}/{name}"
        self.group(path, "StimulusTemplate", "ndx-aibs-stimulus-template",
                   comments="no comments", description="no description")
        names = self.values("template_image_name")
        self.dataset(f"{path}/control", np.arange(len(names)).astype(np.uint8))
        self.dataset(f"{path}/control_description", names.astype(object))
        self.dataset(f"{path}/data", self.values("stimulus_template_warped").astype(np.uint8),
                     attrs={"conversion": 1.0, "offset": 0.0, "resolution": -1.0, "unit": "NA"})
        self.dataset(f"{path}/format", "raw")
        self.timestamps(f"{path}/timestamps", np.full(len(names), np.nan))
        self.dataset(f"{path}/unwarped",
                     self.values("stimulus_template_unwarped").astype(np.float64))
        # the image index of the presentations of this image set (not read by any reader)
        omitted = self.values("omitted") == 1.0
        image_name = self.values("image_name").astype(object)
        shown = ~omitted & np.isin(image_name, names)
        index = f"stimulus/presentation/{name}"
        self.timeseries(index, self.values("image_index")[shown].astype(np.uint32),
                        unit="N/A", timestamps=self.values("start_time")[shown],
                        neurodata_type="IndexSeries")
        self.link(f"{index}/indexed_timeseries", path)

    def specifications(self) -> None:
        for key, text in _spec_texts(self.layout).items():
            self.dataset(f"specifications/{key}", text)
        self.f.attrs[".specloc"] = self.f["specifications"].ref
