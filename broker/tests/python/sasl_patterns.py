"""Real Python clients against a Starlog broker with SASL listeners.

Usage: sasl_patterns.py CLIENT ACTION JSON
  CLIENT  kafka-python | confluent
  ACTION  produce   -> prints "produced N" or "refused <error>"
          consume   -> prints "consumed N" (group from JSON; commits) or "refused <error>"
  JSON    {"bootstrap", "protocol", "mechanism", "user", "password", "ca",
           "topic", "n", "group"}
Exits non-zero only on an unexpected failure of the script itself.
"""
import json
import sys
import time


def kafka_python_conf(c):
    conf = {
        "bootstrap_servers": c["bootstrap"],
        "security_protocol": c["protocol"],
        "request_timeout_ms": 15000,
    }
    if c["protocol"].startswith("SASL"):
        conf.update(
            sasl_mechanism=c["mechanism"],
            sasl_plain_username=c["user"],
            sasl_plain_password=c["password"],
        )
    if c["protocol"].endswith("SSL"):
        conf.update(ssl_cafile=c["ca"], ssl_check_hostname=False)
    return conf


def confluent_conf(c):
    conf = {"bootstrap.servers": c["bootstrap"], "security.protocol": c["protocol"]}
    if c["protocol"].startswith("SASL"):
        conf.update(
            {
                "sasl.mechanism": c["mechanism"],
                "sasl.username": c["user"],
                "sasl.password": c["password"],
            }
        )
    if c["protocol"].endswith("SSL"):
        conf["ssl.ca.location"] = c["ca"]
    return conf


def kafka_python(action, c):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.errors import KafkaError

    if action == "produce":
        try:
            p = KafkaProducer(max_block_ms=15000, retries=0, **kafka_python_conf(c))
            for i in range(c["n"]):
                p.send(c["topic"], f"kp-{i}".encode()).get(timeout=15)
            p.close()
            print(f"produced {c['n']}")
        except KafkaError as e:
            print(f"refused {type(e).__name__}: {e}")
        return
    if action == "consume":
        try:
            consumer = KafkaConsumer(
                group_id=c["group"],
                auto_offset_reset="earliest",
                enable_auto_commit=False,
                consumer_timeout_ms=10000,
                **kafka_python_conf(c),
            )
            consumer.subscribe([c["topic"]])
            got = 0
            deadline = time.time() + 30
            while got < c["n"] and time.time() < deadline:
                for records in consumer.poll(timeout_ms=1000).values():
                    got += len(records)
            consumer.commit()
            consumer.close()
            print(f"consumed {got}")
        except KafkaError as e:
            print(f"refused {type(e).__name__}: {e}")
        return
    raise SystemExit(f"unknown action {action}")


def confluent(action, c):
    from confluent_kafka import Consumer, KafkaException, Producer

    if action == "produce":
        errors = []
        p = Producer({**confluent_conf(c), "message.timeout.ms": 15000})

        def report(err, _msg):
            if err is not None:
                errors.append(err)

        for i in range(c["n"]):
            p.produce(c["topic"], f"ck-{i}".encode(), on_delivery=report)
        p.flush(30)
        if errors:
            print(f"refused {errors[0].name()}: {errors[0].str()}")
        else:
            print(f"produced {c['n']}")
        return
    if action == "consume":
        consumer = Consumer(
            {
                **confluent_conf(c),
                "group.id": c["group"],
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe([c["topic"]])
        got = 0
        deadline = time.time() + 30
        try:
            while got < c["n"] and time.time() < deadline:
                m = consumer.poll(1.0)
                if m is None:
                    continue
                if m.error():
                    print(f"refused {m.error().name()}: {m.error().str()}")
                    return
                got += 1
            if got:
                consumer.commit(asynchronous=False)
            print(f"consumed {got}")
        except KafkaException as e:
            err = e.args[0]
            print(f"refused {err.name()}: {err.str()}")
        finally:
            consumer.close()
        return
    raise SystemExit(f"unknown action {action}")


def main():
    client, action, conf = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    {"kafka-python": kafka_python, "confluent": confluent}[client](action, conf)


if __name__ == "__main__":
    main()
