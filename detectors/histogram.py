"""Fine-bin histograms: the mergeable summaries every numeric and categorical statistic reads.

A numeric feature is binned on edges fitted once from the reference: interior
quantiles plus the reference minimum and (just above) the reference maximum, so
bin 0 holds values below the reference range, the last real bin holds values
above it, and the reference itself never falls into either. Ties collapse
duplicate edges, so a discrete feature gets one bin per value.

Several features are held together as 2-D arrays padded to a common width:
``edges`` with ``+inf`` (a padded bin never receives a count), categorical
counts with zeros. Counts add up, so panes sum to windows and partial summaries
from several partitions sum to one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_FINE_BINS = 500


def quantile_edges(values: np.ndarray, n_bins: int = DEFAULT_FINE_BINS) -> np.ndarray:
    """Bin edges for one feature from its finite reference values.

    Returns ascending unique edges ``[min, q_1, ..., q_{n-1}, max, max⁺]`` where
    ``max⁺`` is the next float above the maximum; an empty input gives no edges
    (every value then falls in bin 0).
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.empty(0, dtype=np.float64)
    quantiles = np.quantile(finite, np.linspace(0.0, 1.0, n_bins + 1), method="inverted_cdf")
    top = np.nextafter(quantiles[-1], np.inf)
    return np.unique(np.append(quantiles, top))


def pad_edges(edges: list[np.ndarray]) -> np.ndarray:
    """Stack per-feature edges into one ``(F, K)`` array padded with ``+inf``."""
    width = max((e.size for e in edges), default=0)
    out = np.full((len(edges), width), np.inf, dtype=np.float64)
    for row, e in enumerate(edges):
        out[row, : e.size] = e
    return out


def count_bins(indices: np.ndarray, n_bins: int) -> np.ndarray:
    """Counts ``(F, n_bins)`` of bin indices ``(F, n)``; negative indices are skipped.

    Raises ``ValueError`` when ``indices`` is not two-dimensional or holds an index of
    ``n_bins`` or more (it would be counted in the next feature's bins).
    """
    if indices.ndim != 2:
        raise ValueError(f"indices must be (features, rows), got shape {indices.shape}")
    if indices.size and int(indices.max()) >= n_bins:
        raise ValueError(f"bin index {int(indices.max())} is out of range for {n_bins} bins")
    n_features = indices.shape[0]
    offsets = np.arange(n_features, dtype=np.int64)[:, None] * n_bins
    flat = (indices + offsets)[indices >= 0]
    return np.bincount(flat, minlength=n_features * n_bins).reshape(n_features, n_bins)


