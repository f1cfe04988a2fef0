"""Our PCA reconstruction error against NannyML's DataReconstructionDriftCalculator.

NannyML is not a dependency of driftwarden (its pins conflict with ours, see
``bench/cbpe_reference.py``), so it runs in a virtual environment of its own,
which this script calls as a subprocess::

    python3 -m venv /tmp/nml
    /tmp/nml/bin/pip install nannyml statsmodels
    .venv/bin/python bench/reconstruction_reference.py --nannyml-python /tmp/nml/bin/python

The dataset (seeded ``np.random.default_rng``, made here and handed to NannyML
as a ``.npz`` file, so both sides read the same numbers): 50,000 reference and
50,000 analysis rows of three numeric features and one categorical one. ``x1``
and ``x2`` are standard normal with correlation +0.8; in the second half of
the analysis the correlation flips to -0.8 while both marginals stay standard
normal. ``x3`` is independent noise with 2 % missing values; ``segment`` has
four categories (frequencies 0.4/0.3/0.2/0.1) and 2 % missing values. Chunks
of 5,000 rows, NannyML's defaults otherwise (``n_components=0.65``, mean and
most-frequent imputation, ``StandardDeviationThreshold`` of 3).

Printed: per chunk, NannyML's mean reconstruction error, ours
(``ReconstructionModel`` + ``reference_band`` with the same chunks) and their
relative difference (target: within 5 %), the thresholds, and both alerts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHUNK_SIZE = 5000
ROWS = 50_000
CATEGORIES = ["s0", "s1", "s2", "s3"]


def make_dataset(seed: int) -> dict[str, np.ndarray]:
    """Reference and analysis arrays: numeric (3, n) with NaN, codes (1, n) with -1."""
    rng = np.random.default_rng(seed)

    def rows(n: int, rho: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x1 = rng.normal(size=n)
        x2 = rho * x1 + np.sqrt(1.0 - rho**2) * rng.normal(size=n)
        x3 = rng.normal(2.0, 3.0, size=n)
        x3[rng.random(n) < 0.02] = np.nan
        codes = rng.choice(4, size=n, p=[0.4, 0.3, 0.2, 0.1])
        codes[rng.random(n) < 0.02] = -1
        return np.stack([x1, x2, x3]), codes[None, :]

    ref_num, ref_codes = rows(ROWS, np.full(ROWS, 0.8))
    flip = np.where(np.arange(ROWS) < ROWS // 2, 0.8, -0.8)
    ana_num, ana_codes = rows(ROWS, flip)
    return {
        "reference_numeric": ref_num,
        "reference_codes": ref_codes,
        "analysis_numeric": ana_num,
        "analysis_codes": ana_codes,
    }


def nannyml_side(data_path: str, out_path: str) -> None:
    """Run in NannyML's environment: fit on the reference, write per-chunk results."""
    os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"
    import nannyml
    import pandas as pd

    data = np.load(data_path)

    def frame(prefix: str) -> pd.DataFrame:
        numeric, codes = data[f"{prefix}_numeric"], data[f"{prefix}_codes"][0]
        segment = np.array([*CATEGORIES, None], dtype=object)[codes]  # -1 -> None
        return pd.DataFrame(
            {
                "x1": numeric[0],
                "x2": numeric[1],
                "x3": numeric[2],
                "segment": pd.Series(segment, dtype=object).fillna(np.nan),
            }
        )

    calculator = nannyml.DataReconstructionDriftCalculator(
        column_names=["x1", "x2", "x3", "segment"], chunk_size=CHUNK_SIZE
    )
    calculator.fit(frame("reference"))
    table = calculator.calculate(frame("analysis")).to_df()
    out = {
        "nannyml_version": nannyml.__version__,
        "python": sys.version.split()[0],
        "categorical": list(calculator.categorical_column_names),
        "n_components": int(calculator._pca.n_components_),
        "chunks": [],
    }
    for i in range(len(table)):
        out["chunks"].append(
            {
                "period": str(table[("chunk", "period")].iloc[i]),
                "start": int(table[("chunk", "start_index")].iloc[i]),
                "end": int(table[("chunk", "end_index")].iloc[i]) + 1,
                "value": float(table[("reconstruction_error", "value")].iloc[i]),
                "upper": _number(table[("reconstruction_error", "upper_threshold")].iloc[i]),
                "lower": _number(table[("reconstruction_error", "lower_threshold")].iloc[i]),
                "alert": bool(table[("reconstruction_error", "alert")].iloc[i]),
            }
        )
    Path(out_path).write_text(json.dumps(out, indent=1))


def _number(value: object) -> float | None:
    return None if value is None or value != value else float(value)  # type: ignore[arg-type]


def compare(nannyml_python: str, seed: int) -> int:
    from driftwarden.detectors.reconstruction import (
        ErrorSummary,
        ReconstructionModel,
        error_edges,
        reconstruction_drift,
        reference_band,
    )

    data = make_dataset(seed)
    with tempfile.TemporaryDirectory() as tmp:
        data_path, out_path = f"{tmp}/data.npz", f"{tmp}/nannyml.json"
        np.savez(data_path, **data)
        env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"}
        command = [nannyml_python, __file__, "--nannyml-side", data_path, out_path]
        subprocess.run(command, check=True, env=env)
        theirs = json.loads(Path(out_path).read_text())

    model = ReconstructionModel.fit(data["reference_numeric"], data["reference_codes"])
    reference_errors = model.errors(data["reference_numeric"], data["reference_codes"])
    band = reference_band(reference_errors, CHUNK_SIZE)
    edges = error_edges(reference_errors)
    errors = {
        "reference": reference_errors,
        "analysis": model.errors(data["analysis_numeric"], data["analysis_codes"]),
    }
    print(
        f"NannyML {theirs['nannyml_version']} (Python {theirs['python']}), categorical columns "
        f"{theirs['categorical']}, {theirs['n_components']} of 4 components kept; "
        f"ours {model.components.shape[0]}\n"
    )
    print("| period | rows | NannyML | ours | relative difference | NannyML alert | our drift |")
    print("|---|---|---:|---:|---:|---|---|")
    worst = 0.0
    for chunk in theirs["chunks"]:
        rows = errors[chunk["period"]][chunk["start"] : chunk["end"]]
        summary = ErrorSummary.from_errors(rows, edges)
        result = reconstruction_drift(summary, band)
        difference = summary.mean / chunk["value"] - 1.0
        worst = max(worst, abs(difference))
        print(
            f"| {chunk['period']} | {chunk['start']}-{chunk['end']} | {chunk['value']:.6f} "
            f"| {summary.mean:.6f} | {difference:+.1e} | {chunk['alert']} "
            f"| {result.drift} |"
        )
    first = theirs["chunks"][0]
    lower = "none" if band.lower is None else f"{band.lower:.6f}"
    print(
        f"\nthresholds: NannyML lower {first['lower']} upper {first['upper']:.6f}; "
        f"ours lower {lower} upper {band.upper:.6f}"
    )
    print(f"largest relative chunk difference {worst:.1e} (target: within 5 %)")
    return 0 if worst <= 0.05 else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nannyml-python", default="/tmp/nml/bin/python")
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--nannyml-side", nargs=2, metavar=("DATA", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.nannyml_side:
        nannyml_side(*args.nannyml_side)
        return
    raise SystemExit(compare(args.nannyml_python, args.seed))


if __name__ == "__main__":
    main()
