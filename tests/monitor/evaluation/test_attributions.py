"""Attributions carried by prediction events: decoded (or dead letters), summed per window,
and compared with the reference's as ``feature_importance`` records of detector
``attribution``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pytest
from scipy.stats import spearmanr

from driftwarden.monitor import config as configuration
from driftwarden.monitor.commands.replay import replay
from driftwarden.monitor.ingest.decoding import decoder
from driftwarden.monitor.ingest.messages import Messages

MODEL = "pricing"
FEATURES = ("x1", "x2", "x3", "segment")
START = 1_795_651_200_000
SCALES = {"x1": 1.0, "x2": 0.5, "x3": 0.1, "segment": 0.3}


def rows(n: int, rng: np.random.Generator, scales: dict[str, float]) -> pl.DataFrame:
    """Three numeric features, a segment, a score, and an attribution per feature whose size
    follows ``scales`` (some missing)."""
    x = rng.normal(size=(3, n))
    segment = rng.choice(["a", "b", "c"], size=n)
    columns: dict[str, object] = {"x1": x[0], "x2": x[1], "x3": x[2], "segment": segment}
    columns["prediction"] = 1 / (1 + np.exp(-(x[0] + 0.5 * x[1])))
    for name in FEATURES:
        phi = scales[name] * rng.normal(size=n)
        phi[rng.random(n) < 0.05] = np.nan
        columns[f"attribution.{name}"] = pl.Series(phi, nan_to_null=True)
    return pl.DataFrame(columns)


def config_text(reference: Path, importance: str = "{min_rows: 500}") -> str:
    return f"""\
storage:
  url: "sqlite://"
models:
  {MODEL}:
    task: binary_classification
    reference: {reference}
    features: {{numeric: [x1, x2, x3], categorical: [segment]}}
    window: {{kind: count, size: 2000, min_samples: 500}}
    importance: {importance}
