"""The data-drift detectors document their parameters, notes and examples."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "chi_square",
    "cramer_von_mises",
    "cramers_v",
    "hellinger",
    "histogram",
    "jensen_shannon",
    "ks",
    "l_infinity",
    "mean_shift",
    "multiple_testing",
    "psi",
    "quality",
    "total_variation",
    "wasserstein",
]


@pytest.mark.parametrize("module", [m for m in MODULES if m != "histogram"])
def test_public_classes_and_functions_are_documented(module: str) -> None:
    imported = importlib.import_module(f"driftwarden.detectors.{module}")
    for name, obj in vars(imported).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != imported.__name__:
            continue
        if isinstance(obj, type) and hasattr(obj, "name"):
            doc = obj.__doc__ or ""
            for section in ("Parameters", "Notes", "Examples"):
                assert section in doc, (name, section)
