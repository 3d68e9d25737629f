"""ophys_xr: Allen Visual Behavior two-photon sessions as one labeled, lazy xarray.Dataset.

``import ophys_xr`` loads only the exceptions; every other name (and submodule) is imported
when first used, with the libraries it needs (:mod:`ophys_xr._lazy`).  The ``ds.ophys``
accessor is registered as soon as xarray is imported, by whichever code imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ophys_xr import _lazy
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
    PermissionDeniedError,
    RemoteReadError,
    SchemaError,
    SessionClosedError,
    SessionFileNotFoundError,
    UnsupportedLayoutError,
)

#: Public name -> the submodule that defines it (a submodule maps to itself).
_LAZY: dict[str, str] = {
    "performance": "behavior",
    "reward_rate": "behavior",
    "ProjectCache": "cache",
    "filter_events": "cells",
    "roi_masks": "cells",
    "segmentation_mask_image": "cells",
    "BehaviorOphysSession": "compat",
    "BehaviorSession": "compat",
    "blink_filter": "eye",
    "open_session": "io",
    "to_netcdf": "io",
    "to_zarr": "io",
    "create_session_dataset": "model",
    "to_pynapple": "pynapple",
    "fraction_significant_responses": "responses",
    "image_selectivity": "responses",
    "lifetime_sparseness": "responses",
    "reliability": "responses",
    "stimulus_response": "responses",
    "trial_response": "responses",
    "catalog": "sessions",
    "combine_by_cell": "sessions",
    "map_sessions": "sessions",
    "open_multiplane_session": "sessions",
    "open_sessions": "sessions",
    "plane_dataset": "sessions",
    "accessors": "accessors",
    "behavior": "behavior",
    "cache": "cache",
    "cells": "cells",
    "compat": "compat",
    "datasets": "datasets",
    "eye": "eye",
    "formats": "formats",
    "io": "io",
    "metrics": "metrics",
    "model": "model",
    "plotting": "plotting",
    "pynapple": "pynapple",
    "responses": "responses",
    "sessions": "sessions",
    "testing": "testing",
    "variables": "variables",
}
__getattr__, __dir__ = _lazy.attach(__name__, _LAZY)


def _register_accessor(xarray: Any) -> None:
    """Register ``ds.ophys`` on this xarray module (once; it may be a re-imported copy)."""
    import sys

    being_imported = sys.modules.get("ophys_xr.accessors")
    if being_imported is not None and not hasattr(being_imported, "OphysDatasetAccessor"):
        return  # it is importing xarray now; its decorator registers the accessor
    from ophys_xr.accessors import OphysDatasetAccessor

    if getattr(xarray.Dataset, "ophys", None) is None:
        xarray.register_dataset_accessor("ophys")(OphysDatasetAccessor)


_lazy.when_imported("xarray", _register_accessor)

if TYPE_CHECKING:  # the names as they are, for type checkers and IDEs
    from ophys_xr import datasets
    from ophys_xr.behavior import performance, reward_rate
    from ophys_xr.cache import ProjectCache
    from ophys_xr.cells import filter_events, roi_masks, segmentation_mask_image
    from ophys_xr.compat import BehaviorOphysSession, BehaviorSession
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
    "PermissionDeniedError",
    "ProjectCache",
    "RemoteReadError",
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
