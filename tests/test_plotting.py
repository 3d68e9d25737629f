"""ophys_xr.plotting: each plot is rendered headless and holds what it should."""

from __future__ import annotations

import subprocess
import sys

import dask.array as da
import matplotlib
import numpy as np
import pytest
import xarray as xr
from scipy import stats

matplotlib.use("Agg")  # headless, before pyplot is imported

import matplotlib.pyplot as plt
from _dask import raise_if_dask_computes

import ophys_xr
from ophys_xr import MissingDataError, OptionError, SchemaError, plotting
from ophys_xr.backends import _arrays
from ophys_xr.testing import simulate_session, write_session_nwb


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def tiny(tiny_path):
    ds = ophys_xr.open_session(tiny_path)
    yield ds
    ds.close()


@pytest.fixture(scope="module")
def sim():
    return simulate_session(n_cells=6, minutes=4.0, seed=3, chunk_frames=500)


def _render(obj) -> None:
    """Draw the figure (catches errors matplotlib only raises at draw time)."""
    fig = obj if isinstance(obj, matplotlib.figure.Figure) else obj.figure
    fig.canvas.draw()


def test_import_does_not_import_matplotlib() -> None:
    code = ("import sys, ophys_xr, ophys_xr.plotting; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


# ---- ROI masks ----------------------------------------------------------------------------


def _overlay_boxes(ax) -> list[tuple[int, int, int, int]]:
    """(r0, r1, c0, c1) pixel boxes of the overlay images, from their extents (pixel units)."""
    boxes = []
    for im in ax.images[1:]:
        left, right, bottom, top = im.get_extent()
        boxes.append((round(top + 0.5), round(bottom + 0.5), round(left + 0.5),
                      round(right + 0.5)))
    return boxes


def _overlay_color(im) -> tuple[float, ...]:
    rgba = np.asarray(im.get_array())
    colors = np.unique(rgba[rgba[..., 3] > 0][:, :3], axis=0)
    assert len(colors) == 1  # one colour per ROI
    return tuple(colors[0])


def test_roi_masks_filled_on_the_fixture(tiny) -> None:
    ax = plotting.plot_roi_masks(tiny)
    _render(ax)
    background = ax.images[0]
    assert background.get_array().shape == (tiny.sizes["row"], tiny.sizes["column"]) == (512, 452)
    np.testing.assert_array_equal(background.get_array(), tiny.max_projection.values)
    assert background.get_cmap().name == "gray"
    masks = tiny.roi_mask.values
    ids = tiny.cell_specimen_id.values
    overlays = ax.images[1:]
    assert len(overlays) == ids.size == 4
    assert [im.get_label() for im in overlays] == [str(i) for i in ids]
    tab10 = matplotlib.colormaps["tab10"]
    colors = [_overlay_color(im) for im in overlays]
    np.testing.assert_allclose(colors, [tab10(k)[:3] for k in range(4)])
    assert len(set(colors)) == 4
    for im, mask, (r0, r1, c0, c1) in zip(overlays, masks, _overlay_boxes(ax), strict=True):
        rgba = np.asarray(im.get_array())
        # the overlay covers exactly the mask's pixels, at the mask's place
        assert mask[:r0].sum() == mask[r1:].sum() == mask[:, :c0].sum() == mask[:, c1:].sum() == 0
        np.testing.assert_array_equal(rgba[..., 3] > 0, mask[r0:r1, c0:c1])
        np.testing.assert_allclose(rgba[..., 3][mask[r0:r1, c0:c1]], 0.5)
    assert ax.get_xlabel() == "column (pixel)"
    assert ax.get_ylabel() == "row (pixel)"
    assert ax.get_title() == "4 ROIs on max_projection"


def test_roi_masks_subset_outlines_in_mm(tiny) -> None:
    ids = tiny.cell_specimen_id.values[[2, 0]]
    ax = plotting.plot_roi_masks(tiny, ids, outline=True, physical_units=True, cmap="tab10",
                                 image="average_projection")
    _render(ax)
    spacing = tiny.row.attrs["spacing"]
    np.testing.assert_allclose(ax.images[0].get_extent(),
                               [-0.5 * spacing, 451.5 * spacing, 511.5 * spacing, -0.5 * spacing])
    np.testing.assert_array_equal(ax.images[0].get_array(), tiny.average_projection.values)
    assert len(ax.images) == 1
    contours = ax.collections
    assert [c.get_label() for c in contours] == [str(i) for i in ids]
    tab10 = matplotlib.colormaps["tab10"]
    for k, (contour, csid) in enumerate(zip(contours, ids, strict=True)):
        np.testing.assert_allclose(contour.get_edgecolor()[0], tab10(k))
        mask = tiny.roi_mask.sel(cell_specimen_id=csid).values
        rows, cols = np.nonzero(mask)
        verts = np.concatenate([p.vertices for p in contour.get_paths()]) / spacing
        # the 0.5 contour runs half a pixel outside the outermost mask pixel centres
        lo, hi = verts.min(axis=0), verts.max(axis=0)
        assert lo[0] >= cols.min() - 1
        assert hi[0] <= cols.max() + 1
        assert lo[1] >= rows.min() - 1
        assert hi[1] <= rows.max() + 1
        assert lo[0] < cols.min()
        assert hi[1] > rows.max()
    assert ax.get_xlabel() == "column (mm)"
    assert ax.get_ylabel() == "row (mm)"


def test_roi_masks_cropped_field_of_view(sim) -> None:
    rows, cols = np.nonzero(sim.roi_mask.values.any(axis=0))
    r0, r1, c0, c1 = rows.min() - 2, rows.max() + 3, cols.min() - 1, cols.max() + 2
    assert r0 > 0 or c0 > 0  # a real crop
    crop = sim.isel(row=slice(r0, r1), column=slice(c0, c1))
    ax = plotting.plot_roi_masks(crop, alpha=1.0)
    np.testing.assert_allclose(ax.images[0].get_extent(),
                               [c0 - 0.5, c1 - 0.5, r1 - 0.5, r0 - 0.5])
    full = plotting.plot_roi_masks(sim, alpha=1.0, ax=plt.figure().add_subplot())
    # the ROIs are drawn at their place in the field of view, cropped or not
    assert _overlay_boxes(ax) == _overlay_boxes(full)
    assert len(_overlay_boxes(ax)) == sim.sizes["cell_specimen_id"]


def test_roi_masks_many_rois_continuous_cmap(sim) -> None:
    ax = plotting.plot_roi_masks(sim, cmap="viridis")
    n = sim.sizes["cell_specimen_id"]
    assert len(ax.images) == n + 1
    viridis = matplotlib.colormaps["viridis"]
    np.testing.assert_allclose([_overlay_color(im) for im in ax.images[1:]],
                               viridis(np.linspace(0, 1, n))[:, :3])


def test_roi_masks_empty_mask_warns(sim) -> None:
    first = sim.cell_specimen_id.values[0]
    emptied = sim.assign(roi_mask=sim.roi_mask.where(sim.cell_specimen_id != first, False))
    with pytest.warns(UserWarning, match=rf"cell_specimen_id \[{first}\] have no pixel"):
        ax = plotting.plot_roi_masks(emptied)
    assert len(ax.images) == sim.sizes["cell_specimen_id"]


def test_roi_masks_errors(tiny) -> None:
    with pytest.raises(MissingDataError, match=r"cell_specimen_id \[123\] not in this session"):
        plotting.plot_roi_masks(tiny, [123])
    with pytest.raises(MissingDataError, match="No variable 'roi_mask'.*roi_masks needs it"):
        plotting.plot_roi_masks(tiny.drop_vars("roi_mask"))
    with pytest.raises(MissingDataError, match="No variable 'max_projection'"):
        plotting.plot_roi_masks(tiny.drop_vars("max_projection"))
    no_spacing = tiny.copy()
    del no_spacing["row"].attrs["spacing"]
    assert "spacing" in tiny.row.attrs
    with pytest.raises(MissingDataError, match=r"physical_units=True needs the pixel size"):
        plotting.plot_roi_masks(no_spacing, physical_units=True)
    with pytest.raises(OptionError, match=r"alpha must be a number in \[0, 1\], got 2"):
        plotting.plot_roi_masks(tiny, alpha=2)
    with pytest.raises(OptionError, match="unknown colormap 'nope'"):
        plotting.plot_roi_masks(tiny, cmap="nope")
    with pytest.raises(OptionError, match="image must be 'max_projection' or"):
        plotting.plot_roi_masks(tiny, image="dff")
    with pytest.raises(OptionError, match="regularly spaced 'row'"):
        plotting.plot_roi_masks(tiny.isel(row=[0, 1, 5]))


# ---- heatmap ------------------------------------------------------------------------------


def _expected_order(values: np.ndarray, times: np.ndarray, sort: str | None) -> np.ndarray:
    """The row order, computed independently (pandas ranks; NaN last)."""
    import pandas as pd

    frame = pd.DataFrame(values)
    if sort is None:
        return np.arange(values.shape[1])
    if sort == "mean":
        key = frame.mean()
        return key.sort_values(ascending=False, kind="stable", na_position="last").index.values
    if sort == "max":
        key = frame.max()
        return key.sort_values(ascending=False, kind="stable", na_position="last").index.values
    key = pd.Series(times[frame.fillna(-np.inf).values.argmax(axis=0)])
    key[frame.isna().all().values] = np.nan
    return key.sort_values(kind="stable", na_position="last").index.values


@pytest.mark.parametrize("block", [None, 97])
@pytest.mark.parametrize("sort", ["mean", "max", "peak_time", None])
def test_heatmap_rows_follow_the_sort(tiny, sort, block, monkeypatch) -> None:
    if block is not None:  # the sort keys are accumulated over blocks of frames
        monkeypatch.setattr(plotting, "_BLOCK_FRAMES", block)
    ax = plotting.plot_dff_heatmap(tiny, sort=sort, time=slice(40.0, 90.0))
    _render(ax)
    window = tiny.dff.sel(time=slice(40.0, 90.0))
    values, times = window.values, window.time.values
    order = _expected_order(values, times, sort)
    im = ax.images[0]
    np.testing.assert_array_equal(np.asarray(im.get_array()), values[:, order].T)
    ids = tiny.cell_specimen_id.values[order]
    assert [t.get_text() for t in ax.get_yticklabels()] == [str(i) for i in ids]
    np.testing.assert_allclose(ax.get_yticks(), np.arange(4))
    dt = np.median(np.diff(tiny.time.values))
    np.testing.assert_allclose(im.get_extent(),
                               [times[0] - dt / 2, times[-1] + dt / 2, 3.5, -0.5])
    assert ax.get_xlabel() == "time (s)"
    assert ax.get_ylabel() == ("cell_specimen_id (Dataset order)" if sort is None
                               else f"cell_specimen_id (sorted by {sort})")
    colorbar = [a for a in ax.figure.axes if a is not ax]
    assert len(colorbar) == 1
    assert colorbar[0].get_ylabel() == "dff"


@pytest.mark.parametrize("sort", plotting.HEATMAP_SORTS)
def test_heatmap_sort_ties_across_blocks(sim, sort, monkeypatch) -> None:
    """Rounded traces tie: the first maximum of the window gives the peak time."""
    monkeypatch.setattr(plotting, "_BLOCK_FRAMES", 97)
    ds = sim.assign(dff=np.round(sim.dff * 2) / 2)
    window = ds.dff.sel(time=slice(30.0, 150.0))
    values = window.values
    assert ((values == values.max(axis=0)).sum(axis=0) > 1).any()  # ties of the maximum
    ax = plotting.plot_dff_heatmap(ds, time=(30.0, 150.0), sort=sort, events=None)
    order = _expected_order(values, window.time.values, sort)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [str(i) for i in ds.cell_specimen_id.values[order]]


def test_heatmap_sorts_differ_on_the_fixture(tiny) -> None:
    """The sort keys give different orders here, so the test above can tell them apart."""
    window = tiny.dff.sel(time=slice(40.0, 90.0))
    orders = {s: tuple(_expected_order(window.values, window.time.values, s))
              for s in ("mean", "max", "peak_time", None)}
    assert len(set(orders.values())) >= 3


def test_heatmap_cells_without_values_go_last(sim) -> None:
    ids = sim.cell_specimen_id.values
    data = sim.events.where(~sim.cell_specimen_id.isin(ids[[0, 3]]))  # cells 0 and 3 all NaN
    ds = sim.assign(events=data.transpose("time", "cell_specimen_id"))
    for sort in plotting.HEATMAP_SORTS:
        ax = plotting.plot_dff_heatmap(ds, data="events", sort=sort, events=None,
                                       time=(30, 60), colorbar=False)
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert labels[-2:] == [str(ids[0]), str(ids[3])]  # last, in the Dataset's order
        window = ds.events.sel(time=slice(30, 60))
        expected = _expected_order(window.values, window.time.values, sort)
        assert labels == [str(i) for i in ids[expected]]
        assert len(ax.figure.axes) == 1
        assert ax.get_legend() is None


def _marks(ax, kind: str) -> np.ndarray:
    (marks,) = [c for c in ax.collections if c.get_gid() == kind]
    assert marks.get_label() == kind
    segments = marks.get_segments()
    assert all(s[0, 0] == s[1, 0] for s in segments)  # vertical
    return np.array([s[0, 0] for s in segments])


@pytest.mark.parametrize("window", [(25.0, 130.0), (43.0, 107.7), None])
def test_heatmap_event_markers(tiny, window) -> None:
    kinds = ("changes", "sham_changes", "rewards", "licks", "omissions")
    ax = plotting.plot_dff_heatmap(tiny, time=window, events=kinds)
    _render(ax)
    times = tiny.dff.sel(time=slice(*window) if window else slice(None)).time.values
    t0, t1 = times[0], times[-1]

    def inside(t):
        t = np.asarray(t, dtype=float)
        return t[(t >= t0) & (t <= t1)]

    change = tiny.change_time.values
    expected = {
        "changes": inside(change[tiny.trials_is_change.values]),
        "sham_changes": inside(change[tiny.catch.values]),
        "rewards": inside(tiny.rewards_timestamps.values),
        "licks": inside(tiny.licks_timestamps.values),
        "omissions": inside(tiny.start_time.values[tiny.omitted.values == 1.0]),
    }
    for kind in kinds:
        np.testing.assert_array_equal(_marks(ax, kind), expected[kind])
    if window == (43.0, 107.7):  # a change just before the window, a reward just after
        assert 42.0 < tiny.change_time.values[5] < 43.0
        assert 107.7 < tiny.rewards_timestamps.values[1] < 108.7
        kinds_present = ("changes", "rewards", "licks", "omissions")
    else:
        kinds_present = kinds
    # the fixture has events of these kinds in the window (so the check above has content)
    assert all(expected[k].size for k in kinds_present), {k: v.size for k, v in expected.items()}
    if window is not None:
        assert expected["licks"].size < tiny.sizes["lick"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(kinds)
    # lines across every cell row; rewards and licks in the strip above row 0
    n = tiny.sizes["cell_specimen_id"]
    for kind in ("changes", "omissions"):
        (marks,) = [c for c in ax.collections if c.get_gid() == kind]
        assert {(s[0, 1], s[1, 1]) for s in marks.get_segments()} == {(-0.5, n - 0.5)}
    top = ax.get_ylim()[1]
    assert top < -0.5  # a strip above the first row
    for kind in ("rewards", "licks"):
        (marks,) = [c for c in ax.collections if c.get_gid() == kind]
        for s in marks.get_segments():
            assert top <= s[:, 1].min() < s[:, 1].max() <= -0.5


def test_heatmap_default_events_and_no_events(tiny) -> None:
    ax = plotting.plot_dff_heatmap(tiny)
    assert [c.get_gid() for c in ax.collections] == ["changes", "rewards", "licks", "omissions"]
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()).shape, (4, 3859))
    ax = plotting.plot_dff_heatmap(tiny, events=(), ax=plt.figure().add_subplot())
    assert len(ax.collections) == 0
    assert ax.get_ylim() == (3.5, -0.5)  # no event strip


