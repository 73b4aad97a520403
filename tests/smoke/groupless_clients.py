"""Clients outside group membership: idempotent producers with the clients' defaults deliver,
and what StreamBus does not have yet (transactions) fails fast with an error its user sees,
never waits silently or crashes; committed offsets
of assign() consumers (no members, generation -1) must work and resume where they committed,
and the admin client lists, describes and deletes such a group. Each failure case below once
waited forever, crashed, or is a client default that needs an API StreamBus lacks.
(subscribe() groups are group_clients.py's.)

Usage: groupless_clients.py BOOTSTRAP"""
import asyncio
import sys
import threading
import time

from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as AioTopicPartition
from confluent_kafka import (
    OFFSET_BEGINNING,
    ConsumerGroupState,
    Consumer,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaPythonTopicPartition
from kafka.structs import OffsetAndMetadata

# A fast failure takes well under this; a silent wait would run into it.
FAIL_FAST_SECONDS = 15


def check(condition: bool, message: str) -> None:
    if not condition:
        print(f"groupless_clients: FAILED: {message}", file=sys.stderr)
        sys.exit(1)


def confluent_cases(bootstrap: str, topic: str) -> None:
    # librdkafka's all-topics metadata request (v12, with three stray bytes) is answered.
    admin = AdminClient({"bootstrap.servers": bootstrap})
    check(topic in admin.list_topics(timeout=10).topics, "list_topics() lists the topic")

    # assign() without an offset asks the coordinator for committed offsets: there are none,
    # so auto.offset.reset applies (librdkafka crashed here when OffsetFetch was missing). A
    # commit fails with an error the application sees, and close() with the default
    # enable.auto.commit=true returns at once.
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "groupless-assign",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign([TopicPartition(topic, 0)])
    consumed = 0
    started = time.time()
    while consumed < 10 and time.time() - started < FAIL_FAST_SECONDS:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            consumed += 1
    check(consumed == 10, f"assign() consumed {consumed} of 10")
    committed = consumer.commit(
        offsets=[TopicPartition(topic, 0, 5, metadata="confluent-meta")], asynchronous=False
    )
    check(committed[0].error is None, f"commit: {committed[0].error}")
    stored = consumer.committed([TopicPartition(topic, 0)], timeout=10)[0]
    check(stored.offset == 5, f"committed offset {stored.offset}")
    check(stored.metadata == "confluent-meta", f"committed metadata {stored.metadata!r}")
    closed = threading.Event()
    threading.Thread(target=lambda: (consumer.close(), closed.set()), daemon=True).start()
    check(closed.wait(FAIL_FAST_SECONDS), "close() of an auto-committing consumer hung")
    # close() committed what was consumed (auto-commit): a new member resumes there, at 10,
    # where nothing is left to read; commit 5 again and it reads from 5.
    resumed = Consumer({"bootstrap.servers": bootstrap, "group.id": "groupless-assign"})
    resumed.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
    resumed.assign([TopicPartition(topic, 0)])
    first = None
    started = time.time()
    while first is None and time.time() - started < FAIL_FAST_SECONDS:
        message = resumed.poll(0.5)
        if message is not None and message.error() is None:
            first = message.offset()
    check(first == 5, f"a new member resumed at {first}, not at the commit (5)")
    resumed.close()
    # Admin: the group is listed and described (Empty: no members), then deleted.
    listed = admin.list_consumer_groups().result(FAIL_FAST_SECONDS)
    names = {group.group_id: group for group in listed.valid}
    check("groupless-assign" in names, f"list_consumer_groups(): {sorted(names)}")
    check(not listed.errors, f"list_consumer_groups() errors: {listed.errors}")
    described = admin.describe_consumer_groups(["groupless-assign"])["groupless-assign"].result(
        FAIL_FAST_SECONDS
    )
    check(described.state == ConsumerGroupState.EMPTY, f"group state {described.state}")
    check(not described.members, f"members {described.members}")
    admin.delete_consumer_groups(["groupless-assign"])["groupless-assign"].result(FAIL_FAST_SECONDS)
    gone = Consumer({"bootstrap.servers": bootstrap, "group.id": "groupless-assign"})
    stored = gone.committed([TopicPartition(topic, 0)], timeout=10)[0]
    check(stored.offset < 0, f"a deleted group still has offset {stored.offset}")
    gone.close()

    # An idempotent producer delivers (InitProducerId, sequences checked per partition).
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    reports = []
    for index in range(100):
        producer.produce(topic, b"idempotent-%d" % index, on_delivery=lambda e, m: reports.append(e))
    remaining = producer.flush(FAIL_FAST_SECONDS)
    check(remaining == 0, f"idempotent producer: {remaining} undelivered")
    check(reports == [None] * 100, f"idempotent delivery errors: {set(map(str, reports))}")

    # A transactional producer gets an error, not a silent wait: transactions are not
    # implemented yet. InitProducerId with a transactional id is answered UNSUPPORTED_VERSION;
    # librdkafka retries that (logging each answer) and init_transactions() raises it when its
    # timeout passes.
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": "groupless-txn"})
    try:
        producer.init_transactions(FAIL_FAST_SECONDS)
        check(False, "init_transactions() succeeded without transaction support")
    except KafkaException as exception:
        error = exception.args[0]
        check("API version not supported" in error.str(), f"init_transactions() error: {error}")


def kafka_python_cases(bootstrap: str, topic: str) -> None:
    # A group id with assign(): no committed offsets, so it reads from the reset point; a
    # commit is stored and read back.
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id="groupless-kafka-python",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
    )
    consumer.assign([KafkaPythonTopicPartition(topic, 0)])
    consumed = 0
    for _ in consumer:
        consumed += 1
        if consumed == 10:
            break
    check(consumed == 10, f"kafka-python consumed {consumed} of 10")
    partition = KafkaPythonTopicPartition(topic, 0)
    consumer.commit({partition: OffsetAndMetadata(7, "kafka-python-meta", -1)})
    check(consumer.committed(partition) == 7, f"kafka-python committed {consumer.committed(partition)}")
    consumer.close(autocommit=False)
    # kafka-python 3's producer with its defaults (idempotence on) delivers.
    producer = KafkaProducer(bootstrap_servers=bootstrap, max_block_ms=10_000)
    metadata = producer.send(topic, b"idempotent").get(timeout=FAIL_FAST_SECONDS)
    check(metadata.offset >= 0, f"kafka-python idempotent send: {metadata}")
    producer.close(timeout=5)


