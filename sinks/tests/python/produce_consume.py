"""kafka-python against a running broker: produce each file's bytes to a
topic and read them all back (the produce and fetch paths), or count the
messages of a topic.

usage: produce_consume.py BOOTSTRAP roundtrip TOPIC FILE...
       produce_consume.py BOOTSTRAP count TOPIC EXPECTED
Prints "roundtrip ok: N" / "count: N".
"""

import sys
import time

from kafka import KafkaConsumer, KafkaProducer


def read(bootstrap, topic, expected, seconds):
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=500,
    )
    out, deadline = [], time.time() + seconds
    while len(out) < expected and time.time() < deadline:
        for message in consumer:
            out.append(message.value)
    consumer.close()
    return out


def main():
    bootstrap, mode, topic = sys.argv[1:4]
    if mode == "roundtrip":
        files = sys.argv[4:]
        values = [open(f, "rb").read() for f in files]
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        for v in values:
            producer.send(topic, value=v).get(timeout=30)
        producer.close()
        got = read(bootstrap, topic, len(values), 30)
        assert sorted(got) == sorted(values), f"{len(got)} of {len(values)} read back"
        print(f"roundtrip ok: {len(got)}")
    else:
        expected = int(sys.argv[4])
        got = read(bootstrap, topic, expected, 30)
        print(f"count: {len(got)}")


main()
