"""Response metrics of visual_behavior_analysis (VBA) ``cell_metrics``.

Group means, image selectivity, lifetime sparseness, reliability and the fraction of
significant responses; where they differ from VBA on purpose, the docstring says so.
"""

from __future__ import annotations

import numpy as np

from ophys_xr import _options

__all__ = [
    "fraction_significant",
    "group_labels",
    "group_sums",
    "grouped_lifetime_sparseness",
    "grouped_reliability",
    "image_preference",
    "lifetime_sparseness",
    "reliability",
    "selectivity_index",
]


def group_sums(
    values: np.ndarray, codes: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sums and counts of the non-NaN values of each group along the last axis.

    Parameters
    ----------
    values : numpy.ndarray
        (..., n_events).
    codes : numpy.ndarray
        int (n_events,) group of each event in ``[0, n_groups)``; -1 = in no group.
    n_groups : int
        Number of groups.

    Returns
    -------
    sums, counts : numpy.ndarray
        float64 / int64 (..., n_groups).
    """
    v = np.asarray(values, dtype=np.float64)
    c = np.asarray(codes, dtype=np.int64)
    sums = np.zeros(v.shape[:-1] + (n_groups,))
    counts = np.zeros(v.shape[:-1] + (n_groups,), dtype=np.int64)
    ok = ~np.isnan(v)
    for g in range(n_groups):
        sel = c == g
        # C order: the sum runs along a contiguous last axis whatever the leading dims
        part = np.ascontiguousarray(np.where(ok[..., sel], v[..., sel], 0.0))
        sums[..., g] = part.sum(axis=-1)
        counts[..., g] = ok[..., sel].sum(axis=-1)
    return sums, counts


def lifetime_sparseness(image_means: np.ndarray) -> np.ndarray:
    """Lifetime sparseness over the image-mean responses, last axis (VBA ``cell_metrics``).

    ``(1 - (1/N) (Σ r)² / Σ r²) / (1 - 1/N)`` with ``N`` images (VBA
    ``compute_lifetime_sparseness``, Vinje & Gallant 2000 / Froudarakis et al. 2014).

    Parameters
    ----------
    image_means : numpy.ndarray
        (..., n_images) mean response of each image.

    Returns
    -------
    numpy.ndarray
        float64 (...).  NaN image means are left out (N counts the others); NaN when fewer
        than two images remain or every response is 0 (VBA: NaN with a warning).
    """
    r = np.asarray(image_means, dtype=np.float64)
    ok = ~np.isnan(r)
    n = ok.sum(axis=-1).astype(np.float64)
    s = np.where(ok, r, 0.0).sum(axis=-1)
    s2 = np.where(ok, r * r, 0.0).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ls = (1 - (1 / n) * (s * s / s2)) / (1 - (1 / n))
    return np.where((n >= 2) & (s2 > 0), ls, np.nan)


def selectivity_index(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(a - b) / (a + b)`` (VBA image selectivity index); NaN where ``a + b == 0``.

    Parameters
    ----------
    a, b : numpy.ndarray
        Mean responses (broadcast together), e.g. of the preferred and the non-preferred
        image.

    Returns
    -------
    numpy.ndarray
        float64.
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (x - y) / (x + y)
    return np.where(x + y == 0, np.nan, out)


def reliability(traces: np.ndarray, min_events: int = 6) -> np.ndarray:
    """Mean pairwise Pearson correlation between event-locked traces (VBA ``reliability``).

    VBA ``compute_reliability_vectorized``: ``nanmean`` of the lower triangle of
    ``np.corrcoef(traces)``, NaN unless there are more than 5 traces.  Computed without the
    n_events² matrix: with each trace centred and scaled to unit norm (``u_i``), the sum of
    the pairwise correlations is ``(|Σ u_i|² - n) / 2``.

    Parameters
    ----------
    traces : numpy.ndarray
        (..., n_events, n_points): one row per event, the response-window points.
    min_events : int, default 6
        NaN with fewer events (VBA: ``traces.shape[0] > 5``).

    Returns
    -------
    numpy.ndarray
        float64 (...).  Traces with a NaN or with zero variance have NaN correlations in
        ``np.corrcoef``; ``nanmean`` skips them, and so does this (only the other traces'
        pairs count).  NaN when fewer than two such traces remain.  Every sum runs along a
        contiguous last axis, so the result does not depend on the leading dimensions
        (blocks of cells give the same values as all cells at once).
    """
    min_events = _options.integer(min_events, "min_events", minimum=2)
    x = np.ascontiguousarray(traces, dtype=np.float64)
    if x.ndim < 2:
        msg = f"traces must be (..., n_events, n_points), got shape {x.shape}"
        raise ValueError(msg)
    n_events, n_points = x.shape[-2:]
    centred = x - (x.sum(axis=-1) / n_points)[..., np.newaxis]
    norm = np.sqrt((centred * centred).sum(axis=-1))
    valid = np.isfinite(norm) & (norm > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = np.where(valid[..., np.newaxis], centred / norm[..., np.newaxis], 0.0)
    total = np.ascontiguousarray(np.swapaxes(unit, -1, -2)).sum(axis=-1)  # (..., n_points)
    n = valid.sum(axis=-1).astype(np.float64)
    pairs = (total * total).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (pairs - n) / (n * (n - 1))
    return np.where((n >= 2) & (n_events >= min_events), out, np.nan)


def image_preference(
    values: np.ndarray, *, codes: np.ndarray, n_groups: int
) -> tuple[np.ndarray, ...]:
    """Image means, preferred / non-preferred image and the two VBA selectivity indices.

    The block kernel of ``ophys_xr.image_selectivity`` (VBA ``cell_metrics``).

    Parameters
    ----------
    values : numpy.ndarray
        (..., n_events) mean responses, events last.
    codes : numpy.ndarray
        int (n_events,) image of each event in ``[0, n_groups)``; -1 = no image.
    n_groups : int
        Number of images.

    Returns
    -------
    means : numpy.ndarray
        float64 (..., n_groups): mean response of each image, NaN skipped (NaN for an
        image without a value).
    pref, non_pref : numpy.ndarray
        int64 (...): the image with the largest / smallest mean (the first on ties, as
        ``argmax`` / ``argmin``); -1 where every image mean is NaN.
    pref_non_pref : numpy.ndarray
        float64 (...): :func:`selectivity_index` of the preferred and the non-preferred
        image means (VBA ``get_image_selectivity_index_pref_non_pref``).
    one_vs_all : numpy.ndarray
        float64 (...): :func:`selectivity_index` of the preferred image mean and the mean
        over all events of the other images (VBA
        ``get_image_selectivity_index_one_vs_all``).
    """
    sums, counts = group_sums(values, codes, n_groups)
    ok = counts > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        means = np.where(ok, sums / counts, np.nan)
    none = ~ok.any(axis=-1)
    pref = np.where(none, -1, np.argmax(np.where(ok, means, -np.inf), axis=-1))
    non_pref = np.where(none, -1, np.argmin(np.where(ok, means, np.inf), axis=-1))

    def pick(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
        got = np.take_along_axis(a, np.maximum(idx, 0)[..., np.newaxis], axis=-1)[..., 0]
        return np.where(idx < 0, np.nan, got)

    pref_mean = pick(means, pref)
    rest_n = counts.sum(axis=-1) - pick(counts.astype(np.float64), pref)
    rest_s = sums.sum(axis=-1) - pick(sums, pref)
    with np.errstate(divide="ignore", invalid="ignore"):
        rest_mean = np.where(rest_n > 0, rest_s / rest_n, np.nan)
    return (means, pref, non_pref,
            selectivity_index(pref_mean, pick(means, non_pref)),
            selectivity_index(pref_mean, rest_mean))


def group_labels(idx: np.ndarray, *, names: np.ndarray) -> np.ndarray:
    """The name of each group index, ``""`` where the index is -1.

    Parameters
    ----------
    idx : numpy.ndarray
        int group indices (any shape), e.g. ``pref`` of :func:`image_preference`.
    names : numpy.ndarray
        (n_groups,) group names.

    Returns
    -------
    numpy.ndarray
        object, the shape of ``idx``.
    """
    labels = np.asarray(names, dtype=object)
    out = np.empty(idx.shape, dtype=object)
    out[...] = ""
    ok = idx >= 0
    out[ok] = labels[idx[ok]]
    return out


def grouped_lifetime_sparseness(
    values: np.ndarray, *, codes: np.ndarray, n_groups: int
) -> np.ndarray:
    """:func:`lifetime_sparseness` of the group (image) means of the mean responses.

    The block kernel of ``ophys_xr.lifetime_sparseness``.

    Parameters
    ----------
    values : numpy.ndarray
        (..., n_events) mean responses, events last.
    codes : numpy.ndarray
        int (n_events,) group of each event in ``[0, n_groups)``; -1 = in no group.
    n_groups : int
        Number of groups.

    Returns
    -------
    numpy.ndarray
        float64 (...).
    """
    sums, counts = group_sums(values, codes, n_groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = np.where(counts > 0, sums / counts, np.nan)
    return lifetime_sparseness(means)


def grouped_reliability(
    cube: np.ndarray,
    *,
    codes: np.ndarray,
    n_groups: int,
    points: slice,
    min_events: int,
    grouped: bool,
) -> np.ndarray:
    """:func:`reliability` of the response-window traces, over all events or per group.

    The block kernel of ``ophys_xr.reliability``.

    Parameters
    ----------
    cube : numpy.ndarray
        (..., n_events, n_offsets) event-locked traces.
    codes : numpy.ndarray
        int (n_events,) group of each event in ``[0, n_groups)``; all 0 for one group.
    n_groups : int
        Number of groups.
    points : slice
        The response-window points of the last axis.
    min_events : int
        Passed to :func:`reliability`.
    grouped : bool
        True: one value per group (last axis); False: the value of group 0.

    Returns
    -------
    numpy.ndarray
        float64 (..., n_groups) or (...).
    """
    x = cube[..., points]  # (..., events, points)
    out = [reliability(x[..., codes == g, :], min_events) for g in range(n_groups)]
    return np.stack(out, axis=-1) if grouped else out[0]


def fraction_significant(
    p: np.ndarray, *, codes: np.ndarray, n_groups: int, alpha: float, grouped: bool
) -> np.ndarray:
    """Fraction of the events with a p-value whose p-value is below ``alpha``.

    The block kernel of ``ophys_xr.fraction_significant_responses``.  **Not as VBA**
    (``get_fraction_significant_p_value_gray_screen``): the denominator counts the events
    with a p-value, NaN p-values are left out instead of counting as not significant.

    Parameters
    ----------
    p : numpy.ndarray
        (..., n_events) p-values, events last; NaN = none.
    codes : numpy.ndarray
        int (n_events,) group of each event in ``[0, n_groups)``; all 0 for one group.
    n_groups : int
        Number of groups.
    alpha : float
        Significance level (``p < alpha`` is significant).
    grouped : bool
        True: one value per group (last axis); False: the value of group 0.

    Returns
    -------
    numpy.ndarray
        float64 (..., n_groups) or (...); NaN where no event has a p-value.
    """
    finite = ~np.isnan(p)
    sig = np.where(finite, p < alpha, False)
    out = []
    for g in range(n_groups):
        sel = codes == g
        n = finite[..., sel].sum(axis=-1)
        k = sig[..., sel].sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append(np.where(n > 0, k / n, np.nan))
    return np.stack(out, axis=-1) if grouped else out[0]
