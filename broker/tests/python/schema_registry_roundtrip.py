"""confluent-kafka's SchemaRegistryClient, AvroSerializer and AvroDeserializer
against Starlog's schema registry, with real alerts produced to and consumed
from the Starlog broker by confluent-kafka's Producer and Consumer.

Usage: schema_registry_roundtrip.py BOOTSTRAP REGISTRY_URL ALERT_FILE...
Prints "registry ok: N alerts" and exits 0 on success; raises otherwise.
"""

import json
import sys

import fastavro
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext


def read_alert(path):
    with open(path, "rb") as f:
        reader = fastavro.reader(f)
        return reader.writer_schema, next(iter(reader))


def main() -> None:
    bootstrap, url, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    client = SchemaRegistryClient({"url": url})
    schema, first = read_alert(files[0])
    schema_str = json.dumps(schema)
    topic = "registry-alerts"
    subject = f"{topic}-value"

    # Register directly: the same schema twice gets the same id.
    sid = client.register_schema(subject, Schema(schema_str, "AVRO"))
    assert client.register_schema(subject, Schema(schema_str, "AVRO")) == sid
    assert client.get_schema(sid).schema_str, "schema by id"
    latest = client.get_latest_version(subject)
    assert latest.schema_id == sid and latest.version == 1, latest
    assert subject in client.get_subjects()
    assert client.lookup_schema(subject, Schema(schema_str, "AVRO")).schema_id == sid

    # Compatibility: a new required field breaks BACKWARD; with a default it is fine.
    incompatible = dict(schema)
    incompatible["fields"] = list(schema["fields"]) + [{"name": "starlog_extra", "type": "string"}]
    compatible = dict(schema)
    compatible["fields"] = list(schema["fields"]) + [{"name": "starlog_extra", "type": "string", "default": ""}]
    assert not client.test_compatibility(subject, Schema(json.dumps(incompatible), "AVRO"))
    assert client.test_compatibility(subject, Schema(json.dumps(compatible), "AVRO"))
    try:
        client.register_schema(subject, Schema(json.dumps(incompatible), "AVRO"))
        raise AssertionError("incompatible schema was registered")
    except SchemaRegistryError as e:
        assert e.http_status_code == 409, e
    client.set_compatibility(subject_name=subject, level="NONE")
    assert client.get_compatibility(subject) == "NONE"
    v2 = client.register_schema(subject, Schema(json.dumps(incompatible), "AVRO"))
    assert v2 != sid
    assert client.delete_version(subject, 2) == 2
    client.set_compatibility(subject_name=subject, level="BACKWARD")
    try:
        client.get_schema(999999)
        raise AssertionError("unknown id resolved")
    except SchemaRegistryError as e:
        assert e.http_status_code == 404 and e.error_code == 40403, e

    # Real alerts through the serializer, the broker and the deserializer.
    serializer = AvroSerializer(client, schema_str, conf={"auto.register.schemas": True})
    deserializer = AvroDeserializer(client)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    sent = []
    for path in files:
        _, record = read_alert(path)
        value = serializer(record, SerializationContext(topic, MessageField.VALUE))
        assert value[0] == 0 and int.from_bytes(value[1:5], "big") == sid, "Confluent framing with our id"
        producer.produce(topic, value=value, key=str(path).encode())
        sent.append(record)
    assert producer.flush(30) == 0

    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "registry-check",
        "auto.offset.reset": "earliest",
    })
    consumer.subscribe([topic])
    got = []
    while len(got) < len(sent):
        m = consumer.poll(20)
        assert m is not None, f"timed out after {len(got)} alerts"
        assert m.error() is None, m.error()
        got.append(deserializer(m.value(), SerializationContext(topic, MessageField.VALUE)))
    consumer.close()
    key = "candid" if "candid" in json.dumps(schema) else None
    for a, b in zip(sent, got):
        if key and "candidate" in a:
            assert a["candidate"]["candid"] == b["candidate"]["candid"]
        assert a == b, "decoded alert differs"
    print(f"registry ok: {len(got)} alerts")


if __name__ == "__main__":
    main()
