"""A synthetic credit model whose inputs drift: the data of the demo, the tests and the benches.

Ten numeric and two categorical features, one group attribute (``sex``), a
probability from a fixed logistic model, and a label drawn from it. After
``drift_from``, the features named in ``drift`` change distribution.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

NUMERIC = (
    "age",
    "income",
    "debt_ratio",
    "credit_lines",
    "utilization",
    "tenure_months",
    "late_payments",
    "balance",
    "inquiries",
    "savings",
)
CATEGORICAL = ("region", "channel")
GROUPS = ("sex",)
REGIONS = ("north", "south", "east", "west", "central")
CHANNELS = ("web", "branch", "partner", "phone")
DEFAULT_DRIFT = ("income", "utilization", "region")
MODEL = "credit-default"


@dataclass(frozen=True)
class Drift:
    """How drifted features change: numeric ones shift by ``shift`` reference std, scale by
    ``scale``; categorical ones move ``mass`` of their probability to the last category."""

    features: tuple[str, ...] = DEFAULT_DRIFT
    shift: float = 0.8
    scale: float = 1.3
    mass: float = 0.35


@dataclass(frozen=True)
class Stream:
    """A stream of predictions: ``n`` events evenly over ``[start, start + span)`` (epoch ms).

    From ``concept_from`` on, outcomes follow another relationship than the model's
    (defaults become more likely than it predicts): concept drift.
    """

    n: int
    start: int
    span: int
    drift_from: int | None = None
    drift: Drift = field(default_factory=Drift)
    model: str = MODEL
    seed: int = 1
    concept_from: int | None = None


def features(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Reference-distributed feature columns."""
    age = np.clip(rng.normal(42, 12, n), 18, 90).round()
    income = np.exp(rng.normal(10.8, 0.5, n)).round(2)
    return {
        "age": age,
        "income": income,
        "debt_ratio": rng.beta(2, 5, n).round(4),
        "credit_lines": rng.poisson(4, n).astype(np.float64),
        "utilization": rng.beta(2, 3, n).round(4),
        "tenure_months": rng.gamma(3, 20, n).round(),
        "late_payments": rng.poisson(0.4, n).astype(np.float64),
        "balance": rng.lognormal(8, 1, n).round(2),
        "inquiries": rng.poisson(1.2, n).astype(np.float64),
        "savings": rng.exponential(5000, n).round(2),
        "region": rng.choice(REGIONS, n, p=[0.3, 0.25, 0.2, 0.15, 0.1]),
        "channel": rng.choice(CHANNELS, n, p=[0.5, 0.25, 0.15, 0.1]),
        "sex": rng.choice(("F", "M"), n, p=[0.48, 0.52]),
    }


def probability(columns: dict[str, np.ndarray]) -> np.ndarray:
    """The model's predicted probability of default."""
    logit = (
        -1.0
        - 0.02 * (columns["age"] - 42)
        - 0.8 * (np.log(columns["income"]) - 10.8)
        + 2.0 * (columns["debt_ratio"] - 0.3)
        + 1.5 * (columns["utilization"] - 0.4)
        + 0.6 * columns["late_payments"]
        + 0.15 * columns["inquiries"]
        + 0.3 * (columns["channel"] == "partner")
    )
    return 1.0 / (1.0 + np.exp(-logit))


def reference(n: int = 50_000, seed: int = 0) -> pl.DataFrame:
    """A reference table: features, group, ``prediction`` and ``label``."""
    rng = np.random.default_rng(seed)
    columns = features(n, rng)
    p = probability(columns)
    return pl.DataFrame(
        {
            **columns,
            "prediction": p.round(6),
            "label": (rng.random(n) < p).astype(np.int64),
        }
    )


def drifted(
    columns: dict[str, np.ndarray], mask: np.ndarray, drift: Drift, rng: np.random.Generator
) -> None:
    """Apply ``drift`` in place to the rows selected by ``mask``."""
    for name in drift.features:
        values = columns[name]
        if name in CATEGORICAL:
            categories = REGIONS if name == "region" else CHANNELS
            move = mask & (rng.random(len(values)) < drift.mass)
            values[move] = categories[-1]
            continue
        std = float(np.std(values[~mask])) if (~mask).any() else float(np.std(values))
        centre = float(np.mean(values[mask])) if mask.any() else 0.0
        values[mask] = centre + (values[mask] - centre) * drift.scale + drift.shift * std


