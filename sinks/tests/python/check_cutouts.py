"""Checks CutoutWriter's files against the alerts' stamps, decoded
independently with fastavro: FITS equal to the source (bytes, and with
astropy every HDU's header and data); PNG (and JPEG) of the stamp's size
whose grey levels follow astropy's interval and stretch of the source array.

usage: check_cutouts.py OUT_DIR ALERT_LIST STRETCH LIMITS FORMATS
  STRETCH: linear | asinh; LIMITS: zscale | minmax; FORMATS: e.g. fits,png,jpeg
"""

import gzip
import io
import sys
from pathlib import Path

import fastavro
import numpy as np
from astropy.io import fits
from astropy.visualization import (AsinhStretch, LinearStretch, MinMaxInterval,
                                   ZScaleInterval)
from PIL import Image

KINDS = {"science": "cutoutScience", "template": "cutoutTemplate",
         "difference": "cutoutDifference"}


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def alert_id(r):
    if r.get("candidate") is not None:
        return r["candid"]
    for k in ("diaSourceId", "alertId"):
        if r.get(k) is not None:
            return r[k]
    return r["diaSource"]["diaSourceId"]


def stamp(r, field):
    v = r.get(field)
    if isinstance(v, dict):
        v = v.get("stampData")
    if v is None:
        return None
    return gzip.decompress(v) if v[:2] == b"\x1f\x8b" else v


def first_image(hdul):
    for h in hdul:
        if h.data is not None and h.data.ndim == 2:
            return h.data.astype(np.float64)
    fail("no 2-D image in a source stamp")


def expected_grey(data, stretch, limits):
    interval = ZScaleInterval() if limits == "zscale" else MinMaxInterval()
    vmin, vmax = interval.get_limits(data)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.clip((data - vmin) / (vmax - vmin), 0.0, 1.0)
    s = AsinhStretch() if stretch == "asinh" else LinearStretch()
    y = s(np.nan_to_num(x, nan=0.0), clip=True)
    grey = np.round(y * 255.0)
    grey[~np.isfinite(data)] = 0
    # FITS row 1 is the bottom; an image's first row is its top.
    return np.flipud(grey)


def main():
    out, listing = Path(sys.argv[1]), Path(sys.argv[2])
    stretch, limits, formats = sys.argv[3], sys.argv[4], sys.argv[5].split(",")
    files = [l for l in listing.read_text().splitlines() if l.strip()]
    expected, stamps, max_png_diff, jpeg_diffs = set(), 0, 0, []
    for f in files:
        with open(f, "rb") as fh:
            r = next(fastavro.reader(fh))
        aid = alert_id(r)
        for kind, field in KINDS.items():
            src = stamp(r, field)
            if src is None:
                continue
            stamps += 1
            name = f"{aid}_{kind}"
            src_hdul = fits.open(io.BytesIO(src))
            data = first_image(src_hdul)
            if "fits" in formats:
                path = out / f"{name}.fits"
                expected.add(path.name)
                if path.read_bytes() != src:
                    fail(f"{path}: bytes differ from the alert's stamp")
                with fits.open(path) as got:
                    if len(got) != len(src_hdul):
                        fail(f"{path}: {len(got)} HDUs, source {len(src_hdul)}")
                    for g, s in zip(got, src_hdul):
                        if list(g.header.cards) != list(s.header.cards) and \
                                [str(c) for c in g.header.cards] != [str(c) for c in s.header.cards]:
                            fail(f"{path}: header of {g.name} differs")
                        if (g.data is None) != (s.data is None) or (
                                g.data is not None and not np.array_equal(g.data, s.data, equal_nan=True)):
                            fail(f"{path}: data of {g.name} differs")
            want = expected_grey(data, stretch, limits)
            for fmt, ext in (("png", "png"), ("jpeg", "jpg")):
                if fmt not in formats:
                    continue
                path = out / f"{name}.{ext}"
                expected.add(path.name)
                img = Image.open(path)
                if img.size != (data.shape[1], data.shape[0]) or img.mode != "L":
                    fail(f"{path}: {img.size} {img.mode}, stamp is {data.shape[1]}x{data.shape[0]}")
                got = np.asarray(img, dtype=np.float64)
                diff = np.abs(got - want)
                if fmt == "png":
                    max_png_diff = max(max_png_diff, diff.max())
                    if diff.max() > 1:
                        bad = np.argwhere(diff > 1)[:3].tolist()
                        fail(f"{path}: grey levels differ by up to {diff.max()} at {bad}")
                else:
                    jpeg_diffs.append(diff.mean())
                    if diff.mean() > 5:
                        fail(f"{path}: mean difference {diff.mean():.2f} grey levels")
    present = {p.name for p in out.iterdir()}
    if present != expected:
        fail(f"files differ: extra {sorted(present - expected)[:5]}, "
             f"missing {sorted(expected - present)[:5]}")
    if stamps < 100:
        fail(f"only {stamps} stamps in the alerts")
    print(f"OK: {stamps} stamps, {len(expected)} files, {stretch}/{limits}, "
          f"max PNG difference {max_png_diff:.0f}, "
          f"worst JPEG mean difference {max(jpeg_diffs, default=0):.2f}")


main()
