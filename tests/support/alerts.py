"""Helpers of the alerting tests: a hand-moved clock, result records, configurations, databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from driftwarden.alerts import AlertsConfig
from driftwarden.core.records import ResultRecord
from driftwarden.core.times import to_ms
from driftwarden.monitor import storage

HOUR = 3_600_000
T0 = 1_795_651_200_000  # 2026-11-26T00:00:00Z
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"


class Clock:
    """A clock tests move by hand: ``now`` is a datetime for the tests' own reading; called,
    it gives epoch milliseconds as the alerting code counts time."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> int:
        return to_ms(self.now)

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def at(milliseconds: int, **delta: float) -> datetime:
    """The datetime of epoch milliseconds, plus ``delta``."""
    return datetime.fromtimestamp(milliseconds / 1000, UTC) + timedelta(**delta)


def result(
    window: int,
    feature: str | None = "income",
    value: float | None = 0.3,
    *,
    model: str = "credit-default",
    detector: str = "psi",
    kind: str = "data_drift",
    threshold: float = 0.2,
    direction: str = "above",
    **changes: Any,
) -> ResultRecord:
    """A result record of hourly window ``window`` (from ``T0``)."""
    fields: dict[str, Any] = dict(
        model=model,
        model_version="7",
        reference_id="9f2c4e1a7b3d",
        window_start=T0 + window * HOUR,
        window_end=T0 + (window + 1) * HOUR,
        window_index=window,
        kind=kind,
        detector=detector,
        feature=feature,
        metric=None,
        group_attribute=None,
        value=value,
        p_value=None,
        threshold=threshold,
        direction=direction,
        drift=value is not None
        and (value > threshold if direction == "above" else value < threshold),
        status="ok" if value is not None else "insufficient_data",
        n_reference=50_000,
        n_window=4_980,
        n_labeled=None,
    )
    fields.update(changes)
    return ResultRecord(**fields)


def window_end(window: int, **delta: float) -> datetime:
    """Just after hourly window ``window`` closed."""
    return at(T0 + (window + 1) * HOUR, seconds=5, **delta)


def alerts_config(**sections: Any) -> AlertsConfig:
    """The ``alerts`` section of ``sections``. Rules that do not say otherwise resolve after
    one clean window (``keep_firing_for: 0``): most tests here are about what follows a
    resolve; the tests of hysteresis set it themselves."""
    rules = [{"keep_firing_for": 0, **rule} for rule in sections.get("rules", [])]
    return AlertsConfig.model_validate({**sections, "rules": rules})


def make_engine(url: str) -> Engine:
    engine = storage.create(url)
    storage.upgrade(engine)
    return engine


EPOCH = T0 - 400 * 24 * HOUR  # windows counted from here stay positive for any test date


def recent(clock: Clock, *features: str, value: float = 0.3, ago: int = 0, **changes: Any) -> list:
    """Results for each feature in the hourly window that ended ``ago`` windows before now."""
    now = (clock.now - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    index = (now - EPOCH) // HOUR - 1 - ago
    start = EPOCH + index * HOUR
    return [
        result(index, feature, value, window_start=start, window_end=start + HOUR, **changes)
        for feature in features
    ]


def evaluate(alerts: Any, db: Engine, results: list, now: datetime) -> Any:
    """``alerts.evaluate`` in a transaction of its own."""
    with db.begin() as connection:
        return alerts.evaluate(results, to_ms(now), connection)


def tick(alerts: Any, db: Engine, now: datetime) -> Any:
    with db.begin() as connection:
        return alerts.tick(to_ms(now), connection)
