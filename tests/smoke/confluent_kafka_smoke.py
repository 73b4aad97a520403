"""confluent-kafka (librdkafka from the PyPI wheel) smoke test: create a 6-partition topic,
produce 10,000 keyed messages with acks=all, consume them all back by assignment, compare."""
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic

MESSAGES = 10_000
PARTITIONS = 6


def main(bootstrap: str) -> None:
    topic = f"confluent-smoke-{int(time.time() * 1000)}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        future.result(timeout=30)
    sent = {f"key-{i}": f"value-{i}-{i:064d}" for i in range(MESSAGES)}
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    failures = []

    def report(error, message):
        if error is not None:
            failures.append(error)

    for key, value in sent.items():
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=report)
                break
            except BufferError:
                producer.poll(0.1)
    remaining = producer.flush(60)
    assert remaining == 0 and not failures, f"{remaining} undelivered, failures {failures[:3]}"
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        # librdkafka wants a group id even for assign(); no group API is used.
        "group.id": "confluent-smoke",
        "enable.auto.commit": False,
    })
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    received = {}
    partitions_seen = set()
    deadline = time.time() + 120
    while len(received) < MESSAGES:
        assert time.time() < deadline, f"received {len(received)} of {MESSAGES}"
        message = consumer.poll(0.5)
        if message is None:
            continue
        assert message.error() is None, message.error()
        received[message.key().decode()] = message.value().decode()
        partitions_seen.add(message.partition())
    consumer.close()
    assert received == sent, "received messages differ from those sent"
    assert len(partitions_seen) == PARTITIONS, partitions_seen
    print(f"confluent-kafka smoke: {MESSAGES} keyed messages over {PARTITIONS} partitions round-tripped")


if __name__ == "__main__":
    main(sys.argv[1])
