"""ophys_xr.eye: the blink filter's parameter and missing-data errors."""

from __future__ import annotations

import pytest

import ophys_xr
from ophys_xr import MissingDataError, OptionError


def test_bad_blink_parameters(tiny_path) -> None:
    with ophys_xr.open_session(tiny_path) as ds:
        with pytest.raises(OptionError, match="z_threshold"):
            ds.ophys.blink_filter(z_threshold=-1)
        with pytest.raises(OptionError, match="dilation_frames"):
            ds.ophys.blink_filter(dilation_frames=1.5)


def test_no_eye_tracking(tiny_path) -> None:
    with ophys_xr.open_session(tiny_path) as ds:
        no_eye = ds.drop_dims("eye_frame")
        with pytest.raises(MissingDataError, match="no eye tracking"):
            no_eye.ophys.blink_filter()
