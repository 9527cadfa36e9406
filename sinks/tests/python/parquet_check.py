"""Reads ParquetWriter output back with pyarrow and with DuckDB and compares
every value with the source alerts, decoded independently with fastavro.

usage: parquet_check.py SPEC_JSON

SPEC_JSON is a file holding:
  {"parquet": [files...], "alerts": [avro files...],
   "columns": null | [[name, "dotted.path"], ...],
   "partitioned": bool}

Prints one JSON object: rows read by each reader, values compared, the
mismatches (at most 20), and the hive folders seen.
"""

import datetime
import json
import math
import os
import sys

import duckdb
import fastavro
import pyarrow.parquet as pq

DETECTION = ("candidate", "diaSource")
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


ID_FIELDS = ("candid", "alertId", "diaSourceId")


def alert_id(rec):
    """The top-level id (ZTF candid, Rubin alertId up to 7.x, diaSourceId from 8.0)."""
    for k in ID_FIELDS:
        if rec.get(k) is not None:
            return rec[k]
    return None


def detection(rec):
    for k in DETECTION:
        if isinstance(rec.get(k), dict):
            return rec[k]
    return {}


def lookup(rec, path):
    """A dotted path from the root, else inside the detection record."""
    for root in (rec, detection(rec)):
        v = root
        ok = True
        for i, seg in enumerate(path):
            if isinstance(v, dict) and seg in v:
                v = v[seg]
            elif v is None and i > 0:
                return None
            else:
                ok = False
                break
        if ok:
            return v
    raise KeyError(".".join(path))


def norm(v):
    """Values comparable across readers: datetimes as epoch microseconds."""
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=datetime.timezone.utc)
        d = v - EPOCH
        return (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds
    if isinstance(v, datetime.date):
        return (v - EPOCH.date()).days
    if isinstance(v, bytearray):
        return bytes(v)
    if isinstance(v, dict):
        return {k: norm(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [norm(x) for x in v]
    return v


def same(a, b):
    a, b = norm(a), norm(b)
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        # The writer leaves out fields with no Parquet form (maps, ...):
        # every written field must match the source.
        return all(k in b and same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def expected_value(rec, column, chosen):
    if chosen is not None:
        return lookup(rec, chosen[column].split("."))
    if column in rec and not isinstance(rec[column], dict):
        return rec[column]
    det = detection(rec)
    if column in det:
        return det[column]
    raise KeyError(column)


def night_folder(rec):
    """year=/month=/day= of the detection's time, computed here from the alert."""
    det = detection(rec)
    if "jd" in det:
        mjd = det["jd"] - 2400000.5
    else:
        mjd = det["midpointMjdTai"]
    day = datetime.date(1858, 11, 17) + datetime.timedelta(days=math.floor(mjd))
    return os.path.join(f"year={day.year:04d}", f"month={day.month:02d}", f"day={day.day:02d}")


def compare(reader, rows_by_id, sources, chosen, out, folder=None):
    for aid, row in rows_by_id.items():
        rec = sources.get(aid)
        if rec is None:
            out["mismatches"].append(f"{reader}: row with id {aid} is no source alert")
            continue
        if folder is not None and not folder.endswith(night_folder(rec)):
            out["date_mismatches"] += 1
            out["mismatches"].append(f"{reader}: id {aid} in {folder}, observed {night_folder(rec)}")
        for column, value in row.items():
            try:
                want = expected_value(rec, column, chosen)
            except KeyError:
                out["mismatches"].append(f"{reader}: id {aid}: column {column} not in the source")
                continue
            out["compared"][reader] += 1
            if not same(value, want):
                out["mismatches"].append(
                    f"{reader}: id {aid}: column {column}: parquet {str(norm(value))[:200]} != avro {str(norm(want))[:200]}"
                )


def row_id(row, chosen):
    for k in ID_FIELDS:
        if row.get(k) is not None:
            return row[k]
    if chosen is not None:
        for name, path in chosen.items():
            if path.split(".")[-1] in ("candid", "diaSourceId", "alertId"):
                return row[name]
    return None


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    chosen = None if spec["columns"] is None else {n: p for n, p in spec["columns"]}
    sources = {}
    for path in spec["alerts"]:
        with open(path, "rb") as f:
            reader = fastavro.reader(f)
            ws = reader.writer_schema
            name = ws["name"]
            if "." not in name and ws.get("namespace"):
                name = ws["namespace"] + "." + name
            for rec in reader:
                # Rubin's sample alerts of every version share one id.
                sources[(name, alert_id(rec))] = rec
    out = {
        "rows": {"pyarrow": 0, "duckdb": 0},
        "compared": {"pyarrow": 0, "duckdb": 0},
        "mismatches": [],
        "ids": {"pyarrow": [], "duckdb": []},
        "folders": sorted({os.path.dirname(p) for p in spec["parquet"]}),
        "schemas": [],
        "date_mismatches": 0,
    }
    con = duckdb.connect()
    for path in spec["parquet"]:
        meta = pq.read_metadata(path).metadata or {}
        schema_name = meta.get(b"starlog.avro.schema", b"").decode()
        mine = {aid: rec for (n, aid), rec in sources.items() if n == schema_name}
        table = pq.ParquetFile(path).read()
        out["schemas"].append(str(table.schema.types))
        rows = table.to_pylist()
        out["rows"]["pyarrow"] += len(rows)
        by_id = {}
        for r in rows:
            by_id[row_id(r, chosen)] = r
            out["ids"]["pyarrow"].append(row_id(r, chosen))
        folder = os.path.dirname(path) if spec.get("partitioned") else None
        compare("pyarrow", by_id, mine, chosen, out, folder)

        cur = con.execute("SELECT * FROM read_parquet(?, hive_partitioning = false)", [path])
        names = [d[0] for d in cur.description]
        drows = [dict(zip(names, r)) for r in cur.fetchall()]
        out["rows"]["duckdb"] += len(drows)
        by_id = {}
        for r in drows:
            by_id[row_id(r, chosen)] = r
            out["ids"]["duckdb"].append(row_id(r, chosen))
        compare("duckdb", by_id, mine, chosen, out)
    if spec.get("partitioned"):
        # DuckDB's hive partitioning reads the folders back as columns.
        pattern = os.path.join(spec["root"], "**", "*.parquet")
        q = (
            "SELECT year, month, day, count(*) FROM read_parquet(?, hive_partitioning = true, union_by_name = true) "
            "GROUP BY ALL ORDER BY ALL"
        )
        out["hive"] = [list(map(int, r[:3])) + [r[3]] for r in con.execute(q, [pattern]).fetchall()]
    out["mismatch_count"] = len(out["mismatches"])
    out["mismatches"] = out["mismatches"][:20]
    print(json.dumps(out, default=str))


main()
