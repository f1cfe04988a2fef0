"""Population stability index (PSI) on fixed reference-quantile bins and on categories."""

from __future__ import annotations

import math
from numbers import Real

import numpy as np

from driftwarden.detectors.bucket_distance import BucketDistance


def psi_from_counts(
    reference_counts: np.ndarray, window_counts: np.ndarray, epsilon: float = 1e-4
) -> np.ndarray:
    """PSI per row of two count arrays, with zero proportions replaced by ``epsilon``.

    Parameters
    ----------
    reference_counts, window_counts : numpy.ndarray, shape (F, B)
        Counts per bucket on each side.
    epsilon : float
        Replaces a zero proportion (no renormalization).

    Returns
    -------
    numpy.ndarray, shape (F,)
        ``sum_i (q_i - p_i) ln(q_i / p_i)``; NaN where a row has no counts.

    Notes
    -----
    A bucket empty on both sides contributes exactly 0, so padding never
    changes a value. See :class:`PSI`.

    Examples
    --------
    >>> psi_from_counts(np.array([[50, 50, 0]]), np.array([[40, 60, 0]])).round(6)
    array([0.040547])
    """
    ref = np.asarray(reference_counts, dtype=np.float64)
    win = np.asarray(window_counts, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = ref / ref.sum(axis=1, keepdims=True)
        q = win / win.sum(axis=1, keepdims=True)
        p = np.where(p == 0.0, epsilon, p)
        q = np.where(q == 0.0, epsilon, q)
        return np.sum((q - p) * np.log(q / p), axis=1)


class PSI(BucketDistance):
    """Population stability index between the reference and the window.

    Parameters
    ----------
    threshold : float, default 0.2
        Drift when PSI exceeds it.
    bins : int, default 10
        Numeric features: number of coarse groups of about equal reference mass
        the fine bins are merged into (exact merges; see
        :func:`~driftwarden.detectors.histogram.coarse_groups`).
    epsilon : float, default 1e-4
        Replaces a zero proportion (``0 < epsilon < 1``).

    Notes
    -----
    ``PSI = sum_i (q_i - p_i) ln(q_i / p_i)`` over buckets ``i``, with ``p``
    the reference and ``q`` the window proportions (Siddiqi, *Credit Risk
    Scorecards*, Wiley 2006; Yurdakul, *Statistical properties of population
    stability index*, 2018). It is the symmetrised Kullback–Leibler divergence
    ``KL(q||p) + KL(p||q)``.
    Every term is >= 0, so PSI >= 0 and it is 0 only for equal proportions.

    Smoothing: a zero proportion on one side is replaced by ``epsilon`` and the
    proportions are not renormalized (the rule Evidently uses, with the same
    ``1e-4``); a bucket empty on both sides contributes exactly 0. A category
    never seen in the reference thus adds ``(q - eps) ln(q / eps)``, which is
    finite and grows with its share.

    Buckets. Numeric: the 500 fine reference-quantile bins merged into
    ``bins`` groups of about equal reference mass, the first and last groups
    open-ended (values outside the reference range fall into them). The bins
    are fixed by the reference, so values are comparable from one window to
    the next and the coarse counts of a sliding window are sums of its panes'.
    Evidently instead re-bins every window on reference + current together
    (``np.histogram_bin_edges(..., bins="sturges")``: equal-width bins over
    the pooled range, ~22 bins at 2 million rows), so its PSI moves with the
    window's own range and is not comparable across windows; with a shift, its
    equal-width bins also spend most of their resolution on empty tails.
    Categorical: the ``V + 2`` buckets of :class:`CategoricalSummary` (the
    vocabulary, the pooled rare categories, the never-seen categories).

    The value is exact on these buckets: ``error_bound`` is 0.

    Statuses: ``insufficient_data`` when the reference or the window has no
    value for the feature. Because the end groups are open, values beyond the
    reference range count with the nearest reference values: a numeric
    feature whose reference is constant has a single group and a PSI of 0
    whatever the window holds (``DataQuality.out_of_range_rate`` and
    :class:`KS` report such a change). Windows of a few rows leave most groups
    empty and get large values from the ``epsilon`` terms; the monitor's
    ``min_samples`` keeps them from deciding.

    Examples
    --------
    >>> from driftwarden.detectors.histogram import NumericSummary, pad_edges, quantile_edges
    >>> rng = np.random.default_rng(42)
    >>> reference = rng.normal(size=(2, 20_000))
    >>> window = rng.normal(loc=[[0.0], [0.5]], size=(2, 5_000))
    >>> edges = pad_edges([quantile_edges(column) for column in reference])
    >>> shift = reference.mean(axis=1)
    >>> ref = NumericSummary.from_columns(reference, edges, shift)
    >>> win = NumericSummary.from_columns(window, edges, shift)
    >>> [(round(r.value, 4), r.drift) for r in PSI().numeric(ref, win, edges)]
    [(0.0026, False), (0.2081, True)]
    """

    name = "psi"

    def __init__(self, threshold: float = 0.2, bins: int = 10, epsilon: float = 1e-4) -> None:
        super().__init__(threshold, bins)
        if (
            isinstance(epsilon, bool)
            or not isinstance(epsilon, Real)
            or not math.isfinite(epsilon)
            or not 0.0 < epsilon < 1.0
        ):
            raise ValueError(f"epsilon must be a number in (0, 1), got {epsilon!r}")
        self.epsilon = float(epsilon)

    def distance(self, reference_counts: np.ndarray, window_counts: np.ndarray) -> np.ndarray:
        """PSI per feature (see :func:`psi_from_counts`)."""
        return psi_from_counts(reference_counts, window_counts, self.epsilon)
