"""Write the NannyML CBPE fixture that tests/quality/test_cbpe.py compares ours with.

NannyML is not a dependency of driftwarden (it needs pandas 3 and
statsmodels, and phones home unless told not to), so run this once, by hand,
in a virtual environment of its own::

    python3 -m venv /tmp/nml
    /tmp/nml/bin/pip install nannyml statsmodels
    NML_DISABLE_USAGE_LOGGING=1 /tmp/nml/bin/python bench/cbpe_reference.py

It runs NannyML's CBPE on its bundled synthetic car-loan dataset (50,000
reference and 50,000 analysis rows, chunks of 5,000) and writes, under
``tests/quality/fixtures/``:

* ``cbpe_car_loan.csv.gz``: the rows our test needs to recompute the
  estimates: ``period`` (``reference``/``analysis``), ``score_pct`` (the
  predicted probability in percent: the dataset's probabilities are exactly
  ``k / 100``), ``y_pred`` and ``y_true`` (the analysis targets too, for the
  realized metrics);
* ``cbpe_car_loan_nannyml.json``: NannyML's version, the chunking, and per
  chunk and metric the estimate, its sampling error and the realized value.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import sys
from pathlib import Path

os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"

import nannyml
import numpy as np

CHUNK_SIZE = 5000
METRICS = ["roc_auc", "f1", "precision", "recall", "accuracy"]
FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "quality" / "fixtures"


def main() -> None:
    reference, analysis, targets = nannyml.load_synthetic_car_loan_dataset()
    analysis = analysis.merge(targets, on="id")
    estimator = nannyml.CBPE(
        y_pred_proba="y_pred_proba",
        y_pred="y_pred",
        y_true="repaid",
        timestamp_column_name="timestamp",
        metrics=METRICS,
        chunk_size=CHUNK_SIZE,
        problem_type="classification_binary",
    )
    estimator.fit(reference)
    table = estimator.estimate(analysis).filter(period="analysis").to_df()

    chunks = []
    for i in range(len(table)):
        row = {
            "start": int(table[("chunk", "start_index")].iloc[i]),
            "end": int(table[("chunk", "end_index")].iloc[i]) + 1,
        }
        for metric in METRICS:
            row[metric] = {
                "estimate": float(table[(metric, "value")].iloc[i]),
                "sampling_error": float(table[(metric, "sampling_error")].iloc[i]),
                "realized": float(table[(metric, "realized")].iloc[i]),
            }
        chunks.append(row)

    FIXTURES.mkdir(parents=True, exist_ok=True)
    meta = {
        "source": "nannyml.load_synthetic_car_loan_dataset()",
        "nannyml_version": nannyml.__version__,
        "python": sys.version.split()[0],
        "chunk_size": CHUNK_SIZE,
        "needs_calibration": bool(estimator.needs_calibration),
        "command": "NML_DISABLE_USAGE_LOGGING=1 /tmp/nml/bin/python bench/cbpe_reference.py",
        "chunks": chunks,
    }
    (FIXTURES / "cbpe_car_loan_nannyml.json").write_text(json.dumps(meta, indent=1) + "\n")

    buffer = io.StringIO()
    buffer.write("period,score_pct,y_pred,y_true\n")
    for period, frame in (("reference", reference), ("analysis", analysis)):
        proba = frame["y_pred_proba"].to_numpy()
        percent = np.round(proba * 100).astype(int)
        if not np.array_equal(percent / 100, proba):
            raise SystemExit("probabilities are not exactly k / 100: store them another way")
        for p, pred, true in zip(percent, frame["y_pred"], frame["repaid"], strict=True):
            buffer.write(f"{period},{p},{int(pred)},{int(true)}\n")
    # mtime=0: the same bytes on every run.
    with gzip.GzipFile(FIXTURES / "cbpe_car_loan.csv.gz", "wb", mtime=0) as out:
        out.write(buffer.getvalue().encode())
    print(f"wrote {len(chunks)} chunks and {len(reference) + len(analysis)} rows to {FIXTURES}")


if __name__ == "__main__":
    main()
