"""Consumer groups with subscribe(), as applications use them, in every Python client:
confluent-kafka (librdkafka, newest protocol versions; the classic protocol and KIP-848's
group.protocol=consumer), kafka-python pinned to Kafka 0.11's API
versions (JoinGroup v2, no MEMBER_ID_REQUIRED) and at its defaults, and aiokafka. Members split
the partitions, consume every message once with commits after processing, the group is
described with its members, and a new member resumes after the commits.

Usage: group_clients.py BOOTSTRAP"""
import asyncio
import sys
import threading
import time

from aiokafka import AIOKafkaConsumer
from confluent_kafka import Consumer, ConsumerGroupState, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer

# Joining, rebalancing and consuming a few hundred messages takes seconds; a hang runs into it.
GROUP_SECONDS = 120
PARTITIONS = 6
MESSAGES = 600


def check(condition: bool, message: str) -> None:
    if not condition:
        print(f"group_clients: FAILED: {message}", file=sys.stderr)
        sys.exit(1)


def produce(bootstrap: str, topic: str, start: int, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for index in range(start, start + count):
        producer.produce(topic, value=str(index).encode(), partition=index % PARTITIONS)
    check(producer.flush(30) == 0, f"produce {count} messages to {topic}")


def new_topic(bootstrap: str, name: str) -> str:
    topic = f"{name}-{int(time.time() * 1000)}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(30)
    return topic


def confluent_group(bootstrap: str, protocol: str) -> None:
    """`protocol` is librdkafka's group.protocol: classic, or consumer (KIP-848)."""
    topic = new_topic(bootstrap, f"group-confluent-{protocol}")
    group = f"{topic}-group"
    produce(bootstrap, topic, 0, MESSAGES)
    consumed: dict[int, list[str]] = {0: [], 1: [], 2: []}
    assignments: dict[int, list[int]] = {}
    done = threading.Event()
    ready = threading.Barrier(4)

    def member(index: int) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "group.protocol": protocol,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe([topic])
        deadline = time.time() + GROUP_SECONDS
        # Until everything is consumed and the group has settled on two partitions each.
        while (not done.is_set() or len(consumer.assignment()) != 2) and time.time() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                continue
            check(message.error() is None, f"member {index}: {message.error()}")
            consumed[index].append(message.value().decode())
            consumer.commit(message, asynchronous=False)
            if sum(len(values) for values in consumed.values()) >= MESSAGES:
                done.set()
        assignments[index] = sorted(part.partition for part in consumer.assignment())
        ready.wait(GROUP_SECONDS)  # described below while all three are still members
        ready.wait(GROUP_SECONDS)
        consumer.close()

    threads = [threading.Thread(target=member, args=(index,)) for index in range(3)]
    for thread in threads:
        thread.start()
    ready.wait(GROUP_SECONDS)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    described = admin.describe_consumer_groups([group])[group].result(30)
    ready.wait(GROUP_SECONDS)
    for thread in threads:
        thread.join(GROUP_SECONDS)
    values = [value for values in consumed.values() for value in values]
    check(len(values) == MESSAGES, f"confluent-kafka ({protocol}) consumed {len(values)} of {MESSAGES}")
    check(len(set(values)) == MESSAGES, f"confluent-kafka ({protocol}) consumed a message twice")
    sizes = sorted(len(parts) for parts in assignments.values())
    check(sizes == [2, 2, 2], f"confluent-kafka ({protocol}) assignments {assignments}")
    check(described.state == ConsumerGroupState.STABLE, f"group state {described.state}")
    check(len(described.members) == 3, f"described members {described.members}")
    described_partitions = sorted(
        part.partition for member in described.members for part in member.assignment.topic_partitions
    )
    check(described_partitions == list(range(PARTITIONS)), f"described {described_partitions}")
    # Every member left on close: the group is Empty and keeps its offsets; a new member
    # resumes after them.
    described = admin.describe_consumer_groups([group])[group].result(30)
    check(described.state == ConsumerGroupState.EMPTY, f"group state after close {described.state}")
    produce(bootstrap, topic, MESSAGES, PARTITIONS)
    late = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "group.protocol": protocol,
            "auto.offset.reset": "earliest",
        }
    )
    late.subscribe([topic])
    resumed = []
    deadline = time.time() + GROUP_SECONDS
    while len(resumed) < PARTITIONS and time.time() < deadline:
        message = late.poll(0.2)
        if message is not None and message.error() is None:
            resumed.append(int(message.value()))
    late.close()
    check(
        sorted(resumed) == list(range(MESSAGES, MESSAGES + PARTITIONS)),
        f"a new member resumed at {sorted(resumed)}",
    )


def kafka_python_group(bootstrap: str, api_version) -> None:
    name = "default" if api_version is None else "-".join(map(str, api_version))
    topic = new_topic(bootstrap, f"group-kafka-python-{name}")
    group = f"{topic}-group"
    produce(bootstrap, topic, 0, MESSAGES)
    options = {} if api_version is None else {"api_version": api_version}
    consumed: list[str] = []
    sizes: list[int] = []
    done = threading.Event()
    settled = threading.Barrier(2)

    # One thread per member, as applications run them: a member's poll() also drives its
    # rebalance, so two members polled in turn on one thread hold up each other's joins.
    def member() -> None:
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
            **options,
        )
        deadline = time.time() + GROUP_SECONDS
        while (not done.is_set() or len(consumer.assignment()) != 3) and time.time() < deadline:
            for records in consumer.poll(timeout_ms=100).values():
                consumed.extend(record.value.decode() for record in records)
                consumer.commit()
            if len(consumed) >= MESSAGES:
                done.set()
        sizes.append(len(consumer.assignment()))
        settled.wait(GROUP_SECONDS)  # both still members when their shares are read
        consumer.close(autocommit=False)

    threads = [threading.Thread(target=member) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(GROUP_SECONDS * 2)
    check(len(consumed) == MESSAGES, f"kafka-python {name} consumed {len(consumed)} of {MESSAGES}")
    check(len(set(consumed)) == MESSAGES, f"kafka-python {name} consumed a message twice")
    check(sorted(sizes) == [3, 3], f"kafka-python {name} assignments {sizes}")


async def aiokafka_group(bootstrap: str) -> None:
    topic = new_topic(bootstrap, "group-aiokafka")
    produce(bootstrap, topic, 0, MESSAGES)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"{topic}-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await asyncio.wait_for(consumer.start(), GROUP_SECONDS)
    try:
        consumed = []
        while len(consumed) < MESSAGES:
            batches = await asyncio.wait_for(consumer.getmany(timeout_ms=500), GROUP_SECONDS)
            for records in batches.values():
                consumed.extend(record.value.decode() for record in records)
            await consumer.commit()
        check(len(set(consumed)) == MESSAGES, f"aiokafka consumed {len(set(consumed))} distinct")
        check(len(consumer.assignment()) == PARTITIONS, f"aiokafka assignment {consumer.assignment()}")
    finally:
        await consumer.stop()


def main(bootstrap: str) -> None:
    confluent_group(bootstrap, "classic")
    # KIP-848: the broker assigns; describe_consumer_groups goes through ConsumerGroupDescribe.
    confluent_group(bootstrap, "consumer")
    kafka_python_group(bootstrap, (0, 11))
    kafka_python_group(bootstrap, None)
    asyncio.run(aiokafka_group(bootstrap))
    print("group_clients: subscribe() groups split, consumed once, described and resumed")


if __name__ == "__main__":
    main(sys.argv[1])
