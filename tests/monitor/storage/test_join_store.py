"""The join store on SQLite and PostgreSQL: waiting predictions found by id (also after a
reload, and with random ids), stored once per id, and the record of which have a label:
flags set by labels, cleared with their rows, never inherited by new rows."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from driftwarden.monitor import storage
from driftwarden.monitor.labels.waiting import WaitingPredictions
from driftwarden.monitor.storage.join_store import JoinStore

MODEL = "m"
N = 20_000  # over two chunks of flags


def _ids(numbers: range | np.ndarray) -> list[str]:
    return [f"p-{i}" for i in numbers]


def _predictions(start: int, n: int) -> pl.DataFrame:
    ts = np.arange(start, start + n, dtype=np.int64) * 1000
    return pl.DataFrame(
        {
            "id": _ids(range(start, start + n)),
            "ts": ts,
            "pane": ts // 3_600_000,
            "prediction": ["0.5"] * n,
            "groups": [None] * n,
            "buckets": [None] * n,
            "expires_at": ts + 86_400_000,
        },
        schema_overrides={"groups": pl.String, "buckets": pl.String},
    )


def _label(connection, waiting: WaitingPredictions, ids: list[str]) -> None:
    found = waiting.find(connection, pl.Series(ids))
    waiting.store.set_flags(connection, MODEL, found["seq"].to_numpy(), True)


@pytest.fixture
def store_connection(database_url: str):
    engine = storage.create(database_url)
    storage.upgrade(engine)
    with engine.connect() as connection:
        yield JoinStore(engine.dialect.name), connection
    engine.dispose()


def test_labels_are_flagged_counted_and_expire_with_their_predictions(store_connection) -> None:
    store, connection = store_connection
    waiting = WaitingPredictions(store, MODEL)
    assert waiting.insert(connection, _predictions(0, N)) == N
    assert waiting.insert(connection, _predictions(N - 10, 20)) == 10
    total = N + 10
    rng = np.random.default_rng(3)
    chosen = np.sort(rng.choice(total, 7_000, replace=False))
    _label(connection, waiting, _ids(chosen))
    connection.commit()
    assert store.label_counts(connection, MODEL) == (total - chosen.size, chosen.size)

    found = waiting.find(connection, pl.Series(_ids(range(total))))
    numbers = found["id"].str.strip_prefix("p-").cast(pl.Int64).to_numpy()
    flagged = store.labeled(connection, MODEL, found["seq"].to_numpy())
    np.testing.assert_array_equal(flagged, np.isin(numbers, chosen))
    assert found["seq"].n_unique() == total

    # Predictions with ts < 5,000 s expire; those of them never labelled are counted.
    cutoff = 5_000 * 1000 + 86_400_000
    seqs, never, _ = store.expire(connection, MODEL, cutoff, cutoff)
    waiting.forget(seqs)
    assert seqs.size == 5_000
    assert never == 5_000 - np.count_nonzero(chosen < 5_000)
    left = chosen[chosen >= 5_000]
    assert store.label_counts(connection, MODEL) == (total - 5_000 - left.size, left.size)
    assert waiting.find(connection, pl.Series(_ids(range(4_990, 5_010))))["id"].to_list() == (
        _ids(range(5_000, 5_010))
    )


def test_each_id_is_stored_once_and_found_after_a_reload(store_connection) -> None:
    store, connection = store_connection
    rng = np.random.default_rng(11)
    uuids = [f"{value:032x}" for value in rng.integers(0, 2**63, size=5_000)]
    rows = pl.DataFrame(
        {
            "id": uuids,
            "ts": np.arange(5_000, dtype=np.int64),
            "pane": np.zeros(5_000, dtype=np.int64),
            "prediction": [str(i) for i in range(5_000)],
            "groups": [None] * 5_000,
            "buckets": [None] * 5_000,
            "expires_at": np.full(5_000, 10**12, dtype=np.int64),
        },
        schema_overrides={"groups": pl.String, "buckets": pl.String},
    )
    waiting = WaitingPredictions(store, MODEL)
    # A batch repeating an id, then batches repeating stored ids: each id is stored once.
    assert waiting.insert(connection, pl.concat([rows[:100], rows[:100]])) == 100
    assert waiting.insert(connection, rows[50:3_000]) == 2_900
    connection.commit()
    reloaded = WaitingPredictions(store, MODEL)
    assert reloaded.insert(connection, rows[2_000:]) == 2_000
    assert reloaded.insert(connection, rows[4_000:]) == 0
    connection.commit()

    wanted = rng.permutation(5_000)[:1_000]
    asked = pl.Series([*[uuids[i] for i in wanted], "never-stored"])
    for instance in (reloaded, WaitingPredictions(store, MODEL)):
        found = instance.find(connection, asked)
        assert sorted(found["id"].to_list()) == sorted(uuids[i] for i in wanted)
        by_id = dict(zip(found["id"], found["prediction"], strict=True))
        assert all(by_id[uuids[i]] == str(i) for i in wanted)
    stored = connection.exec_driver_sql("SELECT count(*), count(DISTINCT id) FROM label_join")
    assert stored.one() == (5_000, 5_000)


def test_new_predictions_never_inherit_the_flags_of_deleted_ones(store_connection) -> None:
    store, connection = store_connection
    waiting = WaitingPredictions(store, MODEL)
    waiting.insert(connection, _predictions(0, N))
    _label(connection, waiting, _ids(range(N - 100, N)))
    # Rows deleted outside the join (as retention does) leave their flags behind.
    connection.exec_driver_sql(
        "DELETE FROM label_join WHERE id IN ("
        + ", ".join(f"'p-{i}'" for i in range(N - 100, N))
        + ")"
    )
    WaitingPredictions(store, MODEL).insert(connection, _predictions(N, 300))
    connection.commit()
    assert store.label_counts(connection, MODEL) == (N - 100 + 300, 0)
