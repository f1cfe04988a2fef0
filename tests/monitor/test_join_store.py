"""The join store's record of which waiting predictions have a label, on SQLite and
PostgreSQL: flags set by labels, cleared with their rows, never inherited by new rows."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from driftwarden.monitor import storage
from driftwarden.monitor.labels import JoinStore

MODEL = "m"
N = 20_000  # over two chunks of flags


def _predictions(start: int, n: int) -> pl.DataFrame:
    ts = np.arange(start, start + n, dtype=np.int64) * 1000
    return pl.DataFrame(
        {
            "id": [f"p-{i}" for i in range(start, start + n)],
            "ts": ts,
            "pane": ts // 3_600_000,
            "prediction": ["0.5"] * n,
            "groups": [None] * n,
            "expires_at": ts + 86_400_000,
        },
        schema_overrides={"groups": pl.String},
    )


def _label(connection, store: JoinStore, ids: list[str]) -> None:
    found = store.find(connection, MODEL, ids)
    store.set_flags(connection, MODEL, found["seq"].to_numpy(), True)


@pytest.fixture
def store_connection(database_url: str):
    engine = storage.create(database_url)
    storage.upgrade(engine)
    with engine.connect() as connection:
        yield JoinStore(engine.dialect.name), connection
    engine.dispose()


def test_labels_are_flagged_counted_and_expire_with_their_predictions(store_connection) -> None:
    store, connection = store_connection
    assert store.insert_pending(connection, MODEL, _predictions(0, N)) == N
    assert store.insert_pending(connection, MODEL, _predictions(N - 10, 20)) == 10
    total = N + 10
    rng = np.random.default_rng(3)
    chosen = np.sort(rng.choice(total, 7_000, replace=False))
    _label(connection, store, [f"p-{i}" for i in chosen])
    connection.commit()
    assert store.label_counts(connection, MODEL) == (total - chosen.size, chosen.size)

    found = store.find(connection, MODEL, [f"p-{i}" for i in range(total)])
    numbers = found["id"].str.strip_prefix("p-").cast(pl.Int64).to_numpy()
    flagged = store.labeled(connection, MODEL, found["seq"].to_numpy())
    np.testing.assert_array_equal(flagged, np.isin(numbers, chosen))
    assert found["seq"].n_unique() == total

    # Predictions with ts < 5,000 s expire; those of them never labelled are counted.
    cutoff = 5_000 * 1000 + 86_400_000
    never, _ = store.expire(connection, MODEL, cutoff, cutoff)
    assert never == 5_000 - np.count_nonzero(chosen < 5_000)
    left = chosen[chosen >= 5_000]
    assert store.label_counts(connection, MODEL) == (total - 5_000 - left.size, left.size)


def test_new_predictions_never_inherit_the_flags_of_deleted_ones(store_connection) -> None:
    store, connection = store_connection
    store.insert_pending(connection, MODEL, _predictions(0, N))
    _label(connection, store, [f"p-{i}" for i in range(N - 100, N)])
    # Rows deleted outside the join (as retention does) leave their flags behind.
    connection.exec_driver_sql(
        "DELETE FROM label_join WHERE id IN ("
        + ", ".join(f"'p-{i}'" for i in range(N - 100, N))
        + ")"
    )
    store.insert_pending(connection, MODEL, _predictions(N, 300))
    connection.commit()
    assert store.label_counts(connection, MODEL) == (N - 100 + 300, 0)
