r"""Error attribution: which feature buckets hold the window's excess errors.

:class:`ErrorSummary` counts, per feature and bucket, the labelled rows and
their errors (0/1 error bits of a classifier) or losses (e.g. absolute errors
of a regressor); the buckets are those of
:mod:`driftwarden.detectors.importance` (reference deciles plus missing,
categories plus missing). :func:`error_attribution` compares a window with
the reference bucket by bucket and says where the errors beyond the
reference's rates fall. Counts and sums add up, so panes sum to windows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_TOP_K = 10
"""Buckets listed in :attr:`ErrorAttribution.top`."""


@dataclass(frozen=True, eq=False)
class ErrorSummary:
    """Mergeable labelled rows and errors (or losses) per feature and bucket.

    ``n[f, b]`` counts the labelled rows whose feature ``f`` falls in bucket
    ``b`` and ``errors[f, b]`` adds their errors (0/1) or losses, both of
    shape ``(F, B)``. :attr:`rate` is the error rate or mean loss.
    ``merge`` adds both; ``to_state()`` / ``from_state()`` give JSON data.

    Examples
    --------
    >>> s = ErrorSummary.from_codes(np.array([[0, 1, 1, 0]]), [1, 0, 1, np.nan], 2)
    >>> s.n.tolist(), s.errors.tolist(), s.rate.tolist()
    ([[1, 2]], [[1.0, 1.0]], [[1.0, 0.5]])
    """

    n: np.ndarray
    errors: np.ndarray

    @classmethod
    def empty(cls, n_features: int, n_buckets: int) -> ErrorSummary:
        """The summary of no rows."""
        shape = (n_features, n_buckets)
        return cls(np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.float64))

    @classmethod
    def from_codes(cls, codes: np.ndarray, losses: np.ndarray, n_buckets: int) -> ErrorSummary:
        """Count labelled rows and add their losses per (feature, bucket) in two ``bincount``.

        Parameters
        ----------
        codes : numpy.ndarray of int, shape (F, n)
            Bucket per feature and row (``numeric_bucket_codes``,
            ``categorical_bucket_codes``), any integer dtype; a negative code
            leaves that value out.
        losses : numpy.ndarray, shape (n,)
            Per row: an error bit (bool or 0/1) or a loss >= 0; NaN marks a row
            without a label, which is left out.
        n_buckets : int
            ``B``; codes must be below it.
        """
        codes = np.asarray(codes)
        loss = np.asarray(losses, dtype=np.float64)
        if codes.dtype.kind not in "iu":
            raise ValueError(f"codes must be integers, got dtype {codes.dtype}")
        if codes.ndim != 2 or loss.shape != (codes.shape[1],):
            raise ValueError(
                f"codes must have shape (F, n) and losses (n,), got {codes.shape} and {loss.shape}"
            )
        if isinstance(n_buckets, bool) or not isinstance(n_buckets, int | np.integer):
            raise ValueError(f"n_buckets must be an integer >= 1, got {n_buckets!r}")
        if n_buckets < 1:
            raise ValueError(f"n_buckets must be an integer >= 1, got {n_buckets!r}")
        unlabelled = np.isnan(loss)
        bad = ~(loss >= 0) & ~unlabelled
        if bad.any():
            where = int(np.flatnonzero(bad)[0])
            raise ValueError(f"losses must be >= 0 or NaN, got {float(loss[where])!r} at {where}")
        if codes.size and codes.max() >= n_buckets:
            f, i = np.unravel_index(int(np.argmax(codes)), codes.shape)
            raise ValueError(
                f"codes must be below n_buckets={n_buckets}, got {int(codes[f, i])} at ({f}, {i})"
            )
        n_features = codes.shape[0]
        offsets = np.arange(n_features, dtype=np.intp) * n_buckets
        cell = np.add(codes, offsets[:, None], dtype=np.intp)
        weights = np.broadcast_to(loss, codes.shape)
        if (codes.size and codes.min() < 0) or unlabelled.any():
            keep = (codes >= 0) & ~unlabelled
            flat, weights = cell[keep], weights[keep]
        else:
            flat, weights = cell.ravel(), weights.ravel()
        size = n_features * n_buckets
        n = np.bincount(flat, minlength=size).reshape(n_features, n_buckets)
        errors = np.bincount(flat, weights=weights, minlength=size).reshape(n_features, n_buckets)
        return cls(n, errors)

    def merge(self, other: ErrorSummary) -> ErrorSummary:
        """The summary of both inputs' rows together."""
        if self.n.shape != other.n.shape:
            raise ValueError(
                f"only summaries of the same shape can be merged, got {self.n.shape} and "
                f"{other.n.shape}"
            )
        return ErrorSummary(self.n + other.n, self.errors + other.errors)

    @property
    def rate(self) -> np.ndarray:
        """Error rate or mean loss per feature and bucket (NaN where no labelled row)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n > 0, self.errors / self.n, np.nan)

    @property
    def overall_rate(self) -> np.ndarray:
        """Error rate or mean loss per feature over all its buckets (NaN without rows)."""
        total = self.n.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, self.errors.sum(axis=1) / total, np.nan)

    def to_state(self) -> dict[str, Any]:
        """JSON data that :meth:`from_state` restores exactly."""
        return {"n": self.n.tolist(), "errors": self.errors.tolist()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ErrorSummary:
        """Rebuild a summary from :meth:`to_state` output."""
        n = np.asarray(state["n"], dtype=np.int64)
        errors = np.asarray(state["errors"], dtype=np.float64)
        if n.ndim != 2 or n.shape != errors.shape:
            raise ValueError(
                f"n and errors must have one shape (F, B), got {n.shape} and {errors.shape}"
            )
        return cls(n, errors)


@dataclass(frozen=True, slots=True)
class BucketExcess:
    """One feature bucket of :attr:`ErrorAttribution.top`."""

    feature: int
    bucket: int
    n: int
    errors: float
    rate: float
    expected_rate: float
    excess: float
    share: float


@dataclass(frozen=True, eq=False)
class ErrorAttribution:
    """Per feature and bucket, the window's errors against the reference's rates.

    Every array has shape ``(F, B)``: ``n_window`` and ``n_reference``
    (labelled rows), ``window_rate`` and ``reference_rate`` (NaN where the
    bucket has no labelled row), ``expected_rate``, ``excess`` and ``share``
    as defined in :func:`error_attribution`. ``top`` lists the buckets with
    the most excess errors, over all features.
    """

    n_window: np.ndarray
    n_reference: np.ndarray
    window_rate: np.ndarray
    reference_rate: np.ndarray
    expected_rate: np.ndarray
    excess: np.ndarray
    share: np.ndarray
    top: tuple[BucketExcess, ...]


def error_attribution(
    window: ErrorSummary, reference: ErrorSummary, *, top_k: int = DEFAULT_TOP_K
) -> ErrorAttribution:
    r"""Where the window's errors beyond the reference's rates fall, per feature and bucket.

    Parameters
    ----------
    window, reference : ErrorSummary
        Summaries over the same features and buckets.
    top_k : int, default 10
        Buckets in :attr:`ErrorAttribution.top`.

    Returns
    -------
    ErrorAttribution

    Notes
    -----
    For feature ``f`` and bucket ``b`` with window rows :math:`n_b` and errors
    (or summed losses) :math:`e_b`:

    * expected rate :math:`\rho_b` = the reference's rate in bucket ``b``, or,
      where the reference has no labelled row there, the reference's overall
      rate of that feature;
    * excess :math:`x_b = e_b - n_b \rho_b`: errors beyond what the reference
      rates predict for the window's rows (0 for an empty window bucket;
      negative where the window does better);
    * share :math:`s_b = \max(x_b, 0) / \sum_{b'} \max(x_{b'}, 0)`, the sum
      over the buckets of the same feature: how the excess errors of a
      feature's view of the window split across its buckets (each feature's
      shares add up to 1). NaN when the feature has no positive excess.

    The excess, unlike a rate difference, weighs a bucket by its rows: a
    bucket of five rows with four errors does not outrank a bucket of 5,000
    rows at a rate 2 points above the reference. With classification errors
    it is a number of errors; with losses, a sum of loss. ``top`` orders all
    buckets with a positive excess by excess (then share, feature, bucket),
    descending. The buckets of different features hold the same rows, so one
    cause usually shows in several features' buckets; ``top`` tells where to
    look, not how many separate causes there are. Where the reference has no
    labelled row for a feature, its expected rates and shares are NaN, and so
    is the excess of every bucket with window rows.

    The excess is not a test: with no change at all, about half the buckets
    have a positive excess, of the order of the binomial noise
    :math:`\sqrt{n_b \rho_b (1 - \rho_b)}` errors (for 0/1 errors); read
    ``top`` against that scale.

    Examples
    --------
    >>> from driftwarden.detectors.importance import numeric_bucket_codes, quantile_bucket_edges
    >>> rng = np.random.default_rng(2)
    >>> x = rng.normal(size=(2, 40_000))
    >>> edges = quantile_bucket_edges(x[:, :20_000], 4)
    >>> codes = numeric_bucket_codes(x, edges)  # 4 quartiles + missing: 5 buckets
    >>> error = rng.random(40_000) < 0.1
    >>> error[20_000:] |= (x[0, 20_000:] > 0.7) & (rng.random(20_000) < 0.2)
    >>> ref = ErrorSummary.from_codes(codes[:, :20_000], error[:20_000], 5)
    >>> win = ErrorSummary.from_codes(codes[:, 20_000:], error[20_000:], 5)
    >>> result = error_attribution(win, ref, top_k=2)
    >>> result.share[0].round(3).tolist()
    [0.005, 0.0, 0.0, 0.995, 0.0]
    >>> [(b.feature, b.bucket, round(b.rate, 3), round(b.excess))
    ...  for b in result.top]
    [(0, 3, 0.28, 941), (1, 3, 0.147, 259)]
    """
    if window.n.shape != reference.n.shape:
        raise ValueError(
            f"window and reference must have one shape (F, B), got {window.n.shape} and "
            f"{reference.n.shape}"
        )
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k must be a non-negative integer, got {top_k!r}")
    reference_rate = reference.rate
    expected = np.where(reference.n > 0, reference_rate, reference.overall_rate[:, None])
    with np.errstate(invalid="ignore"):
        excess = np.where(window.n > 0, window.errors - window.n * expected, 0.0)
        positive = np.where(np.isnan(excess), np.nan, np.maximum(excess, 0.0))
        total = positive.sum(axis=1, keepdims=True)
        share = np.where(total > 0, positive / total, np.nan)
    window_rate = window.rate
    candidates = np.flatnonzero(positive.ravel() > 0)
    order = np.lexsort(
        (candidates, -np.nan_to_num(share.ravel()[candidates]), -excess.ravel()[candidates])
    )
    top = []
    n_buckets = excess.shape[1]
    for flat in candidates[order][:top_k].tolist():
        f, b = divmod(flat, n_buckets)
        top.append(
            BucketExcess(
                feature=f,
                bucket=b,
                n=int(window.n[f, b]),
                errors=float(window.errors[f, b]),
                rate=float(window_rate[f, b]),
                expected_rate=float(expected[f, b]),
                excess=float(excess[f, b]),
                share=float(share[f, b]),
            )
        )
    return ErrorAttribution(
        n_window=window.n,
        n_reference=reference.n,
        window_rate=window_rate,
        reference_rate=reference_rate,
        expected_rate=expected,
        excess=excess,
        share=share,
        top=tuple(top),
    )
