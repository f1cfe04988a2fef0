"""Multivariate drift: the reference's PCA reconstruction model and the errors of each batch.

Every row of the reference and of each batch becomes one number, its PCA
reconstruction error (``detectors/reconstruction.py``); windows keep those
errors as a mergeable histogram with exact sums, and a window is judged by its
mean error against the reference's chunk-to-chunk spread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from driftwarden.detectors.reconstruction import (
    ErrorBand,
    ErrorSummary,
    ReconstructionModel,
    error_edges,
    reference_band,
)

BAND_SEED = 0
"""Seed of the fixed order the reference errors are chunked in (see ``MultivariateProfile``)."""


@dataclass(frozen=True)
class MultivariateProfile:
    """The fitted reconstruction model, the reference's own errors and the histogram edges.

    ``errors`` are the reference rows' errors in a fixed pseudo-random order
    (seeded): chunks of it are random samples of the reference, so a reference
    file sorted by time or by a feature does not widen the band.
    """

    model: ReconstructionModel
    errors: np.ndarray
    edges: np.ndarray

    @classmethod
    def fit(cls, numeric: np.ndarray, codes: np.ndarray) -> MultivariateProfile:
        """Fit on the reference's numeric ``(F, n)`` (NaN missing) and codes ``(C, n)``."""
        model = ReconstructionModel.fit(numeric, codes)
        errors = model.errors(numeric, codes)
        order = np.random.default_rng(BAND_SEED).permutation(errors.size)
        return cls(model=model, errors=errors[order], edges=error_edges(errors))

    def fold(self, numeric: np.ndarray, codes: np.ndarray) -> ErrorSummary:
        """The errors of a batch (same layout as ``fit``'s; the decoder has made non-finite
        values missing), as a mergeable summary."""
        return ErrorSummary.from_errors(self.model.errors(numeric, codes), self.edges)

    def band(self, n_rows: int, sigmas: float) -> ErrorBand:
        """The band of mean errors of chunks of ``n_rows`` reference rows.

        Chunks are as large as the window, at most half the reference (two
        chunks are the fewest a spread can be measured on; a band of smaller
        chunks than the window is wider, so it errs towards no alarm).
        """
        chunk = max(1, min(n_rows, self.errors.size // 2))
        return reference_band(self.errors, chunk, sigmas)

    def to_json(self) -> dict[str, Any]:
        """The model as plain JSON (the arrays are stored apart)."""
        return self.model.to_state()

    @classmethod
    def restore(
        cls, state: dict[str, Any] | None, arrays: dict[str, np.ndarray]
    ) -> MultivariateProfile | None:
        """The profile saved as ``to_json`` plus ``arrays`` (``None`` when none was saved)."""
        if state is None:
            return None
        return cls(
            model=ReconstructionModel.from_state(state),
            errors=arrays["multivariate.errors"],
            edges=arrays["multivariate.edges"],
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays to store beside ``to_json``."""
        return {"multivariate.errors": self.errors, "multivariate.edges": self.edges}
