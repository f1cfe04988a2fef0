"""``driftwarden baseline``: a readable summary of each fitted reference profile."""

from __future__ import annotations

import numpy as np

from driftwarden.monitor.windows.profile import Profile


def describe(profile: Profile, fitted: bool) -> str:
    """One block of text per model: every feature with its binning or categories."""
    origin = "fitted now" if fitted else "already stored"
    lines = [
        f"model {profile.model}: reference {profile.reference_id} ({origin}), "
        f"{profile.n_rows:,} rows, task {profile.task}",
        f"  {'feature':<24} {'type':<12} {'missing':>8} {'bins':>5}  summary",
    ]
    reference = profile.numeric_reference
    finite_edges = np.isfinite(profile.edges).sum(axis=1)
    for i, name in enumerate(profile.numeric):
        summary = (
            f"min {reference.minimum[i]:.6g}  mean {reference.mean[i]:.6g}  "
            f"std {np.sqrt(reference.variance[i]):.6g}  max {reference.maximum[i]:.6g}"
        )
        lines.append(
            f"  {name:<24} {'numeric':<12} {profile.missing[i]:>8,} "
            f"{finite_edges[i] + 1:>5}  {summary}"
        )
    offset = len(profile.numeric)
    for j, (name, vocabulary) in enumerate(
        zip(profile.categorical, profile.vocabularies, strict=True)
    ):
        counts = profile.categorical_reference.counts[j]
        top = ", ".join(
            f"{category} {counts[k] / max(counts.sum(), 1):.1%}"
            for k, category in enumerate(vocabulary.top[:5])
        )
        more = f" (+{len(vocabulary.top) - 5} more)" if len(vocabulary.top) > 5 else ""
        rare = f"; {len(vocabulary.rare)} rare pooled" if vocabulary.rare else ""
        lines.append(
            f"  {name:<24} {'categorical':<12} {profile.missing[offset + j]:>8,} "
            f"{len(vocabulary.top):>5}  {top}{more}{rare}"
        )
    return "\n".join(lines)