@dataclass(frozen=True)
class NumericSummary:
    """Mergeable summary of F numeric features over fixed per-feature edges.

    ``counts[f, j]`` counts values of feature ``f`` in ``[edges[f, j-1],
    edges[f, j])`` (with ``edges[f, -1] = -inf``); ``shifted_sum`` and
    ``shifted_sum_sq`` are sums of ``x - shift`` and its square (``shift`` is
    the reference mean, which keeps the variance numerically stable);
    ``minimum``/``maximum`` are NaN for a feature with no values.
    """

    counts: np.ndarray
    shift: np.ndarray
    shifted_sum: np.ndarray
    shifted_sum_sq: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray

    @classmethod
    def empty(cls, edges: np.ndarray, shift: np.ndarray) -> NumericSummary:
        """The summary of no values."""
        n_features = edges.shape[0]
        zeros = np.zeros(n_features, dtype=np.float64)
        return cls(
            counts=np.zeros((n_features, edges.shape[1] + 1), dtype=np.int64),
            shift=np.asarray(shift, dtype=np.float64),
            shifted_sum=zeros,
            shifted_sum_sq=zeros.copy(),
            minimum=np.full(n_features, np.nan),
            maximum=np.full(n_features, np.nan),
        )

    @classmethod
    def from_columns(
        cls, columns: np.ndarray, edges: np.ndarray, shift: np.ndarray
    ) -> NumericSummary:
        """Summarize ``columns`` (``(F, n)``, NaN = missing) on ``edges`` (``(F, K)``).

        Each row is sorted once and the ``K`` edges are searched in it (sorting
        1M values costs about a quarter of searching them one by one in the
        edges); a value ``x`` counts in bin ``searchsorted(edges, x, side='right')``.
        """
        columns = np.asarray(columns, dtype=np.float64)
        if columns.ndim != 2 or columns.shape[0] != edges.shape[0]:
            raise ValueError(
                f"columns must have shape (F={edges.shape[0]}, n), got {columns.shape}"
            )
        shift = np.asarray(shift, dtype=np.float64)
        n_features, width = edges.shape
        ordered = np.sort(columns, axis=1)  # NaN last
        missing = np.isnan(columns)
        present = columns.shape[1] - missing.sum(axis=1)
        counts = np.zeros((n_features, width + 1), dtype=np.int64)
        minimum = np.full(n_features, np.nan)
        maximum = np.full(n_features, np.nan)
        for row in range(n_features):
            values = ordered[row, : present[row]]
            # values below each edge: bin j holds [edges[j-1], edges[j])
            below = np.searchsorted(values, edges[row], side="left")
            counts[row, :width] = np.diff(below, prepend=0)
            counts[row, width] = values.size - (below[-1] if width else 0)
            if values.size:
                minimum[row], maximum[row] = values[0], values[-1]
        centred = columns - shift[:, None]
        if missing.any():
            centred[missing] = 0.0
        return cls(
            counts=counts,
            shift=shift,
            shifted_sum=centred.sum(axis=1),
            shifted_sum_sq=np.einsum("ij,ij->i", centred, centred),
            minimum=minimum,
            maximum=maximum,
        )

    def merge(self, other: NumericSummary) -> NumericSummary:
        """The summary of both inputs together."""
        if self.counts.shape != other.counts.shape or not np.array_equal(self.shift, other.shift):
            raise ValueError("only summaries over the same edges and shift can be merged")
        return NumericSummary(
            counts=self.counts + other.counts,
            shift=self.shift,
            shifted_sum=self.shifted_sum + other.shifted_sum,
            shifted_sum_sq=self.shifted_sum_sq + other.shifted_sum_sq,
            minimum=np.fmin(self.minimum, other.minimum),
            maximum=np.fmax(self.maximum, other.maximum),
        )

    @property
    def n(self) -> np.ndarray:
        """Number of non-missing values per feature."""
        return self.counts.sum(axis=1)

    @property
    def mean(self) -> np.ndarray:
        """Mean per feature (NaN where there are no values)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.shift + self.shifted_sum / self.n

    @property
    def variance(self) -> np.ndarray:
        """Population variance per feature (NaN where there are no values)."""
        n = self.n
        with np.errstate(invalid="ignore", divide="ignore"):
            centred_mean = self.shifted_sum / n
            return np.maximum(self.shifted_sum_sq / n - centred_mean * centred_mean, 0.0)


def category_codes(n_vocabulary: int) -> tuple[int, int]:
    """Column indices of the pooled-rare and the unseen buckets for a vocabulary width."""
    return n_vocabulary, n_vocabulary + 1


@dataclass(frozen=True)
class CategoricalSummary:
    """Mergeable category counts of F categorical features.

    ``counts`` is ``(F, V + 2)``: columns ``0..V-1`` are each feature's
    reference vocabulary (padded with zeros), column ``V`` pools categories
    that were rare in the reference, column ``V + 1`` every category never seen
    in the reference.
    """

    counts: np.ndarray

    @classmethod
    def empty(cls, n_features: int, n_vocabulary: int) -> CategoricalSummary:
        """The summary of no values."""
        return cls(np.zeros((n_features, n_vocabulary + 2), dtype=np.int64))

    @classmethod
    def from_codes(cls, codes: np.ndarray, n_vocabulary: int) -> CategoricalSummary:
        """Summarize category codes ``(F, n)`` (negative = missing)."""
        codes = np.asarray(codes, dtype=np.int64)
        return cls(count_bins(codes, n_vocabulary + 2))

    def merge(self, other: CategoricalSummary) -> CategoricalSummary:
        """The summary of both inputs together."""
        if self.counts.shape != other.counts.shape:
            raise ValueError("only summaries over the same vocabularies can be merged")
        return CategoricalSummary(self.counts + other.counts)

    @property
    def n(self) -> np.ndarray:
        """Number of non-missing values per feature."""
        return self.counts.sum(axis=1)

    @property
    def unseen(self) -> np.ndarray:
        """Values per feature of categories never seen in the reference."""
        return self.counts[:, -1]


def finite_edge_count(edges: np.ndarray) -> np.ndarray:
    """Number of finite edges per feature, ``k_f``.

    Parameters
    ----------
    edges : numpy.ndarray, shape (F, K)
        Per-feature edges padded with ``+inf`` (:func:`pad_edges`).

    Returns
    -------
    numpy.ndarray of int, shape (F,)
        ``k_f``: bin ``k_f`` holds the values above the reference maximum,
        bins beyond it are padding.

    Examples
    --------
    >>> finite_edge_count(pad_edges([np.array([1.0, 2.0, 3.0]), np.empty(0)]))
    array([3, 0])
    """
    return np.isfinite(edges).sum(axis=1)


def check_numeric_pair(
    reference: NumericSummary, window: NumericSummary, edges: np.ndarray
) -> None:
    """Raise ``ValueError`` unless both summaries are counted on ``edges``.

    Parameters
    ----------
    reference, window : NumericSummary
        Summaries whose counts must have shape ``(F, K + 1)``.
    edges : numpy.ndarray, shape (F, K)
        The padded edges both were built on.

    Examples
    --------
    >>> edges = pad_edges([np.array([0.0, 1.0])])
    >>> empty = NumericSummary.empty(edges, np.zeros(1))
    >>> check_numeric_pair(empty, empty, edges)
    """
    edges = np.asarray(edges)
    if edges.ndim != 2:
        raise ValueError(f"edges must have shape (F, K), got {edges.shape}")
    expected = (edges.shape[0], edges.shape[1] + 1)
    for label, summary in (("reference", reference), ("window", window)):
        if summary.counts.shape != expected:
            raise ValueError(
                f"{label} counts must have shape {expected} for edges of shape {edges.shape}, "
                f"got {summary.counts.shape}"
            )


def check_categorical_pair(reference: CategoricalSummary, window: CategoricalSummary) -> None:
    """Raise ``ValueError`` unless both summaries have the same ``(F, V + 2)`` shape.

    Parameters
    ----------
    reference, window : CategoricalSummary
        Summaries over the same vocabularies.

    Examples
    --------
    >>> check_categorical_pair(CategoricalSummary.empty(2, 3), CategoricalSummary.empty(2, 3))
    """
    if reference.counts.ndim != 2 or reference.counts.shape != window.counts.shape:
        raise ValueError(
            "reference and window counts must have the same shape (F, V + 2), "
            f"got {reference.counts.shape} and {window.counts.shape}"
        )


def coarse_groups(reference_counts: np.ndarray, n_groups: int) -> np.ndarray:
    """Assign every fine bin to one of ``n_groups`` groups of about equal reference mass.

    Parameters
    ----------
    reference_counts : numpy.ndarray, shape (F, B)
        Reference counts per fine bin (``NumericSummary.counts``).
    n_groups : int
        Number of coarse groups wanted (at least 1).

    Returns
    -------
    numpy.ndarray of int64, shape (F, B)
        Group index per fine bin, non-decreasing along each row, in
        ``[0, n_groups)``. Coarse counts are then exact sums of fine counts
        (:func:`coarsen`), so any summary on the same edges coarsens the same way.

    Notes
    -----
    A fine bin with reference count ``c`` and ``b`` reference values before it
    goes to group ``floor(G (b + c / 2) / n)``: the group of its mass midpoint,
    computed in integers (no rounding). With fine bins of equal mass every
    group gets the same number of fine bins; a tie heavier than ``n / G`` keeps
    a group of its own and leaves neighbouring group indices unused (empty
    groups contribute nothing to any statistic). Bins with no reference mass —
    bin 0 (below the reference minimum), bin ``k_f`` (above the maximum) and
    padding — join the nearest group that has mass before them (the first
    group for bin 0), so the first and last coarse groups are open-ended and
    no coarse group has zero reference mass. A feature with an empty reference
    gets group 0 everywhere.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> values = rng.normal(size=(1, 1000))
    >>> edges = pad_edges([quantile_edges(values[0], 20)])
    >>> summary = NumericSummary.from_columns(values, edges, shift=values.mean(axis=1))
    >>> groups = coarse_groups(summary.counts, 4)
    >>> coarsen(summary.counts, groups, 4)
    array([[249, 250, 250, 251]])
    """
    if n_groups < 1:
        raise ValueError(f"n_groups must be at least 1, got {n_groups}")
    counts = np.asarray(reference_counts, dtype=np.int64)
    total = counts.sum(axis=1, keepdims=True)
    before = np.cumsum(counts, axis=1) - counts
    with np.errstate(divide="ignore", invalid="ignore"):
        mid = (n_groups * (2 * before + counts)) // np.maximum(2 * total, 1)
    positive = counts > 0
    groups = np.maximum.accumulate(np.where(positive, mid, -1), axis=1)
    first = np.where(positive, mid, n_groups).min(axis=1, keepdims=True)
    first = np.where(positive.any(axis=1, keepdims=True), first, 0)
    groups = np.where(groups < 0, first, groups)
    return np.clip(groups, 0, n_groups - 1)


def coarsen(counts: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum fine counts into coarse groups: exact merges of whole fine bins.

    Parameters
    ----------
    counts : numpy.ndarray, shape (F, B)
        Fine-bin counts of any summary on the same edges.
    groups : numpy.ndarray of int, shape (F, B)
        Group of every fine bin (:func:`coarse_groups`).
    n_groups : int
        Number of groups.

    Returns
    -------
    numpy.ndarray of int64, shape (F, n_groups)
        ``out[f, g] = sum of counts[f, j] over j with groups[f, j] == g``.

    Examples
    --------
    >>> coarsen(np.array([[1, 2, 3, 4]]), np.array([[0, 0, 1, 1]]), 2)
    array([[3, 7]])
    """
    counts = np.asarray(counts)
    n_features = counts.shape[0]
    flat = (groups + np.arange(n_features, dtype=np.int64)[:, None] * n_groups).ravel()
    summed = np.bincount(flat, weights=counts.ravel(), minlength=n_features * n_groups)
    return np.rint(summed).astype(np.int64).reshape(n_features, n_groups)