def test_heatmap_reads_only_the_window(tmp_path, monkeypatch) -> None:
    path = write_session_nwb(tmp_path / "s.nwb", n_cells=5, minutes=3.0, seed=2)
    reads = []
    raw = _arrays.H5ArrayWrapper._raw

    def recording(self, key):
        reads.append((self.h5path, key))
        return raw(self, key)

    with ophys_xr.open_session(path) as ds:
        monkeypatch.setattr(_arrays.H5ArrayWrapper, "_raw", recording)
        frames = np.flatnonzero((ds.time.values >= 60.0) & (ds.time.values <= 75.0))
        with raise_if_dask_computes(max_computes=1) as scheduler:
            ax = plotting.plot_dff_heatmap(ds, time=(60.0, 75.0))
        assert scheduler.total_computes == 1
    dff_reads = [key for h5path, key in reads if h5path.endswith("dff/traces/data")]
    assert dff_reads
    assert [h5path for h5path, _ in reads if "traces" in h5path and "dff" not in h5path] == []
    read_frames = np.unique(np.concatenate([np.arange(ds.sizes["time"])[k[0]] for k in dff_reads]))
    np.testing.assert_array_equal(read_frames, frames)
    assert np.asarray(ax.images[0].get_array()).shape == (5, frames.size)


