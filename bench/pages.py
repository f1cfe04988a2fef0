"""Evidence-page render times from SQLite: a window page of a model with many features, a
model page over many windows, and the fleet page.

Replays a synthetic model (``--features`` features, 90% numeric, 10% categorical, drift in
the second half) over ``--windows`` hourly windows of ``--per-window`` events into a SQLite
file, then renders each page ``--repeat`` times through ``Pages`` (as the daemon serves
them: the query, the summary and profile decoding, the charts and the template) and prints
the medians. A served page keeps what does not change (profiles, each window's drift per
feature) in memory; the "fresh Pages" rows render with nothing of that in memory, as a
just-started daemon does (but for compiling the templates, once per process). Targets:
window page of 100 features < 300 ms, model page over 500 windows < 500 ms.

    .venv/bin/python bench/pages.py [--features 100] [--windows 500] [--per-window 200]
                                    [--repeat 15]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from driftwarden.monitor import config as configuration
from driftwarden.monitor import storage
from driftwarden.monitor.commands.replay import replay
from driftwarden.monitor.service.pages import Pages

MODEL = "bench-model"
HOUR = 3_600_000
START = 1_764_547_200_000  # 2025-12-01T00:00:00Z


def _frame(n: int, numeric: list[str], categorical: list[str], rng: np.random.Generator,
           drift: np.ndarray) -> pl.DataFrame:  # fmt: skip
    columns: dict[str, object] = {}
    for name in numeric:
        columns[name] = rng.normal(0.0, 1.0, n) + 0.8 * drift
    for name in categorical:
        p = np.where(drift[:, None] > 0, [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1])
        draws = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
        columns[name] = np.array(["a", "b", "c", "d"])[draws]
    columns["prediction"] = rng.random(n).round(6)
    return pl.DataFrame(columns)


def build(directory: Path, features: int, windows: int, per_window: int) -> str:
    """Replay the synthetic model into ``directory``; return the database URL."""
    rng = np.random.default_rng(0)
    n_categorical = max(1, features // 10)
    numeric = [f"x{i:03d}" for i in range(features - n_categorical)]
    categorical = [f"c{i:02d}" for i in range(n_categorical)]
    reference = _frame(20_000, numeric, categorical, rng, np.zeros(20_000))
    reference = reference.with_columns(pl.Series("label", rng.integers(0, 2, 20_000)))
    reference.write_parquet(directory / "reference.parquet")
    n = windows * per_window
    ts = START + (np.arange(n, dtype=np.int64) * windows * HOUR) // n
    events = _frame(n, numeric, categorical, rng, (ts >= START + windows // 2 * HOUR) * 1.0)
    lines = events.select(
        pl.lit(MODEL).alias("model"),
        pl.format("p-{}", pl.int_range(0, n)).alias("id"),
        pl.Series("ts", ts),
        pl.struct(numeric + categorical).alias("features"),
        "prediction",
    )
    lines.write_ndjson(directory / "predictions.jsonl")
    url = f"sqlite:///{directory / 'pages.db'}"
    (directory / "config.yaml").write_text(
        f'storage:\n  url: "{url}"\nmodels:\n  {MODEL}:\n    task: binary_classification\n'
        f"    reference: {directory / 'reference.parquet'}\n"
        f"    features:\n      numeric: [{', '.join(numeric)}]\n"
        f"      categorical: [{', '.join(categorical)}]\n"
        "    window: {kind: time, size: 1h, allowed_lateness: 5m}\n"
    )
    storage.upgrade(storage.create(url))
    replay(configuration.load(directory / "config.yaml"), directory / "predictions.jsonl",
           directory / "out", storage_url=url)  # fmt: skip
    return url


def median_ms(render: Callable[[], str | None], repeat: int) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        html = render()
        times.append((time.perf_counter() - started) * 1000)
        size = len(html or "")
    return statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--windows", type=int, default=500)
    parser.add_argument("--per-window", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="driftwarden-pages-") as scratch:
        started = time.perf_counter()
        url = build(Path(scratch), args.features, args.windows, args.per_window)
        print(f"replayed {args.windows} windows × {args.features} features "
              f"in {time.perf_counter() - started:.0f} s")  # fmt: skip
        engine = storage.create(url)
        store = storage.Store(engine)
        pages = Pages(store)
        last = args.windows - 1
        rows = [
            ("window page (profile cached)", lambda: pages.window(MODEL, last)),
            ("window page (fresh Pages)", lambda: Pages(store).window(MODEL, last)),
            (f"model page over {args.windows} windows", lambda: pages.model(MODEL, args.windows)),
            ("model page (fresh Pages)", lambda: Pages(store).model(MODEL, args.windows)),
            ("fleet page", pages.fleet),
        ]
        print(f"{'page':<36} {'median ms':>10} {'HTML kB':>9}")
        for name, render in rows:
            render()  # warm the template cache
            median, size = median_ms(render, args.repeat)
            print(f"{name:<36} {median:>10.1f} {size / 1024:>9.0f}")
        engine.dispose()


if __name__ == "__main__":
    main()
