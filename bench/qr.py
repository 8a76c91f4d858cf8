"""QR photo decoding on real images: decode rate and time per photo, for each decoder alone and for
``protocol.qrphoto.decode_photo`` (the production chain), all in the same run.

    python bench/qr.py            # every image of ../shared/data/qr-samples (qrcode-1 and qrcode-2)
    python bench/qr.py --quick    # qrcode-1 only
    python bench/qr.py --phones 0 # without the generated phone photos
    python bench/qr.py --synthetic-curved 36   # only: generated labels wrapped around a cylinder, with/without dewarp

The real samples are small (none is larger than 780 px). Phones send 12 MP JPEGs of 3-5 MB, so the run also
generates ``--phones`` such photos (4000x3000, seeded: the same every run): enterprise-like codes of 2.5 to
10 pixels per module at various angles, some stored sideways with an EXIF orientation, one beside a larger
foreign code, some with no code. On those, ``decode_photo`` as it is (reduced scale first, full picture on a
miss, time limit) is timed against the search as it was before (the full picture only, no time limit), in the
same run, in CPU time of the calling thread (the shared machine's load barely moves it): the "phones" object
of the JSON line.

Each image's ``.txt`` holds the exact text it encodes. An answer counts as decoded only if it is exactly
that text; a different text is a *mismatch*, reported apart from *failures* (no code found). Every method
starts from the image file's bytes, so times include Pillow opening and converting the image (the "open
only" row). Each time is the median of ``--repeat`` calls; the table gives the median and 90th percentile
over the images. The last line of the output is one JSON object holding every figure.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from protocol import qrphoto  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import percentile  # noqa: E402 - the benchmarks' shared helpers

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "qr-samples"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


def load_samples(root: Path, folders: list[str]) -> list[tuple[str, bytes, str]]:
    """(name, image bytes, expected text) for every image with a ``.txt`` beside it."""
    if not root.is_dir():
        raise SystemExit(f"QR samples not found at {root}: this benchmark needs the shared data folder "
                         "(../shared/data/qr-samples beside the repository), or pass --samples DIR")
    samples = []
    for folder in folders:
        d = root / folder
        if not d.is_dir():
            raise SystemExit(f"QR samples folder {d} is missing")
        for image in sorted(d.iterdir()):
            txt = image.with_suffix(".txt")
            if image.suffix.lower() in IMAGE_SUFFIXES and txt.is_file():
                # Bytes, not read_text(): universal newlines would turn the codes' "\r\n" into "\n".
                samples.append((f"{folder}/{image.name}", image.read_bytes(), txt.read_bytes().decode("utf-8")))
    if not samples:
        raise SystemExit(f"no images with a .txt beside them under {root}")
    return samples


def matches(got: str, expected: str) -> bool:
    """Exact text; a single line end that ends the .txt file (and not the code) is forgiven."""
    if got == expected:
        return True
    for end in ("\r\n", "\n"):
        if expected.endswith(end) and not got.endswith(end) and got == expected[: -len(end)]:
            return True
    return False


def methods() -> dict[str, Callable[[bytes], str]]:
    """The methods measured: each decoder alone, plain and with the pre-processings, and the chain."""
    out: dict[str, Callable[[bytes], str]] = {}
    for name in qrphoto.DECODERS:
        if name in qrphoto.decoders_available():
            out[name] = lambda data, n=name: qrphoto.decode_with(n, data, preprocess=False)
            out[f"{name} + pre-processing"] = lambda data, n=name: qrphoto.decode_with(n, data, preprocess=True)
    out["decode_photo (chain)"] = qrphoto.decode_photo
    out["decode_photo before (full picture)"] = full_picture
    out["decode_photo without dewarp"] = without_dewarp
    return out


def without_dewarp(data: bytes) -> str:
    """The chain without its last try (the dewarp of a symbol detected but not read)."""
    return qrphoto._read(data, qrphoto.decoders_available(), True, qrphoto.MAX_PIXELS, qrphoto.MAX_BYTES, qrphoto.TIME_LIMIT, dewarp=False)


def bench_curved(count: int) -> dict[str, Any]:
    """Generated photos of enterprise codes on labels wrapped around a cylinder (tests/support/curved_qr.py: both axes,
    the label covering 2 x 40, 50, 60 or 70 degrees; seeded, the same every run): read, wrong, and CPU ms of this
    thread, with and without the dewarp."""
    from tests.support.curved_qr import curved_photo, enterprise_text

    shapes = [(axis, deg) for deg in (40, 50, 60, 70) for axis in ("vertical", "horizontal")]
    todo = {"decode_photo": qrphoto.decode_photo, "decode_photo without dewarp": without_dewarp}
    rows: dict[str, dict[str, Any]] = {m: {"read": 0, "wrong": 0, "ms": []} for m in todo}
    by_angle: dict[str, dict[int, int]] = {m: {} for m in todo}
    for i in range(count):
        axis, deg = shapes[i % len(shapes)]
        text = enterprise_text(i)
        data = curved_photo(text, i, deg, axis=axis)
        for m, fn in todo.items():
            t0 = time.thread_time()
            try:
                got: str | None = fn(data)
            except qrphoto.PhotoError:
                got = None
            rows[m]["ms"].append((time.thread_time() - t0) * 1000)
            rows[m]["read"] += got == text
            rows[m]["wrong"] += got is not None and got != text
            by_angle[m][deg] = by_angle[m].get(deg, 0) + (got == text)
    return {"photos": count, "methods": {m: {"read": r["read"], "wrong": r["wrong"], "rate": round(r["read"] / max(1, count), 3),
                                             "by_half_angle": by_angle[m], "cpu_ms_median": round(statistics.median(r["ms"]), 1),
                                             "cpu_ms_p90": round(percentile(r["ms"], 90), 1)} for m, r in rows.items()}}


def full_picture(data: bytes) -> str:
    """The chain as it was before reduced-scale JPEG decoding: full resolution and colour, no time limit."""
    return qrphoto._read(data, qrphoto.decoders_available(), True, qrphoto.MAX_PIXELS, qrphoto.MAX_BYTES, math.inf, reduce=False)


def open_full(data: bytes) -> str:
    """Baseline before: what the chain paid before decoding (full resolution, colour, then grayscale)."""
    qrphoto._open(data, qrphoto.MAX_PIXELS, qrphoto.MAX_BYTES, draft=False)
    return ""


def open_reduced(data: bytes) -> str:
    """Baseline now: the first opening (grayscale, reduced scale for large JPEGs)."""
    qrphoto._open_at(data, qrphoto.MAX_PIXELS, qrphoto.MAX_BYTES, long_side=qrphoto._DRAFT_LONG_SIDE)
    return ""


# ------------------------------------------------------------------------------- generated phone photos

_FOREIGN = "https://pay.example.com/qr/7f3a9c2e51"


def _enterprise_text(r: random.Random) -> str:
    """An enterprise code's shape: FE1:<credit code>:<key id>:<date>:<103 base32 characters>."""
    return f"FE1:9133{r.randrange(10**10):010d}X{r.randrange(10**4):04d}:k{r.randrange(1, 9)}:2026{r.randrange(1, 13):02d}{r.randrange(1, 29):02d}:" + "".join(
        r.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(103))


