"""kafka-python against a running Starlog broker: produce keyed messages with
headers, consume them back in a consumer group, commit, and check every value.

Usage: kafka_python_roundtrip.py BOOTSTRAP TOPIC COUNT
Prints "kafka-python ok: N messages" and exits 0 on success; raises otherwise.
"""

import sys

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic


def main() -> None:
    bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    admin.create_topics([NewTopic(name=topic, num_partitions=3, replication_factor=1)])
    admin.close()

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, compression_type="gzip")
    futures = [
        producer.send(
            topic,
            key=f"k{i % 7}".encode(),
            value=f"v{i}".encode(),
            headers=[("n", str(i).encode())],
        )
        for i in range(count)
    ]
    producer.flush(30)
    offsets = [f.get(timeout=30) for f in futures]
    assert len(offsets) == count
    producer.close()

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id="py-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=20000,
    )
    seen = {}
    last = {}
    for m in consumer:
        n = int(dict(m.headers)["n"])
        assert m.value == f"v{n}".encode(), (m.value, n)
        assert m.key == f"k{n % 7}".encode()
        if m.partition in last:
            assert m.offset == last[m.partition] + 1, "dense offsets"
        last[m.partition] = m.offset
        seen[n] = (m.partition, m.offset)
        if len(seen) == count:
            break
    assert len(seen) == count, f"consumed {len(seen)} of {count}"
    consumer.commit()
    committed = sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in range(3))
    assert committed == count, f"committed {committed}"
    consumer.close()
    print(f"kafka-python ok: {count} messages")


if __name__ == "__main__":
    main()
