"""Reads the light curves LightCurveWriter wrote back with astropy and
compares them with the alerts, decoded independently with fastavro.

usage: check_lightcurves.py OUT_DIR ALERT_LIST FORMATS
  ALERT_LIST: a text file, one alert file per line, in the order they were fed
  FORMATS: comma-separated, e.g. fits,votable
Exits non-zero with a message on the first mismatch.
"""

import math
import sys
from pathlib import Path

import fastavro
import numpy as np
from astropy import units as u
from astropy.io.votable import parse as parse_votable
from astropy.table import Table

ZP = 31.4
MAG_ERR = 2.5 / math.log(10)
COLUMNS = ["kind", "source_id", "mjd", "band", "ra", "dec", "mag", "mag_err",
           "flux", "flux_err", "limiting_mag"]
UNITS = {"mjd": u.day, "ra": u.deg, "dec": u.deg, "mag": u.mag, "mag_err": u.mag,
         "flux": u.nJy, "flux_err": u.nJy, "limiting_mag": u.mag}
UCDS = {"kind": "meta.code.class", "source_id": "meta.id", "mjd": "time.epoch",
        "band": "instr.filter", "ra": "pos.eq.ra", "dec": "pos.eq.dec", "mag": "phot.mag",
        "mag_err": "stat.error;phot.mag", "flux": "phot.flux",
        "flux_err": "stat.error;phot.flux", "limiting_mag": "phot.mag;stat.max"}
NAN = float("nan")


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def num(rec, *names):
    for n in names:
        v = rec.get(n)
        if v is not None and math.isfinite(v):
            return float(v)
    return NAN


def ztf_band(fid):
    return {1: "g", 2: "r", 3: "i"}.get(fid, f"fid{fid}") if fid is not None else ""


def row(kind, sid, mjd, band, ra=NAN, dec=NAN, mag=NAN, mag_err=NAN, flux=NAN,
        flux_err=NAN, lim=NAN):
    return dict(kind=kind, source_id=sid, mjd=mjd, band=band, ra=ra, dec=dec, mag=mag,
                mag_err=mag_err, flux=flux, flux_err=flux_err, limiting_mag=lim)


def mag_of(flux, err):
    if flux > 0:
        return ZP - 2.5 * math.log10(flux), MAG_ERR * err / flux
    return NAN, NAN


def ztf_detection(c, kind):
    return row(kind, c.get("candid") if kind == "detection" else None,
               num(c, "jd") - 2400000.5, ztf_band(c.get("fid")), num(c, "ra"), num(c, "dec"),
               num(c, "magpsf"), num(c, "sigmapsf"), lim=num(c, "diffmaglim"))


def rubin_detection(s):
    flux, err = num(s, "psfFlux", "psFlux"), num(s, "psfFluxErr", "psFluxErr")
    mag, mag_err = mag_of(flux, err)
    return row("detection", s.get("diaSourceId"), num(s, "midpointMjdTai", "midPointTai"),
               s.get("band") or s.get("filterName") or "", num(s, "ra"), num(s, "dec", "decl"),
               mag, mag_err, flux, err)


def alert_rows(r):
    """(object id, rows) of one alert; object None when it has no light curve."""
    if r.get("candidate") is not None:
        rows = [ztf_detection(r["candidate"], "detection")]
        for p in r.get("prv_candidates") or []:
            rows.append(ztf_detection(p, "detection" if p.get("candid") is not None else "upper_limit"))
        for f in r.get("fp_hists") or []:
            zp = num(f, "magzpsci")
            raw, raw_err = num(f, "forcediffimflux"), num(f, "forcediffimfluxunc")
            if raw == -99999.0 or raw_err == -99999.0:
                flux = err = NAN
            else:
                scale = 10 ** ((ZP - zp) / 2.5)
                flux, err = raw * scale, raw_err * scale
            mag, mag_err = mag_of(flux, err)
            rows.append(row("forced", None, num(f, "jd") - 2400000.5, ztf_band(f.get("fid")),
                            mag=mag, mag_err=mag_err, flux=flux, flux_err=err,
                            lim=num(f, "diffmaglim")))
        return r.get("objectId"), rows
    ds = r["diaSource"]
    oid = ds.get("diaObjectId") or (r.get("diaObject") or {}).get("diaObjectId")
    rows = [rubin_detection(ds)] + [rubin_detection(p) for p in r.get("prvDiaSources") or []]
    for f in r.get("prvDiaForcedSources") or []:
        flux, err = num(f, "psfFlux", "psFlux"), num(f, "psfFluxErr", "psFluxErr")
        mag, mag_err = mag_of(flux, err)
        rows.append(row("forced", f.get("diaForcedSourceId"),
                        num(f, "midpointMjdTai", "midPointTai"),
                        f.get("band") or f.get("filterName") or "", num(f, "ra"),
                        num(f, "dec", "decl"), mag, mag_err, flux, err))
    return (str(oid) if oid else None), rows