@pytest.mark.parametrize("block", [None, 50])
@pytest.mark.parametrize("max_columns", [1000, 7])
def test_heatmap_long_windows_are_binned(sim, max_columns, block, monkeypatch) -> None:
    import pandas as pd

    if block is not None:  # bins are averaged over blocks of frames
        monkeypatch.setattr(plotting, "_BLOCK_FRAMES", block)

    data = sim.dff.where((sim.time < 50) | (sim.time > 52))  # a gap: NaN frames in some bins
    ds = sim.assign(dff=data.transpose("time", "cell_specimen_id"))
    ax = plotting.plot_dff_heatmap(ds, time=(30.0, 200.0), sort="max", max_columns=max_columns)
    window = ds.dff.sel(time=slice(30.0, 200.0))
    factor = int(np.ceil(window.sizes["time"] / max_columns))
    assert factor > 1
    order = _expected_order(window.values, window.time.values, "max")
    frame = pd.DataFrame(window.values[:, order])
    expected = frame.groupby(np.arange(len(frame)) // factor).mean().values.T
    image = np.asarray(ax.images[0].get_array())
    assert image.shape == expected.shape
    assert image.shape[1] <= max_columns
    np.testing.assert_allclose(image, expected, rtol=1e-12)
    times = window.time.values
    dt = np.median(np.diff(sim.time.values))
    left, right, _, _ = ax.images[0].get_extent()
    assert left == pytest.approx(times[0] - dt / 2)
    assert right == pytest.approx(times[0] - dt / 2 + expected.shape[1] * factor * dt)
    assert ax.get_xlim() == pytest.approx((times[0] - dt / 2, times[-1] + dt / 2))
    full = plotting.plot_dff_heatmap(ds, time=(30.0, 200.0), sort="max", max_columns=None,
                                     ax=plt.figure().add_subplot())
    np.testing.assert_array_equal(np.asarray(full.images[0].get_array()),
                                  window.values[:, order].T)


def test_heatmap_errors(tiny) -> None:
    for bad in (0, 2.5, True):
        with pytest.raises(OptionError, match="max_columns must be a positive integer or None"):
            plotting.plot_dff_heatmap(tiny, max_columns=bad)
    with pytest.raises(OptionError, match=r"unknown sort 'median'; valid: \['mean', 'max', "
                                          r"'peak_time', None\]"):
        plotting.plot_dff_heatmap(tiny, sort="median")
    with pytest.raises(OptionError, match=r"unknown event kinds \['flashes'\]; valid:"):
        plotting.plot_dff_heatmap(tiny, events=["changes", "flashes"])
    with pytest.raises(OptionError, match=r"no imaging frame in the time window \(500, 600\); "
                                          r"the session's frames run from 17\.615 s"):
        plotting.plot_dff_heatmap(tiny, time=(500, 600))
    with pytest.raises(OptionError, match="without a step"):
        plotting.plot_dff_heatmap(tiny, time=slice(20, 30, 2))
    with pytest.raises(OptionError, match=r"time must be None, slice\(start, stop\)"):
        plotting.plot_dff_heatmap(tiny, time=30)
    with pytest.raises(MissingDataError, match="No variable 'licks_timestamps'.*events=\\['licks'"):
        plotting.plot_dff_heatmap(tiny.drop_vars("licks_timestamps"))
    with pytest.raises(MissingDataError, match="No variable 'dff'"):
        plotting.plot_dff_heatmap(tiny.drop_vars("dff"))
    with pytest.raises(MissingDataError, match="No variable 'trials_is_change'"):
        plotting.plot_dff_heatmap(tiny.drop_vars("trials_is_change"), events=["changes"])
    with pytest.raises(OptionError, match=r"dims \('time', 'cell_specimen_id'\)"):
        plotting.plot_dff_heatmap(tiny, data="motion_correction_x")
    with pytest.raises(OptionError, match="has no cell"):
        plotting.plot_dff_heatmap(tiny.isel(cell_specimen_id=[]))


def test_heatmap_many_cells_rank_ticks() -> None:
    ds = simulate_session(n_cells=60, n_invalid=0, minutes=1.0, fov=(128, 128))
    ax = plotting.plot_dff_heatmap(ds, time=(25, 35), sort="max")
    assert ax.get_ylabel() == "cell (sorted by max)"
    assert list(ax.get_yticks()) == [0, 12, 24, 35, 47, 59]
    window = ds.dff.sel(time=slice(25, 35)).values
    order = _expected_order(window, None, "max")
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), window[:, order].T)


