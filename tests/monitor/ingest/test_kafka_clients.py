"""Both Kafka client libraries behind the consumer interface, on the real local broker:
the same records as columns, seeks, high watermarks, partition counts and group commits;
and settings a library rejects named at start-up."""

from __future__ import annotations

import time

import confluent_kafka
import numpy as np
import pytest
from kafka.admin import KafkaAdminClient
from support.kafka import FAST_GROUP, LIBRARIES, create_topic, produce, unique

from driftwarden.monitor.config import KafkaConfig
from driftwarden.monitor.errors import ConfigError
from driftwarden.monitor.ingest import kafka
from driftwarden.monitor.ingest.consumer import Consumer, Partition, Polled

pytestmark = pytest.mark.slow


def _read_until(consumer, count: int, timeout: float = 30.0) -> tuple[dict, list]:
    """(partition -> offsets, values) of ``count`` records polled through ``consumer``."""
    offsets: dict[int, list[int]] = {}
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(values) < count and time.monotonic() < deadline:
        for polled in consumer.poll(0.5, 1000):
            values += polled.values
            for partition, offset in zip(polled.partitions, polled.offsets, strict=True):
                offsets.setdefault(int(partition), []).append(int(offset))
    return offsets, values


@pytest.mark.parametrize("library", LIBRARIES)
def test_each_library_reads_seeks_and_commits_alike(broker, library) -> None:
    topic = unique("clients")
    create_topic(broker, topic, 2)
    sent = [b'{"n": %d}' % i for i in range(600)]
    produce(broker, topic, sent, partition=lambda i: i % 2)
    group = unique("group")
    consumer = _consumer(broker, library, group)
    assignments: list[set[Partition]] = []

    def assigned(partitions: set[Partition]) -> None:
        assignments.append(partitions)
        for partition in partitions:  # the daemon seeks to stored positions here
            consumer.seek(partition, 100 if partition.partition == 0 else 250)

    consumer.subscribe([topic], assigned, lambda _: None)
    try:
        offsets, values = _read_until(consumer, 250 + 50)
        assert assignments[-1] == {Partition(topic, 0), Partition(topic, 1)}
        assert offsets == {0: list(range(100, 300)), 1: list(range(250, 300))}
        assert sorted(values) == sorted(sent[200::2] + sent[501::2])
        assert consumer.highwater(Partition(topic, 0)) == 300
        consumer.seek_to_beginning(Partition(topic, 1))
        again, _ = _read_until(consumer, 300)
        assert again == {1: list(range(300))}
        consumer.commit({Partition(topic, 0): 300, Partition(topic, 1): 300})
    finally:
        consumer.close()
    checker = confluent_kafka.Consumer({"bootstrap.servers": broker, "group.id": group})
    try:
        deadline = time.monotonic() + 10
        committed: list[int] = []
        while time.monotonic() < deadline and committed != [300, 300]:
            found = checker.committed([confluent_kafka.TopicPartition(topic, p) for p in (0, 1)])
            committed = [tp.offset for tp in found]
            time.sleep(0.2)
        assert committed == [300, 300]
    finally:
        checker.close()


@pytest.mark.parametrize("library", LIBRARIES)
def test_each_library_counts_partitions_and_reads_past_a_missing_topic(broker, library) -> None:
    """Partition counts come from the broker without creating the topics asked about; a
    subscription to a topic that does not exist still reads the one that does."""
    topic, missing = unique("clients"), unique("missing")
    create_topic(broker, topic, 3)
    produce(broker, topic, [b'{"n": %d}' % i for i in range(30)], partition=lambda i: i % 3)
    consumer = _consumer(broker, library, unique("group"))
    try:
        assert consumer.partition_count(topic) == 3
        assert consumer.partition_count(missing) is None
        admin = KafkaAdminClient(bootstrap_servers=broker)
        try:
            assert missing not in admin.list_topics()
        finally:
            admin.close()
        consumer.subscribe([topic, unique("missing")], lambda _: None, lambda _: None)
        offsets, _ = _read_until(consumer, 30)
        assert offsets == {p: list(range(10)) for p in range(3)}
    finally:
        consumer.close()


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_poll_returns_the_records_at_hand_without_waiting_for_more(broker, library) -> None:
    """A poll that finds fewer records than it may take returns them at once: waiting out
    its timeout for ``max_records`` would stall the end of every batch."""
    topic = unique("clients")
    create_topic(broker, topic, 1)
    produce(broker, topic, [b'{"n": %d}' % i for i in range(10)], partition=lambda _: 0)
    consumer = _consumer(broker, library, unique("group"))
    consumer.subscribe([topic], lambda _: None, lambda _: None)
    try:
        _, values = _read_until(consumer, 10)
        assert len(values) == 10
        produce(broker, topic, [b'{"n": %d}' % i for i in range(10, 15)], partition=lambda _: 0)
        sent = time.monotonic()
        got: list[bytes] = []
        while len(got) < 5 and time.monotonic() - sent < 30:
            got += [value for polled in consumer.poll(10.0, 1000) for value in polled.values]
        assert got == [b'{"n": %d}' % i for i in range(10, 15)]
        assert time.monotonic() - sent < 5.0
    finally:
        consumer.close()


