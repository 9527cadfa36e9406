"""Reads the three Lasair-shaped JSON streams an in-broker pipeline wrote
(kafka-python) and compares every message with its source alert, decoded
independently with fastavro.

usage: lasair_streams.py BOOTSTRAP ALERT_FILE...
Produces each file's bytes to `ztf-buffer`, then reads `lasair-full`,
`lasair-fields` and `lasair-lite`. Prints "lasair streams ok: N alerts".
"""

import json
import math
import sys
import time

import fastavro
from kafka import KafkaConsumer, KafkaProducer

FIELDS = ["objectId", "candid", "candidate.magpsf", "magpsf", "candidate.fid", "ra", "prv_candidates", "candidate.no_such_field"]
CUTOUTS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")
BANDS = {1: "g", 2: "r", 3: "i"}


def same(a, b, where):
    """Equal JSON values; a NaN in the source is null in JSON."""
    if isinstance(a, float) and math.isnan(a):
        assert b is None, f"{where}: NaN vs {b!r}"
    elif isinstance(a, dict):
        assert isinstance(b, dict), f"{where}: {type(b)}"
        assert set(a) == set(b), f"{where}: keys {sorted(set(a) ^ set(b))}"
        for k in a:
            same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{where}: lengths"
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def lookup(record, path):
    """Top level first, then inside `candidate` (Candidate::lookup)."""
    for root in (record, record["candidate"]):
        value, ok = root, True
        for part in path.split("."):
            if isinstance(value, dict) and part in value:
                value = value[part]
            else:
                ok = False
                break
        if ok:
            return value
    return None


def consume(bootstrap, topic, count):
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    out, deadline = [], time.time() + 60
    while len(out) < count and time.time() < deadline:
        for message in consumer:
            out.append(message)
    consumer.close()
    assert len(out) == count, f"{topic}: {len(out)} messages, expected {count}"
    return out


def main():
    bootstrap, files = sys.argv[1], sys.argv[2:]
    sources = {}
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for path in files:
        with open(path, "rb") as f:
            raw = f.read()
        with open(path, "rb") as f:
            (record,) = list(fastavro.reader(f))
        sources[record["candid"]] = record
        producer.send("ztf-buffer", value=raw).get(timeout=30)
    producer.close()

    for m in consume(bootstrap, "lasair-full", len(files)):
        got = json.loads(m.value)
        src = dict(sources[got["candid"]])
        assert m.key == src["objectId"].encode(), m.key
        for c in CUTOUTS:
            src.pop(c, None)
        assert got.pop("starlog_matches") == []
        same(src, got, f"full {src['candid']}")

    for m in consume(bootstrap, "lasair-fields", len(files)):
        got = json.loads(m.value)
        src = sources[got["candid"]]
        assert m.key == src["objectId"].encode(), m.key
        assert sorted(got) == sorted(FIELDS), list(got)
        for name in FIELDS:
            same(lookup(src, name), got[name], f"fields {src['candid']} {name}")
        assert got["candidate.no_such_field"] is None

    for m in consume(bootstrap, "lasair-lite", len(files)):
        got = json.loads(m.value)
        src = sources[got["alert_id"]]
        assert m.key is None, m.key
        assert got["object_id"] == src["objectId"]
        assert got["survey"] == "ZTF"
        assert got["ra"] == src["candidate"]["ra"] and got["dec"] == src["candidate"]["dec"]
        rows = [c for c in (src["prv_candidates"] or []) if c.get("magpsf") is not None]
        rows.append(src["candidate"])
        rows.sort(key=lambda c: c["jd"])
        want = [
            {"mjd": c["jd"] - 2400000.5, "band": BANDS[c["fid"]], "magnitude": c["magpsf"], "magnitude_err": c["sigmapsf"]}
            for c in rows
        ]
        assert len(want) >= 1
        same(want, got["lightcurve"], f"lite {got['alert_id']}")

    print(f"lasair streams ok: {len(files)} alerts")


main()