# ---- event-locked mean --------------------------------------------------------------------


def _response(n_cells: int | None = 5, n_events: int = 40,
              event_dim: str = "stimulus_presentations_id", chunks: bool = False,
              seed: int = 0) -> xr.Dataset:
    """A synthetic cube of the shape ``ds.ophys.stimulus_response`` returns."""
    rng = np.random.default_rng(seed)
    t = np.round(np.arange(-0.5, 0.75, 1 / 31.0), 6)
    images = np.array(["im000", "im031", "omitted", "im106"], dtype=object)
    names = images[rng.integers(0, images.size, n_events)]
    gain = {"im000": 0.2, "im031": 0.5, "omitted": 0.0, "im106": 1.0}
    shape = (n_events, t.size)
    base = np.array([gain[n] for n in names])[:, None] * np.exp(-((t - 0.2) ** 2) / 0.02)
    dims: tuple[str, ...] = (event_dim, "eventlocked_timestamps")
    if n_cells is None:
        cube = base + rng.normal(0, 0.1, shape)
    else:
        cube = base[None] * rng.uniform(0.5, 1.5, (n_cells, 1, 1)) + rng.normal(
            0, 0.1, (n_cells, *shape))
        dims = ("cell_specimen_id", *dims)
    cube[..., 0, :3] = np.nan  # a few missing samples (event 0, edge of the session)
    data = da.from_array(cube, chunks=(2, 7, -1)[-cube.ndim:]) if chunks else cube
    coords = {event_dim: np.arange(n_events) * 3, "image_name": (event_dim, names),
              "eventlocked_timestamps": t, "is_change": (event_dim, rng.random(n_events) < 0.3)}
    if n_cells is not None:
        coords["cell_specimen_id"] = 1000 + np.arange(n_cells)
    out = xr.Dataset({"eventlocked_traces": (dims, data)}, coords=coords,
                     attrs={"data": "dff", "event": "images"})
    cells = dims[:-1]
    out["mean_response"] = out.eventlocked_traces.sel(eventlocked_timestamps=slice(0, 0.5)).mean(
        "eventlocked_timestamps").transpose(*cells)
    out["mean_baseline"] = out.eventlocked_traces.sel(eventlocked_timestamps=slice(-0.5, 0)).mean(
        "eventlocked_timestamps").transpose(*cells)
    return out