async def aiokafka_cases(bootstrap: str, topic: str) -> None:
    # A group id with assign(): no committed offsets, so it reads from the reset point; a
    # commit is stored and read back.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id="groupless-aiokafka",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await asyncio.wait_for(consumer.start(), FAIL_FAST_SECONDS)
    try:
        consumer.assign([AioTopicPartition(topic, 0)])
        message = await asyncio.wait_for(consumer.getone(), FAIL_FAST_SECONDS)
        check(message.offset == 0, f"aiokafka read offset {message.offset} first")
        partition = AioTopicPartition(topic, 0)
        await asyncio.wait_for(consumer.commit({partition: 3}), FAIL_FAST_SECONDS)
        committed = await asyncio.wait_for(consumer.committed(partition), FAIL_FAST_SECONDS)
        check(committed == 3, f"aiokafka committed {committed}")
    finally:
        await consumer.stop()


def main(bootstrap: str) -> None:
    topic = f"groupless-{int(time.time() * 1000)}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": bootstrap})
    for index in range(10):
        producer.produce(topic, value=f"value-{index}".encode(), partition=0)
    check(producer.flush(30) == 0, "produce 10 messages")
    confluent_cases(bootstrap, topic)
    kafka_python_cases(bootstrap, topic)
    asyncio.run(aiokafka_cases(bootstrap, topic))
    print("groupless_clients: missing APIs failed fast with a clear error; commits round-tripped")


if __name__ == "__main__":
    main(sys.argv[1])
