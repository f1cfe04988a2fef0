"""The compose stack's example data: the synthetic credit model's reference, and a live stream.

    python deploy/demo_stream.py reference PATH
        write the reference (Parquet) of the synthetic model, unless PATH exists

    python deploy/demo_stream.py produce --bootstrap kafka:9092 [--rate 50] [--drift-after 20m]
                                         [--label-delay 2m] [--label-share 0.8]
        produce predictions stamped with the current time, ``--rate`` per second, whose
        inputs drift ``--drift-after`` the start; each prediction's label (for a share
        of them) follows ``--label-delay`` later on the labels topic.

Used by docker-compose.yml (service ``example-reference``, and ``demo-producer`` behind the
``demo`` profile); runs with the driftwarden image's Python.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import sys
import time
from pathlib import Path

import numpy as np
import orjson

from driftwarden.core.durations import parse_duration
from driftwarden.monitor.commands import synthetic


def write_reference(path: Path) -> int:
    if path.exists():
        print(f"reference {path} exists; kept")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    synthetic.reference(50_000, seed=0).write_parquet(partial)
    os.replace(partial, path)
    print(f"wrote reference {path}")
    return 0


def _topics(bootstrap: str, names: list[str], partitions: int) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(name, partitions, 1) for name in names if name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another producer was first
                admin.create_topics(missing)
    finally:
        admin.close()


def produce(args: argparse.Namespace) -> int:
    from kafka import KafkaProducer

    _topics(args.bootstrap, [args.predictions_topic, args.labels_topic], 4)
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, linger_ms=50)
    rng = np.random.default_rng(args.seed)
    drift_after = parse_duration(args.drift_after).total_seconds()
    label_delay = parse_duration(args.label_delay).total_seconds()
    key = synthetic.MODEL.encode()
    labels: collections.deque[tuple[float, bytes]] = collections.deque()
    started = time.time()
    sent = 0
    print(
        f"producing {args.rate}/s to {args.predictions_topic}; drift after {args.drift_after}, "
        f"labels {args.label_delay} later on {args.labels_topic}",
        flush=True,
    )
    while True:
        tick = time.time()
        n = args.rate
        columns = synthetic.features(n, rng)
        if tick - started >= drift_after:
            synthetic.drifted(columns, np.ones(n, dtype=bool), synthetic.Drift(), rng)
        probability = synthetic.probability(columns)
        outcome = rng.random(n) < probability
        labelled = rng.random(n) < args.label_share
        now_ms = int(tick * 1000)
        for i in range(n):
            event_id = f"p-{sent + i}"
            features = {name: columns[name][i].item() for name in synthetic.NUMERIC}
            features.update({name: str(columns[name][i]) for name in synthetic.CATEGORICAL})
            event = {
                "model": synthetic.MODEL,
                "model_version": "7",
                "id": event_id,
                "ts": now_ms,
                "features": features,
                "prediction": round(float(probability[i]), 6),
                "groups": {"sex": str(columns["sex"][i])},
            }
            producer.send(args.predictions_topic, value=orjson.dumps(event), key=key)
            if labelled[i]:
                label = {"model": synthetic.MODEL, "id": event_id, "label": int(outcome[i])}
                labels.append((tick + label_delay, orjson.dumps(label)))
        sent += n
        while labels and labels[0][0] <= tick:
            _, body = labels.popleft()
            stamped = orjson.loads(body) | {"ts": int(time.time() * 1000)}
            producer.send(args.labels_topic, value=orjson.dumps(stamped), key=key)
        producer.flush()
        time.sleep(max(0.0, 1.0 - (time.time() - tick)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    reference = commands.add_parser("reference", help="write the synthetic model's reference")
    reference.add_argument("path", type=Path)
    stream = commands.add_parser("produce", help="produce a live drifting stream")
    stream.add_argument("--bootstrap", default="kafka:9092")
    stream.add_argument("--predictions-topic", default="predictions")
    stream.add_argument("--labels-topic", default="labels")
    stream.add_argument("--rate", type=int, default=50, help="predictions per second")
    stream.add_argument("--drift-after", default="20m")
    stream.add_argument("--label-delay", default="2m")
    stream.add_argument("--label-share", type=float, default=0.8)
    stream.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.command == "reference":
        return write_reference(args.path)
    return produce(args)


if __name__ == "__main__":
    sys.exit(main())