def _expected_groups(response: xr.Dataset, by: str) -> dict[str, tuple]:
    """Per group: mean and t-interval across events of the cell mean, with pandas/scipy."""
    import pandas as pd

    with pytest.warns(RuntimeWarning, match="Mean of empty slice"):  # the all-NaN samples
        traces = np.nanmean(response.eventlocked_traces.values, axis=0)
    groups = pd.Series(response[by].values)
    out = {}
    for name, index in groups.groupby(groups).groups.items():
        rows = pd.DataFrame(traces[np.asarray(index)])
        n = rows.count().values
        half = stats.t.ppf(0.975, n - 1) * rows.sem().values
        out[str(name)] = (rows.mean().values, rows.mean().values - half, rows.mean().values + half)
    return out


def _band_limits(band, x) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper edges of a fill_between band at x."""
    verts = band.get_paths()[0].vertices
    n = x.size
    lower = verts[1:n + 1]
    upper = verts[n + 2:2 * n + 2][::-1]
    np.testing.assert_allclose(lower[:, 0], x)
    np.testing.assert_allclose(upper[:, 0], x)
    return lower[:, 1], upper[:, 1]


def _group_lines(ax):
    return [line for line in ax.get_lines() if not line.get_label().startswith("_")]


@pytest.mark.parametrize("chunks", [False, True])
def test_stimulus_response_per_image(chunks) -> None:
    response = _response(chunks=chunks)
    before = response.copy(deep=True)
    with raise_if_dask_computes(max_computes=1):
        ax = plotting.plot_stimulus_response(response)
    _render(ax)
    expected = _expected_groups(_response(chunks=False), "image_name")
    lines = _group_lines(ax)
    assert [line.get_label() for line in lines] == sorted(expected) == [
        "im000", "im031", "im106", "omitted"]
    assert len(ax.collections) == len(lines) == 4
    x = response.eventlocked_timestamps.values
    for line, band in zip(lines, ax.collections, strict=True):
        mean, lo, hi = expected[line.get_label()]
        np.testing.assert_allclose(line.get_xdata(), x)
        np.testing.assert_allclose(line.get_ydata(), mean, rtol=1e-12, atol=1e-14)
        lower, upper = _band_limits(band, x)
        np.testing.assert_allclose(lower, lo, rtol=1e-10)
        np.testing.assert_allclose(upper, hi, rtol=1e-10)
        assert band.get_facecolor()[0][:3] == pytest.approx(matplotlib.colors.to_rgb(
            line.get_color()))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == sorted(expected)
    assert ax.get_legend().get_title().get_text() == "image_name"
    assert ax.get_xlabel() == "time from event (s)"
    assert ax.get_ylabel() == "dff, mean of 5 cells"
    xr.testing.assert_identical(response, before)


def test_stimulus_response_one_cell_and_ci_level() -> None:
    response = _response()
    ax = plotting.plot_stimulus_response(response, cell_specimen_id=1003, ci=0.5, by="is_change")
    traces = response.eventlocked_traces.sel(cell_specimen_id=1003).values
    flags = response.is_change.values
    lines = _group_lines(ax)
    assert [line.get_label() for line in lines] == ["False", "True"]
    x = response.eventlocked_timestamps.values
    for line, band, flag in zip(lines, ax.collections, [False, True], strict=True):
        rows = traces[flags == flag]
        with np.errstate(invalid="ignore"):
            mean = np.nanmean(rows, axis=0) if np.isnan(rows).any() else rows.mean(axis=0)
        np.testing.assert_allclose(line.get_ydata(), mean, rtol=1e-12)
        n = (~np.isnan(rows)).sum(axis=0)
        half = stats.t.ppf(0.75, n - 1) * np.nanstd(rows, axis=0, ddof=1) / np.sqrt(n)
        lower, upper = _band_limits(band, x)
        np.testing.assert_allclose(upper - lower, 2 * half, rtol=1e-10)
    assert ax.get_ylabel() == "dff, cell 1003"


def test_stimulus_response_one_dimensional_trials() -> None:
    response = _response(n_cells=None, event_dim="trials_id", chunks=True)
    assert "cell_specimen_id" not in response.dims
    ax = plotting.plot_stimulus_response(response.eventlocked_traces.rename("running_speed")
                                         .assign_attrs(units="cm/s"), by=None, ci=None)
    (line,) = _group_lines(ax)
    assert line.get_label() == "all events"
    values = response.eventlocked_traces.values
    expected = np.where(np.isnan(values[0]), values[1:].mean(axis=0), values.mean(axis=0))
    np.testing.assert_allclose(line.get_ydata(), expected, rtol=1e-12)
    assert len(ax.collections) == 0
    assert ax.get_ylabel() == "running_speed (cm/s)"
    assert ax.get_legend().get_title().get_text() == ""


def test_stimulus_response_small_groups_have_no_band_width() -> None:
    response = _response(n_events=6, seed=1)
    counts = {str(k): v for k, v in zip(*np.unique(response.image_name.values,
                                                   return_counts=True), strict=True)}
    assert 1 in counts.values()  # a group of one event: no interval
    ax = plotting.plot_stimulus_response(response)
    for line, band in zip(_group_lines(ax), ax.collections, strict=True):
        if counts[line.get_label()] == 1:
            assert len(band.get_paths()) == 0
        else:
            assert len(band.get_paths()) >= 1
            assert np.isfinite(np.concatenate([p.vertices for p in band.get_paths()])).all()


def test_stimulus_response_errors() -> None:
    response = _response()
    with pytest.raises(MissingDataError, match="No variable 'eventlocked_traces'"):
        plotting.plot_stimulus_response(response.drop_vars("eventlocked_traces"))
    with pytest.raises(MissingDataError, match=r"no coordinate 'image_index' to group the "
                                               r"events by; coordinates along "
                                               r"'stimulus_presentations_id'"):
        plotting.plot_stimulus_response(response, by="image_index")
    with pytest.raises(OptionError, match=r"by='cell_specimen_id' must lie along"):
        plotting.plot_stimulus_response(response, by="cell_specimen_id")
    for ci in (0, 1.5, True, "95%"):
        with pytest.raises(OptionError, match=r"ci must be a confidence level in \(0, 1\)"):
            plotting.plot_stimulus_response(response, ci=ci)
    with pytest.raises(MissingDataError, match="cell_specimen_id 7 not in this response, which "
                                               "has 5 cells"):
        plotting.plot_stimulus_response(response, cell_specimen_id=7)
    unmatched = response.assign_coords(cell_specimen_id=[1000, -1, -1, 1003, 1004])
    with pytest.raises(OptionError, match="cell_specimen_id -1 matches 2 ROIs"):
        plotting.plot_stimulus_response(unmatched, cell_specimen_id=-1)
    ax = plotting.plot_stimulus_response(unmatched, cell_specimen_id=1003)  # non-unique index
    np.testing.assert_array_equal(
        _group_lines(ax)[0].get_ydata(),
        _group_lines(plotting.plot_stimulus_response(response, cell_specimen_id=1003))[0]
        .get_ydata())
    with pytest.raises(MissingDataError, match="no cell_specimen_id coordinate"):
        plotting.plot_stimulus_response(response.drop_vars("cell_specimen_id"),
                                        cell_specimen_id=1003)
    one_d = _response(n_cells=None)
    with pytest.raises(OptionError, match="this response has no cells"):
        plotting.plot_stimulus_response(one_d, cell_specimen_id=1000)
    with pytest.raises(SchemaError, match="exactly one event dimension"):
        plotting.plot_stimulus_response(response.eventlocked_traces.isel(
            eventlocked_timestamps=0, drop=True).expand_dims(extra=2).expand_dims(
            eventlocked_timestamps=[0.0]))
    with pytest.raises(SchemaError, match="needs an 'eventlocked_timestamps' dimension"):
        plotting.plot_stimulus_response(response.rename(eventlocked_timestamps="t"))
    with pytest.raises(MissingDataError, match="has no 'eventlocked_timestamps' coordinate"):
        plotting.plot_stimulus_response(response.drop_vars("eventlocked_timestamps"))
    with pytest.raises(OptionError, match="no event to average"):
        plotting.plot_stimulus_response(response.isel(stimulus_presentations_id=[]))
    with pytest.raises(TypeError, match="expected an xarray.Dataset"):
        plotting.plot_stimulus_response(np.zeros((2, 3)))


# ---- performance --------------------------------------------------------------------------


def _labelled(ax) -> dict[str, matplotlib.lines.Line2D]:
    return {line.get_label(): line for line in ax.get_lines()}


def _spans(ax) -> list[tuple[float, float]]:
    return [(p.get_x(), p.get_x() + p.get_width()) for p in ax.patches
            if p.get_label().endswith("engaged")]


@pytest.mark.parametrize("precomputed", [False, True])
def test_performance_lines_and_engaged_spans(sim, precomputed) -> None:
    perf = ophys_xr.performance(sim)
    fig = plotting.plot_performance(perf if precomputed else sim)
    _render(fig)
    ax_rates, ax_d, ax_rr = fig.axes
    x = perf.trials_id.values
    for ax, names in ((ax_rates, ["hit_rate", "false_alarm_rate"]), (ax_d, ["rolling_dprime"]),
                      (ax_rr, ["reward_rate"])):
        lines = _labelled(ax)
        for name in names:
            np.testing.assert_array_equal(lines[name].get_xdata(), x)
            np.testing.assert_array_equal(lines[name].get_ydata(), perf[name].values)
    (threshold,) = [ln for ln in ax_rr.get_lines() if ln.get_label() == "engagement threshold"]
    assert threshold.get_ydata()[0] == 2.0
    engaged = perf.engaged.values
    assert 0 < engaged.sum() < engaged.size  # both kinds of trials, so the spans are checked
    edges = np.flatnonzero(np.diff(np.r_[0, engaged.astype(int), 0]))
    expected = [(x[a] - 0.5, x[b - 1] + 0.5) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    assert _spans(ax_rates) == _spans(ax_d) == expected
    assert ax_rates.get_ylabel() == "response rate"
    assert ax_d.get_ylabel() == "d′"
    assert ax_rr.get_ylabel() == "reward rate (rewards/min)"
    assert ax_d.get_xlabel() == "trial (trials_id)"
    legend = [t.get_text() for t in ax_rr.get_legend().get_texts()]
    assert legend == ["engaged", "rolling_dprime", "reward_rate", "engagement threshold"]


def test_performance_fixture_threshold_and_given_axes(tiny) -> None:
    fig = plotting.plot_performance(tiny, engaged_trial_reward_rate_threshold=1.0)
    perf = ophys_xr.performance(tiny, engaged_trial_reward_rate_threshold=1.0)
    assert perf.engaged.values.any()
    ax_rates, _, ax_rr = fig.axes
    runs = np.flatnonzero(np.diff(np.r_[0, perf.engaged.values.astype(int), 0])).reshape(-1, 2)
    x = perf.trials_id.values
    assert _spans(ax_rates) == [(x[a] - 0.5, x[b - 1] + 0.5) for a, b in runs]
    np.testing.assert_array_equal(_labelled(ax_rr)["reward_rate"].get_ydata(),
                                  perf.reward_rate.values)
    assert _labelled(ax_rr)["engagement threshold"].get_ydata()[0] == 1.0
    default = plotting.plot_performance(tiny)
    assert _spans(default.axes[0]) == []  # no trial of the fixture is engaged at 2 rewards/min
    other, axes = plt.subplots(2, 1)
    assert plotting.plot_performance(tiny, ax=axes) is other
    assert len(other.axes) == 3


def test_performance_errors(tiny) -> None:
    perf = ophys_xr.performance(tiny)
    with pytest.raises(MissingDataError, match="No variable 'hit_rate'.*plot_performance"):
        plotting.plot_performance(perf.drop_vars("hit_rate"))
    with pytest.raises(MissingDataError, match="No variable 'hit'.*performance needs it"):
        plotting.plot_performance(tiny.drop_vars("hit"))
    with pytest.raises(OptionError, match="applies when a session Dataset is given"):
        plotting.plot_performance(perf, engaged_trial_reward_rate_threshold=3.0)
    with pytest.raises(OptionError, match="ax must be two Axes"):
        plotting.plot_performance(perf, ax=plt.figure().add_subplot())
    with pytest.raises(TypeError, match="expects a session Dataset"):
        plotting.plot_performance(perf.hit_rate)


# ---- no side effects ----------------------------------------------------------------------


def test_plots_do_not_change_the_dataset_nor_show(sim, monkeypatch) -> None:
    def no_show(*args, **kwargs):
        raise AssertionError("plt.show() called")

    monkeypatch.setattr(plt, "show", no_show)
    monkeypatch.setattr(matplotlib.figure.Figure, "show", no_show)
    before = sim.copy(deep=True)
    plotting.plot_roi_masks(sim, outline=True)
    plotting.plot_roi_masks(sim, sim.cell_specimen_id.values[:2])
    plotting.plot_dff_heatmap(sim, time=(30, 90))
    plotting.plot_performance(sim)
    xr.testing.assert_identical(sim, before)
    assert len(plt.get_fignums()) == 4


def test_accessor_forwards_to_the_plotting_functions(tiny) -> None:
    """``ds.ophys.plot_*`` draw what the functions of ``ophys_xr.plotting`` draw."""
    pairs = [
        (tiny.ophys.plot_roi_masks(outline=True), plotting.plot_roi_masks(tiny, outline=True)),
        (tiny.ophys.plot_dff_heatmap(sort="max"), plotting.plot_dff_heatmap(tiny, sort="max")),
    ]
    for mine, theirs in pairs:
        assert len(mine.images) == len(theirs.images)
        np.testing.assert_array_equal(mine.images[0].get_array(), theirs.images[0].get_array())
        assert len(mine.lines) == len(theirs.lines)
        assert len(mine.collections) == len(theirs.collections)
    fig = tiny.ophys.plot_performance()
    expected = plotting.plot_performance(tiny)
    for mine, theirs in zip(fig.axes, expected.axes, strict=True):
        for a, b in zip(mine.lines, theirs.lines, strict=True):
            np.testing.assert_array_equal(a.get_ydata(), b.get_ydata())
    response = tiny.ophys.stimulus_response(event="images")
    ax = response.ophys.plot_stimulus_response(by="image_name")
    labels = sorted(t.get_text() for t in ax.get_legend().get_texts())
    assert labels == sorted(np.unique(response.image_name.values).tolist())