def key(rw):
    if rw["source_id"] is not None:
        return (rw["kind"], rw["source_id"])
    return (rw["kind"], rw["mjd"], rw["band"])


def expected_curves(files):
    curves, alerts_per_object = {}, {}
    for f in files:
        with open(f, "rb") as fh:
            r = next(fastavro.reader(fh))
        oid, rows = alert_rows(r)
        if oid is None:
            continue
        alerts_per_object[oid] = alerts_per_object.get(oid, 0) + 1
        curve = curves.setdefault(oid, {})
        for rw in rows:
            curve[key(rw)] = rw
    return curves, alerts_per_object


def cell(col, v):
    """A table cell as None (masked / NaN) or a Python value."""
    if np.ma.is_masked(v):
        return None
    if isinstance(v, (bytes, np.bytes_)):
        v = v.decode()
    if isinstance(v, (np.floating, float)):
        return None if math.isnan(v) else float(v)
    if isinstance(v, (np.integer, int)):
        return int(v)
    return str(v).rstrip()


def same(col, want, got):
    if col in ("kind", "band"):
        return (want or "") == (got or "")
    if col == "source_id":
        return want == got
    if want is None or (isinstance(want, float) and math.isnan(want)):
        return got is None
    return got is not None and math.isclose(want, got, rel_tol=1e-12, abs_tol=0.0)


def check_table(t, path, oid, curve):
    if list(t.colnames) != COLUMNS:
        fail(f"{path}: columns {t.colnames}")
    for col, unit in UNITS.items():
        if t[col].unit != unit:
            fail(f"{path}: unit of {col} is {t[col].unit!r}, expected {unit}")
    if len(t) != len(curve):
        fail(f"{path}: {len(t)} rows, the alerts of {oid} give {len(curve)} distinct epochs")
    mjds = [cell("mjd", v) for v in t["mjd"]]
    finite = [m for m in mjds if m is not None]
    if finite != sorted(finite):
        fail(f"{path}: rows not in time order")
    seen = set()
    for i in range(len(t)):
        got = {c: cell(c, t[c][i]) for c in COLUMNS}
        k = key(got) if got["source_id"] is not None else (got["kind"], got["mjd"], got["band"])
        if k in seen:
            fail(f"{path}: duplicate row {k}")
        seen.add(k)
        want = curve.get(k)
        if want is None:
            fail(f"{path}: row {k} is in no alert of {oid}")
        for c in COLUMNS:
            if not same(c, want[c], got[c]):
                fail(f"{path}: row {k} column {c}: file {got[c]!r}, alert {want[c]!r}")


def main():
    out, listing, formats = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split(",")
    files = [l for l in listing.read_text().splitlines() if l.strip()]
    curves, per_object = expected_curves(files)
    leftovers = [p.name for p in out.iterdir() if p.name.endswith(".part")]
    if leftovers:
        fail(f".part files left: {leftovers}")
    rows_checked = 0
    for oid, curve in curves.items():
        if "fits" in formats:
            path = out / f"{oid}.fits"
            if not path.exists():
                fail(f"{path} missing")
            t = Table.read(path, hdu="LIGHTCURVE")
            check_table(t, path, oid, curve)
            rows_checked += len(t)
        if "votable" in formats:
            path = out / f"{oid}.vot"
            if not path.exists():
                fail(f"{path} missing")
            t = Table.read(path, format="votable")
            check_table(t, path, oid, curve)
            for field in parse_votable(str(path)).get_first_table().fields:
                if field.ucd != UCDS[field.name]:
                    fail(f"{path}: UCD of {field.name} is {field.ucd!r}")
    expected_files = {f"{o}.{ext}" for o in curves for ext, on in
                      (("fits", "fits" in formats), ("vot", "votable" in formats)) if on}
    present = {p.name for p in out.iterdir()}
    if present != expected_files:
        fail(f"files differ: extra {sorted(present - expected_files)[:5]}, "
             f"missing {sorted(expected_files - present)[:5]}")
    multi = sum(1 for n in per_object.values() if n > 1)
    forced = sum(1 for c in curves.values() for r in c.values() if r["kind"] == "forced")
    limits = sum(1 for c in curves.values() for r in c.values() if r["kind"] == "upper_limit")
    if multi == 0 or forced == 0 or limits == 0:
        fail(f"the alerts should cover objects with several alerts ({multi}), forced photometry "
             f"({forced}) and upper limits ({limits})")
    print(f"OK: {len(curves)} objects ({multi} with several alerts), {rows_checked} FITS rows, "
          f"{forced} forced-photometry and {limits} upper-limit rows, formats {formats}")


main()
