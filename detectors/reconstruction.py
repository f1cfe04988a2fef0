"""Multivariate drift: PCA reconstruction error against the reference (NannyML's method)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from .histogram import quantile_edges
from .result import DetectorResult, not_ok

DEFAULT_VARIANCE = 0.65
DEFAULT_SIGMAS = 3.0
DEFAULT_ERROR_BINS = 64


def _as_inputs(numeric: Any, codes: Any) -> tuple[np.ndarray, np.ndarray]:
    """``numeric`` as float64 ``(F, n)`` and ``codes`` as int64 ``(C, n)``; either may be None."""
    num = None if numeric is None else np.asarray(numeric, dtype=np.float64)
    cat = None if codes is None else np.asarray(codes)
    if num is not None and num.ndim != 2:
        raise ValueError(f"numeric must have shape (F, n), got {num.shape}")
    if cat is not None:
        if cat.ndim != 2:
            raise ValueError(f"codes must have shape (C, n), got {cat.shape}")
        if cat.size and cat.dtype.kind not in "iu":
            raise ValueError(f"codes must be integers (-1 = missing), got dtype {cat.dtype}")
        cat = cat.astype(np.int64, copy=False)
    if num is None and cat is None:
        raise ValueError("give numeric features, categorical codes or both")
    n = (num if num is not None else cat).shape[1]  # type: ignore[union-attr]
    num = np.empty((0, n)) if num is None else num
    cat = np.empty((0, n), dtype=np.int64) if cat is None else cat
    if num.shape[1] != cat.shape[1]:
        raise ValueError(f"numeric has {num.shape[1]} rows, codes {cat.shape[1]}")
    if np.isinf(num).any():
        raise ValueError("numeric features must be finite or NaN (missing)")
    return num, cat


@dataclass(frozen=True)
class ReconstructionModel:
    r"""PCA fitted on the standardized reference; rows far from its subspace have drifted.

    Build it with :meth:`fit`; the fields are the fitted arrays.

    Parameters
    ----------
    numeric_fill : numpy.ndarray, shape (F,)
        Reference mean of each numeric feature (its missing values are imputed with it).
    code_fill : numpy.ndarray of int, shape (C,)
        Most frequent code of each categorical feature (imputed for missing codes).
    frequencies : numpy.ndarray, shape (C, V)
        Share of the (imputed) reference rows holding each code (0 for codes
        never seen, padded with zeros).
    center, scale : numpy.ndarray, shape (D,)
        Mean and population standard deviation of the encoded columns
        (numeric first, then categorical; a constant column gets scale 1).
    pca_mean : numpy.ndarray, shape (D,)
        Mean of the standardized reference (0 up to rounding; PCA centres on it).
    components : numpy.ndarray, shape (k, D)
        Orthonormal principal axes kept.
    explained : numpy.ndarray, shape (D,)
        Explained-variance ratio of every axis, largest first.

    Notes
    -----
    The steps are NannyML's ``DataReconstructionDriftCalculator`` [1]_:
    numeric features missing values are imputed with the reference mean,
    categorical ones with the most frequent reference category; each category
    is encoded as its frequency in the imputed reference (category_encoders'
    ``CountEncoder(normalize=True)``, as NannyML; an unseen category encodes
    as 0). Every column is standardized with the reference mean and population
    standard deviation (scikit-learn's ``StandardScaler``, computed after
    imputation), and PCA keeps the fewest axes :math:`W` (:math:`k \times D`)
    whose explained-variance share exceeds ``variance`` (NannyML's
    ``n_components=0.65``; scikit-learn's rule for a float). The reconstruction
    error of a row :math:`z` is :math:`\lVert (z - \mu) - (z - \mu) W^\top W
    \rVert_2`, the distance between the row and its reconstruction. Frequency
    encoding keeps one column per categorical feature; it cannot tell apart
    categories of equal frequency, the price of NannyML's compact encoding.

    The axes come from ``numpy.linalg.svd`` of the centred standardized
    reference, as scikit-learn's full solver does. The errors of all rows come
    from one matrix product: the residual of a row is its projection on the
    axes *not* kept (an orthonormal basis :math:`V` of the complement), so the
    error is :math:`\lVert V (z - \mu) \rVert_2`; standardization is folded
    into :math:`V` and an offset, so the raw columns are multiplied directly,
    without building the standardized rows.

    References
    ----------
    .. [1] NannyML documentation, "Data Reconstruction with PCA" (How it works),
       and ``nannyml.drift.multivariate.data_reconstruction`` (0.13).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=5000)
    >>> reference = np.stack([x, x + 0.3 * rng.normal(size=5000)])
    >>> model = ReconstructionModel.fit(reference)
    >>> model.components.shape
    (1, 2)
    >>> y = rng.normal(size=5000)
    >>> flipped = np.stack([y, -y + 0.3 * rng.normal(size=5000)])
    >>> print(f"{model.errors(reference).mean():.3f} {model.errors(flipped).mean():.3f}")
    0.164 1.128
    """

    numeric_fill: np.ndarray
    code_fill: np.ndarray
    frequencies: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    pca_mean: np.ndarray
    components: np.ndarray
    explained: np.ndarray

    @classmethod
    def fit(
        cls, numeric: Any = None, codes: Any = None, variance: float = DEFAULT_VARIANCE
    ) -> ReconstructionModel:
        """Fit on the reference: ``numeric`` ``(F, n)`` (NaN = missing), ``codes`` ``(C, n)``.

        Parameters
        ----------
        numeric : array_like, shape (F, n), optional
            Numeric features, NaN for missing.
        codes : array_like of int, shape (C, n), optional
            Categorical features as codes ``>= 0``, -1 for missing.
        variance : float, default 0.65
            Share of the variance the kept axes must explain, in (0, 1).

        Returns
        -------
        ReconstructionModel
        """
        if isinstance(variance, bool) or not isinstance(variance, int | float):
            raise ValueError(f"variance must be a number in (0, 1), got {variance!r}")
        if not 0.0 < variance < 1.0:
            raise ValueError(f"variance must be a number in (0, 1), got {variance!r}")
        num, cat = _as_inputs(numeric, codes)
        n = num.shape[1]
        if num.shape[0] + cat.shape[0] < 2 or n < 2:
            raise ValueError(
                f"need at least 2 features and 2 rows, got {num.shape[0] + cat.shape[0]} "
                f"features and {n} rows"
            )
        present = ~np.isnan(num)
        counts = present.sum(axis=1)
        if (counts == 0).any():
            raise ValueError(f"numeric feature {int(np.argmin(counts))} has no value")
        numeric_fill = np.where(present, num, 0.0).sum(axis=1) / counts
        width = int(cat.max()) + 1 if cat.size and cat.max() >= 0 else 1
        tallies = _tally(cat, width)
        if cat.shape[0] and (tallies.sum(axis=1) == 0).any():
            raise ValueError(
                f"categorical feature {int(np.argmin(tallies.sum(axis=1)))} has no code"
            )
        code_fill = tallies.argmax(axis=1)
        missing = (cat < 0).sum(axis=1)
        tallies[np.arange(cat.shape[0]), code_fill] += missing
        frequencies = tallies / n

        encoded = _encode(num, cat, numeric_fill, code_fill, frequencies)
        center = encoded.mean(axis=0)
        spread = encoded.std(axis=0)
        scale = np.where(spread > 0.0, spread, 1.0)
        standardized = (encoded - center) / scale
        pca_mean = standardized.mean(axis=0)
        _, singular, axes = np.linalg.svd(standardized - pca_mean, full_matrices=False)
        power = singular**2
        explained = power / power.sum()
        kept = int(np.searchsorted(np.cumsum(explained), variance, side="right")) + 1
        kept = min(kept, axes.shape[0])
        return cls(
            numeric_fill=numeric_fill,
            code_fill=code_fill,
            frequencies=frequencies,
            center=center,
            scale=scale,
            pca_mean=pca_mean,
            components=axes[:kept],
            explained=explained,
        )

    @property
    def n_features(self) -> tuple[int, int]:
        """Numbers of numeric and categorical features."""
        return self.numeric_fill.size, self.code_fill.size

    def errors(self, numeric: Any = None, codes: Any = None) -> np.ndarray:
        """Reconstruction error of every row, in one vectorized call.

        Parameters
        ----------
        numeric : array_like, shape (F, n), optional
            Numeric features, NaN for missing (same features as the reference).
        codes : array_like of int, shape (C, n), optional
            Categorical codes, -1 for missing.

        Returns
        -------
        numpy.ndarray, shape (n,)
            Euclidean distance between each standardized row and its reconstruction.
        """
        num, cat = _as_inputs(numeric, codes)
        if (num.shape[0], cat.shape[0]) != self.n_features:
            raise ValueError(
                f"expected {self.n_features[0]} numeric and {self.n_features[1]} categorical "
                f"features, got {num.shape[0]} and {cat.shape[0]}"
            )
        if np.isnan(num).any():
            num = np.where(np.isnan(num), self.numeric_fill[:, None], num)
        weights, offset = self._residual_map
        n_numeric = num.shape[0]
        residual = weights[:, :n_numeric] @ num
        if cat.shape[0]:
            residual += weights[:, n_numeric:] @ _frequency_codes(
                cat, self.code_fill, self.frequencies
            )
        residual -= offset[:, None]
        return np.sqrt(np.einsum("ij,ij->j", residual, residual))

    @cached_property
    def _residual_map(self) -> tuple[np.ndarray, np.ndarray]:
        """``(W, o)`` with ``W @ row - o`` the residual of a raw encoded row, in the basis of
        the axes not kept (their norms are equal: the basis is orthonormal)."""
        _, _, axes = np.linalg.svd(self.components, full_matrices=True)
        complement = axes[self.components.shape[0] :]
        weights = complement / self.scale
        offset = complement @ (self.center / self.scale + self.pca_mean)
        return weights, offset

    def to_state(self) -> dict[str, Any]:
        """Plain JSON data (lists of floats and ints)."""
        return {
            "numeric_fill": self.numeric_fill.tolist(),
            "code_fill": self.code_fill.tolist(),
            "frequencies": self.frequencies.tolist(),
            "center": self.center.tolist(),
            "scale": self.scale.tolist(),
            "pca_mean": self.pca_mean.tolist(),
            "components": self.components.tolist(),
            "explained": self.explained.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ReconstructionModel:
        """Inverse of :meth:`to_state`."""
        n_codes = len(state["code_fill"])
        width = len(state["frequencies"][0]) if n_codes else 1
        return cls(
            numeric_fill=np.asarray(state["numeric_fill"], dtype=np.float64),
            code_fill=np.asarray(state["code_fill"], dtype=np.int64),
            frequencies=np.asarray(state["frequencies"], dtype=np.float64).reshape(n_codes, width),
            center=np.asarray(state["center"], dtype=np.float64),
            scale=np.asarray(state["scale"], dtype=np.float64),
            pca_mean=np.asarray(state["pca_mean"], dtype=np.float64),
            components=np.asarray(state["components"], dtype=np.float64),
            explained=np.asarray(state["explained"], dtype=np.float64),
        )


def _tally(codes: np.ndarray, width: int) -> np.ndarray:
    """Counts ``(C, width)`` of the codes ``0 .. width - 1`` per feature (others skipped)."""
    n_features = codes.shape[0]
    keep = (codes >= 0) & (codes < width)
    flat = (codes + np.arange(n_features)[:, None] * width)[keep]
    return np.bincount(flat, minlength=n_features * width).reshape(n_features, width)


def _encode(
    num: np.ndarray,
    cat: np.ndarray,
    numeric_fill: np.ndarray,
    code_fill: np.ndarray,
    frequencies: np.ndarray,
) -> np.ndarray:
    """Rows ``(n, F + C)``: numeric values (imputed) then category frequencies."""
    n = num.shape[1]
    out = np.empty((n, num.shape[0] + cat.shape[0]))
    numeric = out[:, : num.shape[0]]
    numeric[...] = num.T
    missing = np.isnan(numeric)
    if missing.any():
        numeric[missing] = np.broadcast_to(numeric_fill, numeric.shape)[missing]
    if cat.shape[0]:
        out[:, num.shape[0] :] = _frequency_codes(cat, code_fill, frequencies).T
    return out


def _frequency_codes(cat: np.ndarray, code_fill: np.ndarray, frequencies: np.ndarray) -> np.ndarray:
    """Codes ``(C, n)`` as their reference frequencies (missing: the most frequent code's;
    unseen: 0)."""
    n_features, width = frequencies.shape
    table = np.zeros((n_features, width + 1))  # the last column: unseen codes
    table[:, :width] = frequencies
    index = np.where(cat < 0, code_fill[:, None], cat)
    np.minimum(index, width, out=index)
    index += (np.arange(n_features) * (width + 1))[:, None]
    return table.ravel().take(index)


@dataclass(frozen=True)
class ErrorSummary:
    """Mergeable summary of reconstruction errors: count, sums and a fixed-edge histogram.

    ``counts[j]`` counts errors in ``[edges[j-1], edges[j])`` (``edges[-1] =
    -inf``, the last bin open above), as :class:`~driftwarden.detectors.histogram.NumericSummary`
    does; ``total`` and ``total_sq`` give the exact window mean and variance.
    Merging adds everything up, so panes sum to windows.

    Examples
    --------
    >>> edges = np.array([0.5, 1.0, 2.0])
    >>> one = ErrorSummary.from_errors(np.array([0.2, 0.7]), edges)
    >>> both = one.merge(ErrorSummary.from_errors(np.array([1.5, 3.0]), edges))
    >>> both.count, both.mean, both.counts.tolist()
    (4, 1.35, [1, 1, 1, 1])
    """

    edges: np.ndarray
    counts: np.ndarray
    count: int
    total: float
    total_sq: float

    @classmethod
    def empty(cls, edges: np.ndarray) -> ErrorSummary:
        """The summary of no errors."""
        edges = np.asarray(edges, dtype=np.float64)
        return cls(edges, np.zeros(edges.size + 1, dtype=np.int64), 0, 0.0, 0.0)

    @classmethod
    def from_errors(cls, errors: Any, edges: np.ndarray) -> ErrorSummary:
        """Summarize an array of errors on ``edges`` (ascending)."""
        errors = np.asarray(errors, dtype=np.float64)
        edges = np.asarray(edges, dtype=np.float64)
        if errors.ndim != 1 or not np.isfinite(errors).all():
            raise ValueError(
                f"errors must be a 1-D array of finite values, got shape {errors.shape}"
            )
        bins = np.searchsorted(edges, errors, side="right")
        return cls(
            edges=edges,
            counts=np.bincount(bins, minlength=edges.size + 1).astype(np.int64),
            count=int(errors.size),
            total=float(errors.sum()),
            total_sq=float(errors @ errors),
        )

    def merge(self, other: ErrorSummary) -> ErrorSummary:
        """The summary of both inputs together."""
        if not np.array_equal(self.edges, other.edges):
            raise ValueError("only summaries over the same edges can be merged")
        return ErrorSummary(
            edges=self.edges,
            counts=self.counts + other.counts,
            count=self.count + other.count,
            total=self.total + other.total,
            total_sq=self.total_sq + other.total_sq,
        )

    @property
    def mean(self) -> float:
        """Mean error (NaN when empty)."""
        return self.total / self.count if self.count else math.nan

    @property
    def std(self) -> float:
        """Sample standard deviation of the errors (NaN below 2 errors)."""
        if self.count < 2:
            return math.nan
        centred = self.total_sq - self.total * self.total / self.count
        return math.sqrt(max(centred, 0.0) / (self.count - 1))

    def to_state(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {
            "edges": self.edges.tolist(),
            "counts": self.counts.tolist(),
            "count": self.count,
            "total": self.total,
            "total_sq": self.total_sq,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ErrorSummary:
        """Inverse of :meth:`to_state`."""
        return cls(
            edges=np.asarray(state["edges"], dtype=np.float64),
            counts=np.asarray(state["counts"], dtype=np.int64),
            count=int(state["count"]),
            total=float(state["total"]),
            total_sq=float(state["total_sq"]),
        )


def error_edges(reference_errors: Any, n_bins: int = DEFAULT_ERROR_BINS) -> np.ndarray:
    """Fixed histogram edges from the reference errors' quantiles (open-ended bins both sides)."""
    return quantile_edges(np.asarray(reference_errors, dtype=np.float64), n_bins)