def coarse_counts(
    reference: NumericSummary, window: NumericSummary, n_groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """Reference and window counts merged into the reference's coarse groups.

    Parameters
    ----------
    reference, window : NumericSummary
        Summaries on the same fine edges; the groups come from ``reference``.
    n_groups : int
        Number of coarse groups of about equal reference mass.

    Returns
    -------
    tuple of numpy.ndarray, each of shape (F, n_groups)
        Coarse reference counts and coarse window counts.

    Notes
    -----
    :func:`coarse_groups` on the reference counts, then :func:`coarsen`
    applied to both sides: the numeric buckets of PSI, Jensen–Shannon and
    Hellinger.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> values = rng.normal(size=(1, 1000))
    >>> edges = pad_edges([quantile_edges(values[0], 50)])
    >>> ref = NumericSummary.from_columns(values, edges, values.mean(axis=1))
    >>> win = NumericSummary.from_columns(values[:, :100] + 10.0, edges, values.mean(axis=1))
    >>> coarse_counts(ref, win, 5)
    (array([[199, 200, 200, 200, 201]]), array([[  0,   0,   0,   0, 100]]))
    """
    groups = coarse_groups(reference.counts, n_groups)
    return coarsen(reference.counts, groups, n_groups), coarsen(window.counts, groups, n_groups)
