"""``replay`` as an alerting back-test: every notification at the event time it would have
been sent, with the evidence of that moment, by Alertmanager's timing rules."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import orjson
import polars as pl
import pytest
from support.alerts import SECRET
from support.pipeline import HOUR, START

from driftwarden.core.times import format_time, parse_time
from driftwarden.monitor import config as configuration
from driftwarden.monitor.commands import cli, synthetic
from driftwarden.monitor.commands.replay import replay

MINUTE = 60_000
LATENESS = 5 * MINUTE  # synthetic.config_yaml's allowed_lateness
GROUP_WAIT, GROUP_INTERVAL, REPEAT = 30_000, 5 * MINUTE, 4 * HOUR
DRIFT = (5, 15)  # hours: drift holds in windows 5..14


def _segment(hours: tuple[int, int], drifting: bool, seed: int) -> pl.DataFrame:
    first, last = hours
    start = START + first * HOUR
    stream = synthetic.Stream(
        n=2_000 * (last - first),
        start=start,
        span=(last - first) * HOUR,
        drift_from=start if drifting else None,
        seed=seed,
    )
    frame = synthetic.events(stream)
    return frame.with_columns(pl.concat_str(pl.lit(f"s{seed}-"), pl.col("id")).alias("id"))


def _stream(path: Path) -> Path:
    frames = [
        _segment((0, DRIFT[0]), False, 1),
        _segment(DRIFT, True, 2),
        _segment((DRIFT[1], 24), False, 3),
    ]
    path.write_bytes(b"\n".join(synthetic.prediction_lines(pl.concat(frames))) + b"\n")
    return path


def _config(directory: Path, reference: Path) -> Path:
    drifted = "|".join(synthetic.DEFAULT_DRIFT)
    alerts = f"""\
alerts:
  channels:
    hook: {{type: webhook, url: "http://127.0.0.1:9/hook", secrets: ["{SECRET}"]}}
    retrain: {{type: retrain, url: "http://127.0.0.1:9/retrain", secrets: ["{SECRET}"]}}
  rules:
    - name: feature-drift
      match: ["kind=data_drift", "feature=~{drifted}"]
      severity: warning
      channels: [hook, retrain]