@dataclass(frozen=True)
class ErrorBand:
    """The band the mean error of a chunk stays in while nothing drifts.

    ``lower`` is None when the band would reach 0 (NannyML drops a lower
    threshold at or below the error's floor of 0).
    """

    center: float
    spread: float
    lower: float | None
    upper: float
    chunk_size: int
    n_chunks: int


def reference_band(
    reference_errors: Any, chunk_size: int, sigmas: float = DEFAULT_SIGMAS
) -> ErrorBand:
    r"""Band of chunk mean errors from the reference's chunk-to-chunk spread.

    Parameters
    ----------
    reference_errors : array_like
        Reconstruction errors of the reference rows, in their order.
    chunk_size : int
        Rows per chunk; the incomplete last chunk is left out.
    sigmas : float, default 3.0
        :math:`k`, NannyML's ``StandardDeviationThreshold`` multiplier (3 both ways).

    Returns
    -------
    ErrorBand
        :math:`\bar m \pm k s`, with :math:`\bar m` the mean and :math:`s` the
        population standard deviation (NannyML uses ``np.nanstd``) of the
        reference chunks' mean errors; at least 2 chunks are needed.

    Notes
    -----
    The band is the spread of chunks of ``chunk_size`` rows: judge windows of
    about that size with it (:func:`reconstruction_drift` refuses smaller ones
    by default). With :math:`k = 3` and normal chunk means, a stationary
    window falls outside with probability about 0.3 %, plus what the
    estimate of :math:`s` from a few dozen chunks adds.

    Examples
    --------
    >>> band = reference_band(np.array([1.0, 1.2, 0.9, 1.1, 1.0, 1.3, 0.8, 1.1]), 2)
    >>> print(f"{band.center:.3f} {band.spread:.3f} {band.upper:.3f} {band.n_chunks}")
    1.050 0.079 1.287 4
    """
    errors = np.asarray(reference_errors, dtype=np.float64)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    if isinstance(sigmas, bool) or not isinstance(sigmas, int | float) or not sigmas > 0:
        raise ValueError(f"sigmas must be a number > 0, got {sigmas!r}")
    n_chunks = errors.size // chunk_size
    if errors.ndim != 1 or n_chunks < 2:
        raise ValueError(
            f"reference_errors must hold at least 2 chunks of chunk_size={chunk_size}, "
            f"got shape {errors.shape}"
        )
    means = errors[: n_chunks * chunk_size].reshape(n_chunks, chunk_size).mean(axis=1)
    center, spread = float(means.mean()), float(means.std())
    lower = center - sigmas * spread
    return ErrorBand(
        center=center,
        spread=spread,
        lower=lower if lower > 0.0 else None,
        upper=center + sigmas * spread,
        chunk_size=chunk_size,
        n_chunks=n_chunks,
    )


