"""Response metrics (``ophys_xr.metrics``).

The references are visual_behavior_analysis (VBA) ``cell_metrics`` (image selectivity,
lifetime sparseness, reliability, fraction of significant responses) written out here.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

import ophys_xr
from ophys_xr import metrics, responses
from ophys_xr.testing import simulate_session

TREL = "eventlocked_timestamps"
PRES = "stimulus_presentations_id"


# ---------------------------------------------------------------------------------------
# VBA written out (the references)
# ---------------------------------------------------------------------------------------


def vba_lifetime_sparseness(image_responses: np.ndarray) -> float:
    n = float(len(image_responses))
    return (1 - (1 / n) * (np.power(image_responses.sum(axis=0), 2)
                           / np.power(image_responses, 2).sum(axis=0))) / (1 - (1 / n))


def vba_reliability(traces: np.ndarray) -> float:
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        corrmat = np.corrcoef(traces)
        m = traces.shape[0]
        lower = np.where(np.tril(np.ones([m, m]), k=-1))
        return float(np.nanmean(corrmat[lower[0], lower[1]]))


# ---------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim() -> xr.Dataset:
    """A small simulated session, traces in memory."""
    return simulate_session(n_cells=4, minutes=2.0, seed=3).load()


# ---------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------


def _hand_response() -> xr.Dataset:
    """2 cells x 8 presentations of images A, A, B, B, B, C, C, D (D all-NaN for cell 1)."""
    mean_response = np.array([
        [1.0, 3.0, 0.5, 0.5, 0.5, 4.0, 2.0, 0.0],
        [0.2, 0.2, 0.1, 0.1, 0.1, 0.2, 0.2, np.nan],
    ])
    p = np.array([[0.01, 0.2, 0.04, np.nan, 0.5, 0.001, 0.9, 0.3],
                  [0.06, 0.05, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]])
    rng = np.random.default_rng(2)
    grid = np.linspace(-0.5, 0.7, 13)
    traces = rng.standard_normal((2, 8, 13))
    return xr.Dataset(
        {"mean_response": (("cell_specimen_id", PRES), mean_response),
         "p_value_gray_screen": (("cell_specimen_id", PRES), p),
         "eventlocked_traces": (("cell_specimen_id", PRES, TREL), traces)},
        coords={"cell_specimen_id": [10, 20], PRES: np.arange(8), TREL: grid,
                "image_name": (PRES, np.array(list("AABBBCCD"), dtype=object))},
        attrs={"response_window": 0.5},
    )


def test_image_selectivity_on_a_hand_example() -> None:
    s = ophys_xr.image_selectivity(_hand_response())
    np.testing.assert_allclose(s.image_mean_response.values,
                               [[2.0, 0.5, 3.0, 0.0], [0.2, 0.1, 0.2, np.nan]])
    np.testing.assert_array_equal(s.pref_image, ["C", "A"])  # cell 1: A and C tie -> first
    np.testing.assert_array_equal(s.non_pref_image, ["D", "B"])
    np.testing.assert_allclose(s.image_selectivity_index, [(3 - 0) / (3 + 0), 0.1 / 0.3])
    rest0 = np.mean([1.0, 3.0, 0.5, 0.5, 0.5, 0.0])  # presentations of the other images
    rest1 = np.mean([0.1, 0.1, 0.1, 0.2, 0.2])
    np.testing.assert_allclose(s.image_selectivity_index_one_vs_all,
                               [(3 - rest0) / (3 + rest0), (0.2 - rest1) / (0.2 + rest1)])


def test_lifetime_sparseness_on_a_hand_example() -> None:
    ls = ophys_xr.lifetime_sparseness(_hand_response())
    expected0 = vba_lifetime_sparseness(np.array([2.0, 0.5, 3.0, 0.0]))
    expected1 = vba_lifetime_sparseness(np.array([0.2, 0.1, 0.2]))  # the NaN image left out
    np.testing.assert_allclose(ls.values, [expected0, expected1])
    # by hand: r = (2, .5, 3, 0): (1 - (1/4) 5.5**2 / 13.25) / (3/4)
    assert ls.values[0] == pytest.approx((1 - 0.25 * 5.5**2 / 13.25) / 0.75)
    dims = ("cell_specimen_id", PRES)
    one_hot = xr.Dataset({"mean_response": (dims, [[0.0, 0.0, 5.0]])},
                         coords={"image_name": (PRES, ["a", "b", "c"])})
    assert ophys_xr.lifetime_sparseness(one_hot).item() == pytest.approx(1.0)
    flat = one_hot.assign(mean_response=(dims, [[2.0, 2.0, 2.0]]))
    assert ophys_xr.lifetime_sparseness(flat).item() == pytest.approx(0.0)


def test_reliability_equals_the_vba_corrcoef() -> None:
    r = _hand_response()
    window = (r[TREL].values >= 0) & (r[TREL].values <= 0.5)
    got = ophys_xr.reliability(r, min_events=6)
    for c in range(2):
        expected = vba_reliability(r.eventlocked_traces.values[c][:, window])
        assert got.values[c] == pytest.approx(expected, abs=1e-12)
    # a flat trace (zero variance) is left out, as nanmean leaves out its NaN correlations
    traces = r.eventlocked_traces.values.copy()
    traces[0, 3] = 1.0
    flat = r.assign(eventlocked_traces=r.eventlocked_traces.copy(data=traces))
    expected = vba_reliability(traces[0][:, window])
    assert float(ophys_xr.reliability(flat).values[0]) == pytest.approx(expected, abs=1e-12)
    by_image = ophys_xr.reliability(r, by="image_name", min_events=2)
    assert by_image.dims == ("cell_specimen_id", "image_name")
    expected_b = vba_reliability(r.eventlocked_traces.values[1][2:5][:, window])
    assert float(by_image.sel(cell_specimen_id=20, image_name="B")) == pytest.approx(expected_b)
    assert np.isnan(by_image.sel(image_name="D")).all()  # one event
    assert np.isnan(ophys_xr.reliability(r.isel({PRES: slice(0, 5)}))).all()  # < 6 events


def test_reliability_identical_traces_is_one(sim: xr.Dataset) -> None:
    r = ophys_xr.stimulus_response(sim, "dff", "images")
    one = r.eventlocked_traces.isel({PRES: [0]}).values
    same = r.assign(eventlocked_traces=r.eventlocked_traces.copy(
        data=np.repeat(one, r.sizes[PRES], axis=1)))
    np.testing.assert_allclose(ophys_xr.reliability(same).values, 1.0)


def test_fraction_significant_on_a_hand_example() -> None:
    f = ophys_xr.fraction_significant_responses(_hand_response())
    np.testing.assert_allclose(f.values, [3 / 7, 0.0])  # NaN p-values left out
    g = ophys_xr.fraction_significant_responses(_hand_response(), alpha=0.1, by="image_name")
    np.testing.assert_allclose(g.sel(cell_specimen_id=10).values, [0.5, 0.5, 0.5, 0.0])
    np.testing.assert_allclose(g.sel(cell_specimen_id=20).values, [1.0, 0.0, 0.0, 0.0])


def test_responses_re_exports_the_metrics() -> None:
    for name in metrics.__all__:
        assert getattr(responses, name) is getattr(metrics, name) is getattr(ophys_xr, name)