"""
    path = directory / "config.yaml"
    path.write_text(synthetic.config_yaml(str(reference), "sqlite://") + alerts)
    return path


def _expected() -> list[tuple[str, int, str, int]]:
    """(channel, when, status, end of the window in the evidence), by the rules: a
    window closes when event time passes its end plus the allowed lateness; the group
    flushes group_wait after its first alert fires, then every group_interval; a
    notification repeats once repeat_interval passed since the last; an alert resolves on
    its second clean window (keep_firing_for 1), which is its evidence then, and is told
    at the next flush; the retrain channel hears the first and the last."""
    fired = START + (DRIFT[0] + 1) * HOUR + LATENESS
    flushes = [fired + GROUP_WAIT + k * GROUP_INTERVAL for k in range(24 * 12)]
    resolved = START + (DRIFT[1] + 2) * HOUR + LATENESS
    told, last = [], None
    for moment in flushes:
        if moment >= resolved:
            told.append(("hook", moment, "resolved", START + (DRIFT[1] + 2) * HOUR))
            break
        if last is None or moment - last >= REPEAT:
            closed = (moment - START - LATENESS) // HOUR  # windows closed by then
            told.append(("hook", moment, "firing", START + closed * HOUR))
            last = moment
    once = [("retrain", when, status, end) for _, when, status, end in (told[0], told[-1])]
    return sorted(told + once, key=lambda item: (item[1], item[0]))


def test_notifications_appear_at_the_event_times_alertmanagers_rules_give(
    tmp_path: Path, reference_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, reference_file)
    out = tmp_path / "out"
    predictions = _stream(tmp_path / "predictions.jsonl")
    argv = ["replay", "--config", str(config), "--predictions", str(predictions)]
    assert cli.main([*argv, "--out", str(out)]) == 0
    lines = [orjson.loads(line) for line in (out / "alerts.jsonl").read_bytes().splitlines()]
    seen = []
    for line in lines:
        payload = line["payload"]
        evidence = payload["alerts"] if line["channel"] == "hook" else payload["evidence"]
        ends = [item.get("evidence", item)["window_end"] for item in evidence]
        status = payload["status"] if line["channel"] == "hook" else payload["state"]
        assert line["at"] == payload["created_at"]
        seen.append((line["channel"], parse_time(line["at"]), status, parse_time(max(ends))))
    expected = _expected()
    shown = [(c, format_time(t), s, format_time(e)) for c, t, s, e in expected]
    assert [(c, format_time(t), s, format_time(e)) for c, t, s, e in seen] == shown
    assert [status for _, _, status, _ in expected] == ["firing"] * 4 + ["resolved"] * 2
    assert expected[-1][1] - expected[0][1] > timedelta(hours=10) // timedelta(milliseconds=1)
    # The command says how many notifications each channel would have received.
    assert Counter(line["channel"] for line in lines) == {"hook": 4, "retrain": 2}
    assert "notifications (alerts.jsonl): hook 4, retrain 2\n" in capsys.readouterr().out
    firing = next(line["payload"] for line in lines if line["channel"] == "retrain")
    assert firing["policy"]["cooldown"] == "1d" and firing["policy"]["checks"]["windows_held"] == 1


def test_a_model_that_stops_while_another_goes_on_falls_silent_on_event_time(
    tmp_path: Path, reference_file: Path
) -> None:
    quiet = "quiet-model"
    frames = []
    for name, hours, seed in (
        (synthetic.MODEL, (0, 12), 4),
        (quiet, (0, 3), 5),
        (quiet, (9, 12), 6),
    ):
        first, last = hours
        stream = synthetic.Stream(
            n=1_000 * (last - first),
            start=START + first * HOUR,
            span=(last - first) * HOUR,
            model=name,
            seed=seed,
        )
        frames.append(
            synthetic.events(stream).with_columns(
                pl.concat_str(pl.lit(f"{name}-{seed}-"), pl.col("id")).alias("id")
            )
        )
    path = tmp_path / "predictions.jsonl"
    ordered = pl.concat(frames).sort("ts")
    path.write_bytes(b"\n".join(synthetic.prediction_lines(ordered)) + b"\n")
    base = synthetic.config_yaml(str(reference_file), "sqlite://")
    head, block = base.split("models:\n", 1)
    config = tmp_path / "config.yaml"
    rule = f"""alerts:
  channels:
    hook: {{type: webhook, url: "http://127.0.0.1:9/hook", secrets: ["{SECRET}"]}}
  rules:
    - name: silent
      match: ["kind=freshness"]
      keep_firing_for: 0
      severity: critical
      channels: [hook]
"""
    config.write_text(head + "models:\n" + block + block.replace(synthetic.MODEL, quiet, 1) + rule)
    out = tmp_path / "out"
    replay(configuration.load(config), path, out)
    records = [orjson.loads(line) for line in (out / "results.jsonl").read_bytes().splitlines()]
    fresh = [r for r in records if r["kind"] == "freshness"]
    assert [(r["model"], r["drift"]) for r in fresh] == [(quiet, False)]
    (record,) = fresh
    last_event = parse_time(record["window_start"])
    assert START + 3 * HOUR - 10_000 < last_event < START + 3 * HOUR
    assert parse_time(record["window_end"]) - START - 9 * HOUR < 10_000  # heard again
    assert record["threshold"] == 2 * 3600 and record["value"] > 6 * 3600 - 20
    lines = [orjson.loads(line) for line in (out / "alerts.jsonl").read_bytes().splitlines()]
    sent = [(line["payload"]["status"], parse_time(line["at"])) for line in lines]
    assert [status for status, _ in sent] == ["firing", "resolved"]
    fell_silent = last_event + 2 * HOUR  # the first event of the other model after it
    assert 0 <= sent[0][1] - fell_silent - GROUP_WAIT < 10_000
    assert sent[1][1] - parse_time(record["window_end"]) < GROUP_INTERVAL + 10_000
