"""kafka-python (pure Python, its own version negotiation) smoke test: create a 6-partition
topic, produce 10,000 keyed messages with acks=all, consume them all back by assignment,
compare."""
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

MESSAGES = 10_000
PARTITIONS = 6


def main(bootstrap: str) -> None:
    topic = f"kafka-python-smoke-{int(time.time() * 1000)}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    admin.close()
    sent = {f"key-{i}": f"value-{i}-{i:064d}" for i in range(MESSAGES)}
    # kafka-python 3's defaults: idempotence on (InitProducerId, sequenced batches).
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    futures = [producer.send(topic, key=k.encode(), value=v.encode()) for k, v in sent.items()]
    producer.flush(60)
    for future in futures:
        future.get(timeout=60)
    producer.close()
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
    consumer.seek_to_beginning()
    received = {}
    partitions_seen = set()
    deadline = time.time() + 120
    while len(received) < MESSAGES:
        assert time.time() < deadline, f"received {len(received)} of {MESSAGES}"
        for partition, messages in consumer.poll(timeout_ms=500).items():
            partitions_seen.add(partition.partition)
            for message in messages:
                received[message.key.decode()] = message.value.decode()
    consumer.close()
    assert received == sent, "received messages differ from those sent"
    assert len(partitions_seen) == PARTITIONS, partitions_seen
    print(f"kafka-python smoke: {MESSAGES} keyed messages over {PARTITIONS} partitions round-tripped")


if __name__ == "__main__":
    main(sys.argv[1])