"""


def event(i: int, row: dict, attributions: object) -> bytes:
    body = {
        "model": MODEL,
        "id": f"e-{i}",
        "ts": START + i,
        "features": {name: row[name] for name in FEATURES},
        "prediction": row["prediction"],
    }
    if attributions is not ...:
        body["attributions"] = attributions
    return orjson.dumps(body)


def write_events(path: Path, frame: pl.DataFrame) -> None:
    lines = [
        event(i, row, {name: row[f"attribution.{name}"] for name in FEATURES})
        for i, row in enumerate(frame.iter_rows(named=True))
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_malformed_attributions_are_dead_letters_naming_the_field(tmp_path: Path) -> None:
    reference = tmp_path / "reference.parquet"
    rows(200, np.random.default_rng(1), SCALES).write_parquet(reference)
    loaded = configuration.parse(config_text(reference), environ={})
    row = rows(1, np.random.default_rng(2), SCALES).row(0, named=True)
    good = {"x1": 0.5, "x2": -0.25, "segment": 1}
    cases = [
        event(0, row, good),
        event(1, row, ...),  # no attributions: fine
        event(2, row, None),
        event(3, row, {"x1": "much"}),
        event(4, row, [0.1, 0.2]),
        event(5, row, {"x2": {"nested": 1}}),
        event(6, row, {"x1": True}),
        event(7, row, {"x1": "0.75"}),  # numeric text, as feature values
    ]
    decoded = decoder(loaded, "prediction").decode(
        Messages(cases, "test", 0, np.arange(len(cases), dtype=np.int64))
    )
    letters = {letter.origin.offset: letter for letter in decoded.dead_letters}
    assert sorted(letters) == [3, 4, 5, 6]
    assert all(letter.reason == "wrong_type" for letter in letters.values())
    assert "attributions.x1" in letters[3].detail and "much" in letters[3].detail
    assert "'attributions': expected an object" in letters[4].detail
    assert "attributions.x2" in letters[5].detail
    assert "attributions.x1" in letters[6].detail
    frame = decoded.frames[MODEL].sort("_row")
    assert frame["_row"].to_list() == [0, 1, 2, 7]
    assert frame.row(0, named=True)["att:x1"] == 0.5
    assert frame.row(0, named=True)["att:segment"] == 1.0
    assert frame.row(0, named=True)["att:x3"] is None
    assert frame["att:x1"].to_list()[1:] == [None, None, 0.75]


def test_mean_absolute_attributions_and_their_ranking_equal_a_direct_computation(
    tmp_path: Path,
) -> None:
    reference_rows = rows(5000, np.random.default_rng(3), SCALES)
    reference = tmp_path / "reference.parquet"
    reference_rows.write_parquet(reference)
    swapped = {"x1": 0.2, "x2": 0.5, "x3": 0.1, "segment": 0.3}  # x1 lost most of its weight
    analysis = pl.concat(
        [
            rows(2000, np.random.default_rng(4), SCALES),
            rows(2000, np.random.default_rng(5), swapped),
        ]
    )
    write_events(tmp_path / "predictions.jsonl", analysis)
    config = tmp_path / "config.yaml"
    config.write_text(config_text(reference))
    loaded = configuration.load(config)
    replay(loaded, tmp_path / "predictions.jsonl", tmp_path / "out")
    results = [
        orjson.loads(line)
        for line in (tmp_path / "out" / "results.jsonl").read_bytes().splitlines()
    ]
    attribution = [
        r for r in results if r["kind"] == "feature_importance" and r["detector"] == "attribution"
    ]
    assert len(attribution) == 2 * (len(FEATURES) + 1)

    def mean_abs(frame: pl.DataFrame) -> dict[str, float]:
        return {
            name: float(np.nanmean(np.abs(frame[f"attribution.{name}"].to_numpy())))
            for name in FEATURES
        }

    expected_reference = mean_abs(reference_rows)
    for index in (0, 1):
        window = analysis.slice(2000 * index, 2000)
        expected = mean_abs(window)
        seen = {r["feature"]: r for r in attribution if r["window_index"] == index and r["feature"]}
        for name in FEATURES:
            record = seen[name]
            assert record["status"] == "ok"
            assert record["value"] == pytest.approx(expected[name], rel=1e-9)
            assert record["reference_value"] == pytest.approx(expected_reference[name], rel=1e-9)
            assert record["n_window"] == window[f"attribution.{name}"].is_not_null().sum()
            assert (
                record["n_reference"] == reference_rows[f"attribution.{name}"].is_not_null().sum()
            )
        (ranking,) = [
            r
            for r in attribution
            if r["window_index"] == index and r["metric"] == "rank_correlation"
        ]
        rho = spearmanr([expected[n] for n in FEATURES], [expected_reference[n] for n in FEATURES])
        assert ranking["value"] == pytest.approx(rho.statistic, rel=1e-9)
        flagged = {name for name, record in seen.items() if record["drift"]}
        assert flagged == (set() if index == 0 else {"x1"})
    assert seen["x1"]["direction"] == "below"


def test_flat_parquet_input_carries_attributions_in_its_attribution_columns(
    tmp_path: Path,
) -> None:
    reference_rows = rows(3000, np.random.default_rng(6), SCALES)
    reference = tmp_path / "reference.parquet"
    reference_rows.write_parquet(reference)
    analysis = rows(2000, np.random.default_rng(7), SCALES)
    write_events(tmp_path / "predictions.jsonl", analysis)
    n = analysis.height
    analysis.with_columns(
        pl.lit(MODEL).alias("model"),
        pl.format("e-{}", pl.int_range(n)).alias("id"),
        (START + pl.int_range(n, dtype=pl.Int64)).alias("ts"),
    ).write_parquet(tmp_path / "predictions.parquet")
    config = tmp_path / "config.yaml"
    config.write_text(config_text(reference))
    loaded = configuration.load(config)
    found = []
    for name in ("predictions.jsonl", "predictions.parquet"):
        replay(loaded, tmp_path / name, tmp_path / name.replace(".", "-"))
        results = (tmp_path / name.replace(".", "-") / "results.jsonl").read_bytes()
        found.append(
            sorted(
                (r["feature"] or "", r["metric"] or "", r["value"], r["n_window"])
                for r in map(orjson.loads, results.splitlines())
                if r["kind"] == "feature_importance" and r["detector"] == "attribution"
            )
        )
    jsonl, parquet = found
    assert len(jsonl) == len(FEATURES) + 1
    assert all(value is not None for _, _, value, _ in jsonl)
    assert [(f, m, n) for f, m, _, n in parquet] == [(f, m, n) for f, m, _, n in jsonl]
    for (*_, ours, _), (*_, theirs, _) in zip(parquet, jsonl, strict=True):
        assert ours == pytest.approx(theirs, rel=1e-12)