def test_batches_group_polled_columns_by_topic_with_next_positions() -> None:
    polled = [
        Polled("a", [b"1", b"2"], np.array([0, 0]), np.array([5, 6])),
        Polled("b", [b"3"], np.array([1]), np.array([9])),
        Polled("a", [b"4"], np.array([1]), np.array([0])),
    ]
    messages, positions = kafka.batches(polled)
    assert messages["a"].values == [b"1", b"2", b"4"]
    assert messages["a"].origin(2).partition == 1 and messages["a"].origin(2).offset == 0
    assert positions == {("a", 0): 7, ("a", 1): 1, ("b", 1): 10}


@pytest.mark.parametrize(
    ("library", "client"),
    [("kafka-python", {"no_such_setting": 1}), ("confluent", {"no.such.setting": 1})],
)
def test_a_setting_the_library_rejects_is_a_config_error(library, client) -> None:
    settings = KafkaConfig(library=library, client=client)
    with pytest.raises(ConfigError) as raised:
        kafka.consumer(settings)
    assert "kafka.client" in str(raised.value) and library in str(raised.value)


@pytest.mark.parametrize("library", LIBRARIES)
def test_each_library_produces_what_dead_letter_replay_sends(broker, library) -> None:
    topic = unique("replayed")
    create_topic(broker, topic, 1)
    settings = KafkaConfig(bootstrap_servers=broker, library=library, client=FAST_GROUP[library])
    producer = kafka.producer(settings)
    try:
        producer.send(topic, b'{"model": "m"}', b"m", 10.0)
    finally:
        producer.close()
    reader = confluent_kafka.Consumer(
        {"bootstrap.servers": broker, "group.id": unique("g"), "auto.offset.reset": "earliest"}
    )
    try:
        reader.assign([confluent_kafka.TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)])
        deadline = time.monotonic() + 20
        got: list = []
        while not got and time.monotonic() < deadline:
            got = [m for m in reader.consume(10, 0.5) if m.error() is None]
        assert [(m.key(), m.value()) for m in got] == [(b"m", b'{"model": "m"}')]
    finally:
        reader.close()


def _consumer(broker: str, library: str, group: str, **client: object) -> Consumer:
    """A consumer of ``library`` in ``group``, with the fast group timings and ``client``."""
    settings = KafkaConfig(
        bootstrap_servers=broker,
        group_id=group,
        library=library,
        client={**FAST_GROUP[library], **client},
    )
    return kafka.consumer(settings)


@pytest.mark.parametrize(("backoff", "stalled"), [(None, False), (1000, True)])
def test_a_confluent_consumer_does_not_wait_a_second_for_its_next_fetch(
    broker, backoff, stalled
) -> None:
    """Once librdkafka's local queue is over its thresholds it waits
    ``fetch.queue.backoff.ms`` before fetching again, however soon the consumer drains it.
    With a low threshold, records sent after the consumer has drained the queue arrive at
    once by default; with librdkafka's own default of a second (set through
    ``kafka.client``) a round waits out most of it. The broker answers a fetch within
    100 ms even with nothing new (``fetch.wait.max.ms``), so only the backoff can stall."""
    topic = unique("backoff")
    create_topic(broker, topic, 1)
    client = {"queued.min.messages": 50, "fetch.wait.max.ms": 100}
    if backoff is not None:
        client["fetch.queue.backoff.ms"] = backoff
    consumer = _consumer(broker, "confluent", unique("group"), **client)
    consumer.subscribe([topic], lambda _: None, lambda _: None)
    producer = confluent_kafka.Producer({"bootstrap.servers": broker})
    waits = []
    try:
        for round_ in range(5):
            sent = [b'{"n": %d}' % (round_ * 100 + i) for i in range(100)]
            for value in sent:
                producer.produce(topic, value=value, partition=0)
            producer.flush(10)
            started = time.monotonic()
            _, values = _read_until(consumer, 100)
            waits.append(time.monotonic() - started)
            assert values == sent
    finally:
        consumer.close()
    longest = max(waits[1:])  # the first round includes joining the group
    assert longest > 0.9 if stalled else longest < 0.4
