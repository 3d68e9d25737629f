"""ophys_xr: Allen Visual Behavior two-photon sessions as one labeled, lazy xarray.Dataset."""

from __future__ import annotations

import dask.array as _dask_array  # noqa: F401  (paid at import, not at the first open)

from ophys_xr import (
    accessors as _accessors,  # noqa: F401  (registers ds.ophys)
    datasets,
)
from ophys_xr.behavior import performance, reward_rate
from ophys_xr.cache import ProjectCache
from ophys_xr.cells import filter_events, roi_masks, segmentation_mask_image
from ophys_xr.compat import BehaviorOphysSession, BehaviorSession
from ophys_xr.exceptions import (
    DownloadError,
    InvalidSessionFileError,
    MissingDataError,
    MissingDependencyError,
    NotAnOphysSessionError,
    NotNwbFileError,
    OphysXrError,
    OptionError,
    OutputExistsError,
    OutputFolderError,
    RemoteReadError,
    SchemaError,
    SessionClosedError,
    SessionFileNotFoundError,
    UnsupportedLayoutError,
)
from ophys_xr.eye import blink_filter
from ophys_xr.io import open_session, to_netcdf, to_zarr
from ophys_xr.model import create_session_dataset
from ophys_xr.pynapple import to_pynapple
from ophys_xr.responses import (
    fraction_significant_responses,
    image_selectivity,
    lifetime_sparseness,
    reliability,
    stimulus_response,
    trial_response,
)
from ophys_xr.sessions import (
    catalog,
    combine_by_cell,
    map_sessions,
    open_multiplane_session,
    open_sessions,
    plane_dataset,
)

__version__ = "0.1.0"

__all__ = [
    "BehaviorOphysSession",
    "BehaviorSession",
    "DownloadError",
    "InvalidSessionFileError",
    "MissingDataError",
    "MissingDependencyError",
    "NotAnOphysSessionError",
    "NotNwbFileError",
    "OphysXrError",
    "OptionError",
    "OutputExistsError",
    "OutputFolderError",
    "RemoteReadError",
    "ProjectCache",
    "SchemaError",
    "SessionClosedError",
    "SessionFileNotFoundError",
    "UnsupportedLayoutError",
    "__version__",
    "blink_filter",
    "catalog",
    "combine_by_cell",
    "create_session_dataset",
    "datasets",
    "filter_events",
    "fraction_significant_responses",
    "image_selectivity",
    "lifetime_sparseness",
    "map_sessions",
    "open_multiplane_session",
    "open_session",
    "open_sessions",
    "performance",
    "plane_dataset",
    "reliability",
    "reward_rate",
    "roi_masks",
    "segmentation_mask_image",
    "stimulus_response",
    "to_netcdf",
    "to_pynapple",
    "to_zarr",
    "trial_response",
]
