"""Reads the three Lasair-shaped JSON streams an in-broker pipeline wrote
(kafka-python) and compares every message with its source alert, decoded
independently with fastavro.

usage: lasair_streams.py BOOTSTRAP ZTF_FILE... --rubin RUBIN_FILE...
Produces each ZTF file's bytes to `ztf-buffer` and each Rubin file's to
`lsst-buffer`, then reads `lasair-full`, `lasair-fields`, `lasair-lite`,
`rubin-fields` and `rubin-lite`. Prints "lasair streams ok: N ZTF alerts,
M Rubin alerts".
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


def produce(producer, topic, paths, id_of):
    sources = {}
    for path in paths:
        with open(path, "rb") as f:
            raw = f.read()
        with open(path, "rb") as f:
            (record,) = list(fastavro.reader(f))
        sources[id_of(record)] = record
        producer.send(topic, value=raw).get(timeout=30)
    return sources


def close(a, b, where):
    assert abs(a - b) <= 1e-9 * max(1.0, abs(a)), f"{where}: {a} != {b}"


def check_rubin(bootstrap, sources):
    # `diaSourceId` is found at the top (8.0+) or in diaSource (7.4, whose top-level id is alertId).
    by_source = {r["diaSource"]["diaSourceId"]: r for r in sources.values()}
    for m in consume(bootstrap, "rubin-fields", len(sources)):
        got = json.loads(m.value)
        src = by_source[got["diaSourceId"]]
        ds = src["diaSource"]
        assert got["diaSource.diaObjectId"] == ds["diaObjectId"]
        same(ds.get("psfFlux", ds.get("psFlux")), got["psfFlux"], "psfFlux")
        same(ds.get("band"), got["band"], "band")
        obj = src.get("diaObject")
        same((obj or {}).get("nDiaSources"), got["diaObject.nDiaSources"], "nDiaSources")
    for m in consume(bootstrap, "rubin-lite", len(sources)):
        got = json.loads(m.value)
        src = sources[got["alert_id"]]
        assert m.key == str(got["alert_id"]).encode(), m.key
        assert got["survey"] == "Rubin"
        ds = src["diaSource"]
        oid = ds["diaObjectId"] or (src.get("diaObject") or {}).get("diaObjectId")
        assert got["object_id"] == (oid or None), (got["object_id"], oid)
        flux = lambda s: s.get("psfFlux", s.get("psFlux"))
        rows = [s for s in (src.get("prvDiaSources") or []) if (flux(s) or 0) > 0]
        if (flux(ds) or 0) > 0:
            rows.append(ds)
        rows.sort(key=lambda s: s["midpointMjdTai"])
        lc = got["lightcurve"]
        assert len(lc) == len(rows), (len(lc), len(rows))
        for s, p in zip(rows, lc):
            f = flux(s)
            assert p["mjd"] == s["midpointMjdTai"] and p["band"] == s["band"]
            close(31.4 - 2.5 * math.log10(f), p["magnitude"], "magnitude")
            close(2.5 / math.log(10) * s["psfFluxErr"] / f, p["magnitude_err"], "magnitude_err")


def main():
    bootstrap = sys.argv[1]
    cut = sys.argv.index("--rubin")
    files, rubin_files = sys.argv[2:cut], sys.argv[cut + 1 :]
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    sources = produce(producer, "ztf-buffer", files, lambda r: r["candid"])
    rubin = produce(producer, "lsst-buffer", rubin_files, lambda r: r.get("diaSourceId", r.get("alertId")))
    producer.close()
    check_rubin(bootstrap, rubin)

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

    print(f"lasair streams ok: {len(files)} ZTF alerts, {len(rubin_files)} Rubin alerts")


main()