def phone_photo(seed: int, codes: list[tuple[str, float, float]], orientation: int = 1) -> bytes:
    """A 4000x3000 colour JPEG (quality 90, 3-5 MB) of a cluttered scene holding ``codes`` (text, pixels per
    module, angle), slightly out of focus, with sensor noise; ``orientation`` 6 or 8: stored sideways."""
    import segno
    from PIL import Image, ImageChops, ImageDraw, ImageFilter

    r = random.Random(seed)
    w, h = 4000, 3000
    small = Image.linear_gradient("L").resize((w // 10, h // 10)).rotate(r.uniform(0, 360), fillcolor=128).point(lambda v: 60 + v // 2)
    draw = ImageDraw.Draw(small)
    for _ in range(40):
        x, y = r.randrange(w // 10), r.randrange(h // 10)
        draw.rectangle((x, y, x + r.randrange(2, 40), y + r.randrange(2, 30)), fill=r.randrange(256))
    frame = small.resize((w, h), Image.Resampling.BILINEAR)
    for i, (text, module_px, angle) in enumerate(codes):
        buf = io.BytesIO()
        segno.make_qr(text, error="m").save(buf, kind="png", scale=1, border=4)
        code = Image.open(buf).convert("L")
        side = round(code.width * module_px)
        code = code.resize((side, side), Image.Resampling.BOX).rotate(angle, Image.Resampling.BICUBIC, expand=True, fillcolor=255)
        code = code.filter(ImageFilter.GaussianBlur(r.uniform(0.4, 1.0)))
        x0 = 200 + i * (w // 2)  # side by side when there are two
        frame.paste(code, (r.randrange(x0, max(x0 + 1, x0 + w // 2 - code.width - 200)), r.randrange(200, max(201, h - code.height - 200))))
    noise = Image.frombytes("L", (w, h), r.randbytes(w * h)).point(lambda v: 128 + (v - 128) // 12)  # uniform, about 7 levels rms
    frame = ImageChops.add(frame, noise, 1.0, -128).convert("RGB")
    out = io.BytesIO()
    if orientation == 1:
        frame.save(out, "JPEG", quality=90)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        frame.transpose(Image.Transpose.ROTATE_90 if orientation == 6 else Image.Transpose.ROTATE_270).save(out, "JPEG", quality=90, exif=exif)
    return out.getvalue()


def phone_photos(count: int) -> list[tuple[str, bytes, str | None]]:
    """(name, JPEG bytes, expected text or None for a photo without a code); the same ``count`` photos every run."""
    r = random.Random(20261205)
    kinds = ["code", "code", "no code", "code", "rotated", "fine", "code", "foreign beside", "code", "rotated", "no code", "code"]
    out = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        text = _enterprise_text(r)
        module_px, angle = (3.0, 4.0, 5.0, 3.5, 6.0, 8.0, 10.0)[i % 7], r.uniform(-25, 25)
        if kind == "no code":
            out.append((f"phone-{i:02d} (no code)", phone_photo(i, []), None))
        elif kind == "fine":  # about 1.25 px per module at half scale: only the full picture has it
            out.append((f"phone-{i:02d} (2.5 px/module)", phone_photo(i, [(text, 2.5, angle)]), text))
        elif kind == "foreign beside":
            out.append((f"phone-{i:02d} (beside a payment code)", phone_photo(i, [(_FOREIGN, 8.0, 0.0), (text, 2.5, angle)]), text))
        elif kind == "rotated":
            out.append((f"phone-{i:02d} (EXIF, {module_px:g} px/module)", phone_photo(i, [(text, module_px, angle)], orientation=r.choice([6, 8])), text))
        else:
            out.append((f"phone-{i:02d} ({module_px:g} px/module)", phone_photo(i, [(text, module_px, angle)]), text))
    return out


def bench_phones(count: int, repeat: int) -> dict[str, Any]:
    """Before and now on generated 12 MP phone photos, interleaved, in CPU time of this thread."""
    photos = phone_photos(count)
    todo: dict[str, Callable[[bytes], str]] = {
        "open before (full, colour)": open_full,
        "open now (reduced, gray)": open_reduced,
        "decode_photo before (full picture)": full_picture,
        "decode_photo now": qrphoto.decode_photo,
    }
    cpu: dict[str, dict[str, list[float]]] = {m: {n: [] for n, _, _ in photos} for m in todo}
    outcome: dict[str, dict[str, tuple[str | None, str]]] = {m: {} for m in todo}
    for _ in range(max(1, repeat)):
        for name, data, _expected in photos:
            for m, fn in todo.items():
                t0 = time.thread_time()
                try:
                    text: str | None = fn(data)
                    reason = "ok"
                except qrphoto.PhotoError as e:
                    text, reason = None, e.reason
                cpu[m][name].append(time.thread_time() - t0)
                outcome[m].setdefault(name, (text, reason))
    figures: dict[str, Any] = {}
    for m in todo:
        per_photo_ms = {n: statistics.median(v) * 1000 for n, v in cpu[m].items()}
        ms = list(per_photo_ms.values())
        with_code = [per_photo_ms[n] for n, _, e in photos if e is not None]
        row: dict[str, Any] = {"cpu_ms_median": round(statistics.median(ms), 1), "cpu_ms_p90": round(percentile(ms, 90), 1),
                               "cpu_ms_max": round(max(ms), 1), "cpu_ms_p90_with_code": round(percentile(with_code, 90), 1)}
        if m.startswith("decode_photo"):
            read = sum(1 for n, _, e in photos if e is not None and outcome[m][n][0] == e)
            wrong = [n for n, _, e in photos if outcome[m][n][0] is not None and outcome[m][n][0] != e]
            row = {"read": read, "with_code": sum(1 for p in photos if p[2] is not None), "wrong": len(wrong), "wrong_photos": wrong,
                   "reasons": {n: outcome[m][n][1] for n, _, e in photos if outcome[m][n][0] is None}, **row}
        figures[m] = row
    return {"photos": len(photos), "bytes_median": int(statistics.median(len(d) for _, d, _ in photos)), "repeat": repeat,
            "per_photo_cpu_ms": {m: {n: round(statistics.median(v) * 1000, 1) for n, v in cpu[m].items()} for m in todo}, "methods": figures}


def print_phones(ph: dict[str, Any]) -> None:
    print(f"{ph['photos']} generated 12 MP phone photos (4000x3000 JPEG, median {ph['bytes_median'] / 1e6:.1f} MB), CPU ms of this thread, median of {ph['repeat']}")
    print(f"{'method':36s} {'read':>7s} {'wrong':>5s} {'median':>7s} {'p90':>7s} {'max':>7s} {'p90 with a code':>15s}")
    for m, r in ph["methods"].items():
        read = f"{r['read']}/{r['with_code']}" if "read" in r else ""
        wrong = str(r["wrong"]) if "wrong" in r else ""
        print(f"{m:36s} {read:>7s} {wrong:>5s} {r['cpu_ms_median']:7.1f} {r['cpu_ms_p90']:7.1f} {r['cpu_ms_max']:7.1f} {r['cpu_ms_p90_with_code']:15.1f}")
    names = list(next(iter(ph["per_photo_cpu_ms"].values())))
    before, now = ph["per_photo_cpu_ms"]["decode_photo before (full picture)"], ph["per_photo_cpu_ms"]["decode_photo now"]
    for n in names:
        why = ph["methods"]["decode_photo now"]["reasons"].get(n, "read")
        print(f"  {n:36s} before {before[n]:7.1f} ms   now {now[n]:7.1f} ms   ({why})")


def open_only(data: bytes) -> str:
    """Baseline: what every method pays before decoding (open, orientation, grayscale; large JPEGs at reduced scale)."""
    qrphoto._open_at(data, qrphoto.MAX_PIXELS, qrphoto.MAX_BYTES, long_side=qrphoto._DRAFT_LONG_SIDE)
    return ""


def run_one(fn: Callable[[bytes], str], data: bytes) -> tuple[str | None, str, float]:
    """(text or None, outcome reason, seconds)."""
    t0 = time.perf_counter()
    try:
        text: str | None = fn(data)
        reason = "ok"
    except qrphoto.PhotoError as e:
        text, reason = None, e.reason
    return text, reason, time.perf_counter() - t0


def version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def main() -> int:
    p = argparse.ArgumentParser(description="QR photo decode rate and time per photo on real images")
    p.add_argument("--quick", action="store_true", help="qrcode-1 only")
    p.add_argument("--repeat", type=int, default=5, help="calls per image and method; the median is kept (default 5)")
    p.add_argument("--samples", type=Path, default=SAMPLES, help=f"the samples folder (default {SAMPLES})")
    p.add_argument("--phones", type=int, default=None, help="generated 12 MP phone photos to time (default 12, 6 with --quick; 0: none)")
    p.add_argument("--phone-repeat", type=int, default=3, help="calls per phone photo and method; the median is kept (default 3)")
    p.add_argument("--synthetic-curved", type=int, default=0, metavar="N",
                   help="only this: N generated curved labels (no shared photos needed), read with and without the dewarp")
    a = p.parse_args()
    if a.synthetic_curved > 0:
        curved = bench_curved(a.synthetic_curved)
        for m, r in curved["methods"].items():
            print(f"{m:30s} read {r['read']}/{curved['photos']} wrong {r['wrong']} by half-angle {r['by_half_angle']} "
                  f"CPU ms median {r['cpu_ms_median']} p90 {r['cpu_ms_p90']}")
        print(json.dumps({"bench": "qr", "synthetic_curved": curved}), flush=True)
        return 0
    phones = a.phones if a.phones is not None else (6 if a.quick else 12)
    folders = ["qrcode-1"] if a.quick else ["qrcode-1", "qrcode-2"]
    samples = load_samples(a.samples, folders)
    todo = {"open only (Pillow)": open_only, "open only before (colour)": open_full, **methods()}
    print(f"{len(samples)} images from {', '.join(folders)}; decoders available: {', '.join(qrphoto.decoders_available()) or 'none'}", flush=True)

    for fn in todo.values():  # warm up: imports, first-call costs
        run_one(fn, samples[0][1])
    times: dict[str, dict[str, list[float]]] = {m: {s[0]: [] for s in samples} for m in todo}
    outcome: dict[str, dict[str, tuple[str | None, str]]] = {m: {} for m in todo}
    for _ in range(max(1, a.repeat)):
        for name, data, _expected in samples:  # interleaved, so that machine noise hits every method alike
            for m, fn in todo.items():
                text, reason, seconds = run_one(fn, data)
                times[m][name].append(seconds)
                outcome[m].setdefault(name, (text, reason))

    figures: dict[str, Any] = {}
    for m in todo:
        per_image_ms = [statistics.median(v) * 1000 for v in times[m].values()]
        row: dict[str, Any] = {
            "ms_median": round(statistics.median(per_image_ms), 2),
            "ms_p90": round(percentile(per_image_ms, 90), 2),
            "ms_mean": round(statistics.fmean(per_image_ms), 2),
            "ms_max": round(max(per_image_ms), 2),
        }
        if not m.startswith("open only"):
            decoded, mismatches, failures = [], [], []
            for name, _data, expected in samples:
                text, reason = outcome[m][name]
                if text is not None and matches(text, expected):
                    decoded.append(name)
                elif text is not None:
                    at = next((i for i, (g, e) in enumerate(zip(text, expected)) if g != e), min(len(text), len(expected)))
                    window = slice(max(0, at - 10), at + 30)
                    mismatches.append({"image": name, "at": at, "got": text[window], "expected": expected[window]})
                else:
                    failures.append({"image": name, "reason": reason})
            row = {"decoded": len(decoded), "mismatched": len(mismatches), "failed": len(failures), "images": len(samples),
                   "rate": round(len(decoded) / len(samples), 4),
                   "by_folder": {f: sum(1 for n in decoded if n.startswith(f + "/")) for f in folders},
                   **row, "mismatches": mismatches, "failures": [f["image"] for f in failures]}
        figures[m] = row

    print()
    print(f"{'method':34s} {'decoded':>9s} {'rate':>6s} {'mismatch':>8s} {'failed':>6s} {'median ms':>9s} {'p90 ms':>7s} {'mean ms':>7s}")
    for m, r in figures.items():
        if "decoded" in r:
            print(f"{m:34s} {r['decoded']:>4d}/{r['images']:<4d} {100 * r['rate']:5.1f}% {r['mismatched']:>8d} {r['failed']:>6d} {r['ms_median']:9.2f} {r['ms_p90']:7.2f} {r['ms_mean']:7.2f}")
        else:
            print(f"{m:34s} {'':>9s} {'':>6s} {'':>8s} {'':>6s} {r['ms_median']:9.2f} {r['ms_p90']:7.2f} {r['ms_mean']:7.2f}")
    print()
    for m, r in figures.items():
        for mm in r.get("mismatches", []):
            print(f"mismatch  {m}: {mm['image']} at character {mm['at']}: got {mm['got']!r}, expected {mm['expected']!r}")
        if r.get("failures"):
            print(f"not found {m}: {', '.join(r['failures'])}")
    print(flush=True)
    result = {
        "bench": "qr",
        "quick": a.quick,
        "images": len(samples),
        "folders": folders,
        "repeat": a.repeat,
        "versions": {d: version(d) for d in ("pillow", "pyzbar", "zxing-cpp")},
        "methods": figures,
    }
    if phones > 0:
        print(f"generating {phones} phone photos...", flush=True)
        result["phones"] = bench_phones(phones, a.phone_repeat)
        print()
        print_phones(result["phones"])
        print(flush=True)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