def events(stream: Stream) -> pl.DataFrame:
    """Prediction events as flat columns: model, id, ts, model_version, features, group, prediction
    and the label the outcome will have."""
    rng = np.random.default_rng(stream.seed)
    columns = features(stream.n, rng)
    ts = stream.start + (np.arange(stream.n, dtype=np.int64) * stream.span) // max(stream.n, 1)
    if stream.drift_from is not None:
        drifted(columns, ts >= stream.drift_from, stream.drift, rng)
    p = probability(columns)
    outcome = p.copy()
    if stream.concept_from is not None:
        changed = ts >= stream.concept_from
        outcome[changed] = np.clip(0.35 + 0.3 * (1.0 - p[changed]), 0.0, 1.0)
    return pl.DataFrame(
        {
            "model": np.full(stream.n, stream.model),
            "id": np.char.add("p-", np.arange(stream.n).astype(str)),
            "ts": ts,
            "model_version": np.full(stream.n, "7"),
            **columns,
            "prediction": p.round(6),
            "label": (rng.random(stream.n) < outcome).astype(np.int64),
        }
    )


def label_events(
    frame: pl.DataFrame,
    seed: int = 2,
    *,
    share: float = 0.9,
    early: float = 0.01,
    delay: tuple[int, int] = (60_000, 3_600_000),
) -> pl.DataFrame:
    """Label events for ``events()``: a ``share`` of predictions get their label after a
    random delay (an ``early`` few before their prediction), the rest never; in label-time
    order."""
    rng = np.random.default_rng(seed)
    n = frame.height
    labelled = rng.random(n) < share
    lag = rng.integers(delay[0], delay[1], n)
    lag = np.where(rng.random(n) < early, -lag, lag)
    return (
        frame.with_columns((pl.col("ts") + pl.Series(lag)).alias("ts"))
        .filter(pl.Series(labelled))
        .select("model", "id", "ts", "label")
        .sort("ts", maintain_order=True)
    )


def with_losses(labels: pl.DataFrame, events: pl.DataFrame, seed: int = 3) -> pl.DataFrame:
    """Labels carrying a business value: ``loss_amount``, what a wrong decision cost (a
    missed default costs a share of the applicant's income, a refused good one a small fixed
    amount; 0 when the decision was right)."""
    rng = np.random.default_rng(seed)
    decided = labels.join(events.select("id", "prediction", "income"), on="id", how="left")
    refused = pl.col("prediction") >= 0.5
    missed = ~refused & (pl.col("label") == 1)
    wasted = refused & (pl.col("label") == 0)
    share = pl.Series(rng.uniform(0.05, 0.2, labels.height))
    loss = pl.when(missed).then(pl.col("income") * share).when(wasted).then(50.0).otherwise(0.0)
    return decided.select(
        *labels.columns, pl.struct(loss.round(2).alias("loss_amount")).alias("business")
    )


def label_lines(frame: pl.DataFrame) -> list[bytes]:
    """Label events as JSON lines in the event schema."""
    return [line for line in frame.write_ndjson().encode().split(b"\n") if line]


def prediction_lines(frame: pl.DataFrame) -> list[bytes]:
    """Events of ``events()`` as JSON lines in the event schema."""
    numeric = [name for name in NUMERIC if name in frame.columns]
    categorical = [name for name in CATEGORICAL if name in frame.columns]
    out = frame.select(
        "model",
        "model_version",
        "id",
        "ts",
        pl.struct(numeric + categorical).alias("features"),
        "prediction",
        pl.struct(list(GROUPS)).alias("groups"),
    )
    return [line for line in out.write_ndjson().encode().split(b"\n") if line]


def config_yaml(reference_path: str, storage_url: str, *, window: str = "1h") -> str:
    """A configuration for the synthetic model."""
    return f"""\
storage:
  url: "{storage_url}"
models:
  {MODEL}:
    task: binary_classification
    reference: {reference_path}
    features:
      numeric: [{", ".join(NUMERIC)}]
      categorical: [{", ".join(CATEGORICAL)}]
    groups: [{", ".join(GROUPS)}]
    decision_threshold: 0.5
    window: {{kind: time, size: {window}, allowed_lateness: 5m}}
"""