def reconstruction_drift(
    window: ErrorSummary, band: ErrorBand, min_count: int | None = None
) -> DetectorResult:
    """Whether a window's mean reconstruction error left the reference band.

    Parameters
    ----------
    window : ErrorSummary
        The window's errors.
    band : ErrorBand
        From :func:`reference_band`.
    min_count : int, optional
        Fewest rows to decide on; defaults to the band's ``chunk_size``.

    Returns
    -------
    DetectorResult
        ``value`` the window's mean error; ``threshold`` and ``direction`` the
        upper edge (``"above"``) when the mean is at or above the band's
        centre, else the lower edge (``"below"``; ``None`` when the band has
        none); ``drift`` when the mean is past it; ``insufficient_data`` below
        ``min_count`` rows.

    Examples
    --------
    >>> band = ErrorBand(center=1.0, spread=0.05, lower=0.85, upper=1.15, chunk_size=2, n_chunks=9)
    >>> window = ErrorSummary.from_errors(np.array([1.1, 1.4]), np.array([1.0]))
    >>> result = reconstruction_drift(window, band)
    >>> result.value, result.threshold, result.direction, result.drift
    (1.25, 1.15, 'above', True)
    """
    needed = band.chunk_size if min_count is None else min_count
    if isinstance(needed, bool) or not isinstance(needed, int) or needed < 1:
        raise ValueError(f"min_count must be an integer >= 1, got {min_count!r}")
    above = window.count == 0 or window.mean >= band.center
    threshold = band.upper if above else band.lower
    direction = "above" if above else "below"
    if window.count < needed:
        return not_ok("insufficient_data", threshold, direction, n_window=window.count)
    value = window.mean
    drift = threshold is not None and (value > threshold if above else value < threshold)
    return DetectorResult(
        value=value,
        threshold=threshold,
        direction=direction,
        drift=bool(drift),
        n_reference=band.n_chunks * band.chunk_size,
        n_window=window.count,
    )
