"""QR photo decoding on real images: decode rate and time per photo, for each decoder alone and for
``protocol.qrphoto.decode_photo`` (the production chain), all in the same run.

    python bench/qr.py            # every image of ../shared/data/qr-samples (qrcode-1 and qrcode-2)
    python bench/qr.py --quick    # qrcode-1 only

Each image's ``.txt`` holds the exact text it encodes. An answer counts as decoded only if it is exactly
that text; a different text is a *mismatch*, reported apart from *failures* (no code found). Every method
starts from the image file's bytes, so times include Pillow opening and converting the image (the "open
only" row). Each time is the median of ``--repeat`` calls; the table gives the median and 90th percentile
over the images. The last line of the output is one JSON object holding every figure.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
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
    return out


def open_only(data: bytes) -> str:
    """Baseline: what every method pays before decoding (open, orientation, grayscale)."""
    qrphoto._open(data, qrphoto.MAX_PIXELS, qrphoto.MAX_BYTES)
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
    a = p.parse_args()
    folders = ["qrcode-1"] if a.quick else ["qrcode-1", "qrcode-2"]
    samples = load_samples(a.samples, folders)
    todo = {"open only (Pillow)": open_only, **methods()}
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
        if m != "open only (Pillow)":
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
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
