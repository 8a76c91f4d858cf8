"""Reading the text of a QR code from a photo: a phone's upload on the server, a QR terminal's camera frame.

``decode_photo`` opens the image with Pillow (refusing what is not an image or is too large to decode
safely), applies the EXIF orientation, converts it to grayscale and then tries a short sequence of cheap
pre-processings (original, halved, lightly blurred, binarized, inverted, upscaled), each with every
available decoder (zxing-cpp first, then pyzbar), until one of them reads a QR code. Decoders only look
for QR codes: that is faster and never returns some other barcode's text.

JPEG bytes are decoded straight to grayscale, and phone photos (12 MP, 3-5 MB) at a reduced scale first:
libjpeg's DCT scaling gives an image of at least 2000 px on the long side, on which the whole sequence runs at
about a fifth of the full picture's cost. Only when nothing (or only a code that is not an enterprise code) is read
there is the photo decoded again at full resolution, for zxing-cpp's last tries on the finer detail. The whole
search is capped in CPU time per photo (``TIME_LIMIT``): past it, PhotoError("time_limit"), never a guess.

A last try, only when every step read nothing: a paper label on a bottle or a pipe is often detected (zxing-cpp finds
its finder patterns) but not read, the straight sampling grid missing the modules the curve moved. Each such symbol's
quadrilateral is rectified and unwrapped from a few cylinders (axis along the code's rows or columns, a few curvatures)
with one Pillow MESH transform, and read again; a bounded number of tries (``_DEWARP_TRIES``) within a small CPU budget
(``_DEWARP_TIME``). A text read only there is taken only if it has an enterprise code's exact shape (``_enterprise``).

Pillow and the decoders are imported when first needed, so importing this module needs none of them.
"""

from __future__ import annotations

import functools
import io
import math
import threading
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["DECODERS", "FORMATS", "MAX_BYTES", "MAX_PIXELS", "TIME_LIMIT", "PhotoError", "decode_photo", "decode_with", "decoders_available"]

#: Refuse encoded images larger than this (bytes) before even opening them.
MAX_BYTES = 20_000_000
#: Refuse images with more pixels than this (decompression bombs: a small file can declare a huge image).
MAX_PIXELS = 40_000_000
#: The encoded formats accepted (Pillow names): what phones, browsers and QR terminals send. Others are never
#: tried on uploaded bytes: EPS runs Ghostscript, and TIFF's many codecs are a large attack surface no camera
#: upload needs (a crafted 10 KB TIFF made Pillow raise TypeError while loading). HEIF is not read by this
#: Pillow (no plugin); the pages convert photos to JPEG before upload.
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")  # JPEG includes MPO (multi-picture JPEG)
#: Decoder names, in the order ``decode_photo`` tries them.
DECODERS = ("zxing-cpp", "pyzbar")
#: CPU seconds (of the calling thread: opening, pre-processing and decoding) one photo may cost. The limit is
#: checked before each decoder call, so a search can end up to one call past it (about 0.1 s on a 12 MP JPEG,
#: whose full picture only zxing-cpp reads; up to 0.5 s on a large PNG). Past it: PhotoError("time_limit").
#: On a 3-5 MB 12 MP photo (2-core test machine) a code read at reduced scale costs 40-100 ms, most of it
#: libjpeg's entropy decoding; one read only in the full picture, or a photo without a code, about 0.5 s.
#: The limit stops longer searches (progressive JPEGs, larger photos, slower machines), not those.
TIME_LIMIT = 1.0

_WORK_PIXELS = 16_000_000  # larger images are first reduced below this: bounds the time spent on one photo
#: JPEG bytes are first decoded at 1/2, 1/4 or 1/8 scale (libjpeg scales in the DCT), the smallest that keeps
#: at least this many pixels on the long side: a 4000x3000 photo is read at 2000x1500, where a code a tenth of
#: the frame's height still has about 3 pixels per module.
_DRAFT_LONG_SIDE = 2000
_HALVE_MIN_SIDE = 160  # halve only if the result keeps at least 80 px on its short side
_UPSCALE_BELOW = 400  # upscale images whose long side is shorter than this...
_UPSCALE_MAX_FACTOR = 8  # ...by an integer factor up to this

#: The dewarp's last try (see the module's docstring): the largest failed symbols tried, the unwrapping models tried
#: on each, in order ((axis of the cylinder in the code's frame, half the angle the code covers on it in degrees, how
#: much taller its middle looks than its edges: the camera's perspective on the curve)), the CPU seconds it may add to
#: a photo's search, and the output's pixels per module (about) and mesh cell size. Chosen on generated labels
#: (tests/support/curved_qr.py: 40-70 degrees, both axes): these models read all that any of 16 did.
_DEWARP_SYMBOLS = 2
_DEWARP_MODELS = (("v", 55, 0.1), ("h", 55, 0.1), ("v", 40, 0.0), ("h", 40, 0.0), ("v", 70, 0.1), ("h", 70, 0.1), ("v", 55, 0.0), ("h", 55, 0.0))
_DEWARP_TRIES = _DEWARP_SYMBOLS * len(_DEWARP_MODELS)
_DEWARP_TIME = 0.03
_DEWARP_MIN_AREA = 900  # pixels: smaller "symbols" are a finder pattern or noise
_DEWARP_MARGIN = 0.12  # of the code's side, on each side: its quiet zone
_DEWARP_MAX_SIDE = 360
_DEWARP_CELL = 12

_WARNINGS_LOCK = threading.Lock()

Decoder = Callable[..., "list[str]"]
_Quad = tuple[tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float]]
#: The text every enterprise code starts with (protocol/enterprise_code.py PREFIX): among several codes in one photo,
#: the one to read.
_OURS = "FE1:"


class PhotoError(ValueError):
    """A photo from which no QR code text can be read; ``reason`` is a stable machine code:
    ``not_an_image``, ``too_large``, ``no_code`` or ``time_limit`` (the search was stopped at ``TIME_LIMIT``)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# ------------------------------------------------------------------------------------------- decoders


def _text(data: bytes) -> str:
    # zbar already converts the code's text to UTF-8; Latin-1 keeps any other bytes rather than failing.
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


@functools.cache
def _load(name: str) -> Decoder | None:
    """The decoding function for ``name``, or None if its package (or native library) is missing.
    Cached, so that a missing package is looked for once per process."""
    if name == "zxing-cpp":
        try:
            import zxingcpp
        except ImportError:
            return None

        def zxing(image: Image, failed: list[_Quad] | None = None) -> list[str]:
            # Plain text mode: the code's exact text (HRI would rewrite GS1 and control characters). ``failed``: also
            # collect the corners (top left, top right, bottom right, bottom left) of symbols found but not decoded.
            found = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode, text_mode=zxingcpp.TextMode.Plain, return_errors=failed is not None)
            if failed is not None:
                for b in found:
                    if not b.valid:
                        p = b.position
                        failed.append(tuple((c.x, c.y) for c in (p.top_left, p.top_right, p.bottom_right, p.bottom_left)))  # type: ignore[arg-type]
            return [b.text for b in found if b.valid]

        return zxing
    if name == "pyzbar":
        try:
            from pyzbar import pyzbar
        except ImportError:  # the package, or libzbar itself, is missing
            return None

        def zbar(image: Image) -> list[str]:
            found = pyzbar.decode(image, symbols=[pyzbar.ZBarSymbol.QRCODE])
            # zbar guesses the character set of non-ASCII bytes (Shift-JIS read as GB2312, "\\" as "¥"): 10 of the 64
            # sample images came back with a wrong text that way. zxing-cpp reads those right; from zbar only ASCII
            # texts (every enterprise code) are taken, so a wrong text becomes "not found" instead.
            return [t for t in (_text(f.data) for f in found) if t.isascii()]

        return zbar
    raise ValueError(f"unknown QR decoder {name!r} (known: {', '.join(DECODERS)})")


def decoders_available() -> list[str]:
    """The names of the decoders that can be used here, in the order ``decode_photo`` tries them."""
    return [name for name in DECODERS if _load(name) is not None]


# ---------------------------------------------------------------------------------------- opening


def _open(data: bytes | Image, max_pixels: int, max_bytes: int, *, draft: bool = True) -> Image:
    """The image at full resolution (see ``_open_at``)."""
    return _open_at(data, max_pixels, max_bytes, long_side=None, draft=draft)[0]


def _open_at(data: bytes | Image, max_pixels: int, max_bytes: int, *, long_side: int | None, draft: bool = True) -> tuple[Image, int]:
    """A grayscale, upright, fully loaded copy of the image, and the scale it was decoded at (1, or 2, 4, 8 for
    1/2, 1/4, 1/8); PhotoError if it cannot or must not be read.

    JPEG bytes are decoded straight to grayscale (libjpeg outputs the luma it stores, the same values as
    ``convert("L")`` without the colour conversion) and, with ``long_side``, at the smallest DCT scale (1/2, 1/4,
    1/8) that keeps at least ``long_side`` pixels on the long side. ``draft=False`` decodes as before both
    (full colour, then grayscale): the reference the benchmark compares with. A Pillow image given by the caller
    is never changed. The size limits apply to the declared size, before any decoding; the EXIF orientation is
    applied after, to the decoded (possibly reduced) pixels.

    Both steps end with a broad ``except Exception``: Pillow's decoders are third-party code fed bytes from
    anyone (the enterprise view needs no sign-in), and on crafted input they raise more than their documented
    OSError/ValueError (TypeError, IndexError, struct.error, ... found by fuzzing). Whatever they raise, the
    bytes are not an image that can be read: the documented PhotoError("not_an_image"), never a 500."""
    from PIL import Image as PILImage
    from PIL import ImageOps, UnidentifiedImageError

    owned = isinstance(data, (bytes, bytearray, memoryview))
    if owned:
        if len(data) > max_bytes:
            raise PhotoError("too_large", f"the image is {len(data):,} bytes; the limit is {max_bytes:,}")
        try:
            # Pillow's own bomb check (in open) warns, then raises, above its limit: make both an error
            # here. catch_warnings swaps process-wide state, hence the lock; opening only reads the header.
            with _WARNINGS_LOCK, warnings.catch_warnings():
                warnings.simplefilter("error", PILImage.DecompressionBombWarning)
                image = PILImage.open(io.BytesIO(data), formats=FORMATS)
        except (PILImage.DecompressionBombWarning, PILImage.DecompressionBombError) as e:
            raise PhotoError("too_large", f"the image is too large to decode safely: {e}") from None
        except UnidentifiedImageError:
            start = f"starts with {bytes(data[:8])!r}" if data else "empty"
            raise PhotoError("not_an_image", f"not an image in a format read here ({', '.join(FORMATS)}; {start})") from None
        except (OSError, SyntaxError, ValueError) as e:  # a known format with a broken header
            raise PhotoError("not_an_image", f"a broken {_fmt(data)} image: {e}") from None
        except Exception as e:  # noqa: BLE001 - hostile bytes in a third-party decoder (see the docstring)
            raise PhotoError("not_an_image", f"a broken {_fmt(data)} image ({type(e).__name__}: {e})") from None
    else:
        image = data
    width, height = image.size
    pixels = width * height
    if pixels > max_pixels:
        raise PhotoError("too_large", f"the image is {width}x{height} ({pixels:,} pixels); the limit is {max_pixels:,}")
    scale = 1
    try:
        if owned and draft and image.format in ("JPEG", "MPO"):
            # Before load(), in the stored orientation (exif_transpose below turns the decoded pixels); asked
            # for (width // scale, height // scale), Pillow decodes at exactly that scale.
            if long_side:
                scale = next((s for s in (8, 4, 2) if max(width, height) // s >= long_side), 1)
            image.draft("L", (width // scale, height // scale) if scale > 1 else None)
            if image.size == (width, height):  # draft() declined (e.g. several tiles): decoded as it is
                scale = 1
        image.load()
        try:
            image = ImageOps.exif_transpose(image)
        except Exception:  # noqa: BLE001 - broken EXIF data: keep the pixels as they are
            pass
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            # Transparent pixels are often black underneath: put the image on white paper.
            rgba = image.convert("RGBA")
            image = PILImage.alpha_composite(PILImage.new("RGBA", rgba.size, "white"), rgba)
        image = image.convert("L")
        factor = math.ceil(math.sqrt(image.width * image.height / _WORK_PIXELS))
        return (image.reduce(factor) if factor > 1 else image), scale
    except (PILImage.DecompressionBombWarning, PILImage.DecompressionBombError) as e:
        raise PhotoError("too_large", f"the image is too large to decode safely: {e}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:  # truncated or corrupt pixel data
        raise PhotoError("not_an_image", f"a broken {image.format or 'image'} ({width}x{height}): {e}") from None
    except Exception as e:  # noqa: BLE001 - hostile bytes in a third-party decoder (see the docstring)
        raise PhotoError("not_an_image", f"a broken {image.format or 'image'} ({width}x{height}; {type(e).__name__}: {e})") from None


def _fmt(data: bytes | bytearray | memoryview) -> str:
    return "PNG" if bytes(data[:4]) == b"\x89PNG" else "JPEG" if bytes(data[:2]) == b"\xff\xd8" else "image"


# ---------------------------------------------------------------------------------- pre-processing


def _steps(image: Image) -> list[tuple[str, Callable[[], Image | None]]]:
    """The pre-processings to try, cheapest and most useful first; each returns None if it does not apply."""
    from PIL import Image as PILImage
    from PIL import ImageFilter, ImageOps

    w, h = image.size

    def halved() -> Image | None:
        return image.reduce(2) if min(w, h) >= _HALVE_MIN_SIDE else None

    def binarized() -> Image:
        return ImageOps.autocontrast(image, cutoff=1).point(lambda v: 255 if v >= 128 else 0)

    def upscaled() -> Image | None:
        if max(w, h) >= _UPSCALE_BELOW:
            return None
        factor = min(_UPSCALE_MAX_FACTOR, math.ceil(_UPSCALE_BELOW / max(w, h, 1)))
        return image.resize((w * factor, h * factor), PILImage.Resampling.NEAREST)

    return [
        ("original", lambda: image),
        ("halved", halved),  # averages sensor noise away; zbar reads noisy photos far better at half size
        ("blurred", lambda: image.filter(ImageFilter.GaussianBlur(1.5))),
        ("binarized", binarized),  # low contrast, uneven exposure
        ("inverted", lambda: ImageOps.invert(image)),  # light modules on a dark background
        ("upscaled", upscaled),  # codes only a few pixels per module wide
    ]


# ------------------------------------------------------------------------------------- dewarp (last try)


def _homography(quad: _Quad) -> Callable[[float, float], tuple[float, float]] | None:
    """The projective map of the unit square's corners (0,0) (1,0) (1,1) (0,1) onto ``quad`` (Heckbert's closed
    form), or None for a degenerate quadrilateral."""
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = quad
    dx1, dx2, dx3 = x1 - x2, x3 - x2, x0 - x1 + x2 - x3
    dy1, dy2, dy3 = y1 - y2, y3 - y2, y0 - y1 + y2 - y3
    den = dx1 * dy2 - dx2 * dy1
    if abs(den) < 1e-9:
        return None
    g, h = (dx3 * dy2 - dx2 * dy3) / den, (dx1 * dy3 - dx3 * dy1) / den
    a, b, d, e = x1 - x0 + g * x1, x3 - x0 + h * x3, y1 - y0 + g * y1, y3 - y0 + h * y3

    def at(u: float, v: float) -> tuple[float, float]:
        w = g * u + h * v + 1
        return (a * u + b * v + x0) / w, (d * u + e * v + y0) / w

    return at


def _unwrap(u: float, v: float, half_angle: float, bulge: float) -> tuple[float, float]:
    """Where a point of the flat code (u across the cylinder, v along it; 0-1 over the code) appears in the code's
    rectified picture when the code is wrapped around a cylinder over 2 * ``half_angle`` radians: squeezed towards
    its edges (sin), and its middle ``bulge`` times taller than its edges (they are further from the camera)."""
    t = max(-1.45, min(1.45, half_angle * (2 * u - 1)))
    x = (math.sin(t) / math.sin(half_angle) + 1) / 2
    return x, 0.5 + (v - 0.5) * (1 + bulge * (math.cos(t) - math.cos(half_angle)) / (1 - math.cos(half_angle)))


def _dewarped(image: Image, quad: _Quad, axis: str, degrees: float, bulge: float) -> Image | None:
    """The code inside ``quad`` (its corners in the code's own order), flattened from a cylinder and straightened,
    with a margin for its quiet zone: one MESH transform of ``image``. None if the quadrilateral is degenerate."""
    from PIL import Image as PILImage

    at = _homography(quad)
    if at is None:
        return None
    edge = max(math.dist(quad[i], quad[(i + 1) % 4]) for i in range(4))
    cells = max(8, min(_DEWARP_MAX_SIDE, round(edge * 1.1)) // _DEWARP_CELL)
    alpha, m = math.radians(degrees), _DEWARP_MARGIN
    points = []
    for i in range(cells + 1):
        row = []
        for j in range(cells + 1):
            u, v = -m + (1 + 2 * m) * i / cells, -m + (1 + 2 * m) * j / cells
            if axis == "v":  # the cylinder's axis along the code's columns: its rows are wrapped
                x, y = _unwrap(u, v, alpha, bulge)
            else:
                y, x = _unwrap(v, u, alpha, bulge)
            row.append(at(x, y))
        points.append(row)
    c = _DEWARP_CELL
    mesh = [((i * c, j * c, (i + 1) * c, (j + 1) * c), (*points[i][j], *points[i][j + 1], *points[i + 1][j + 1], *points[i + 1][j]))
            for i in range(cells) for j in range(cells)]
    return image.transform((cells * c, cells * c), PILImage.Transform.MESH, mesh, PILImage.Resampling.BILINEAR, fillcolor=255)


def _dewarped_or_none(image: Image, quad: _Quad, axis: str, degrees: float, bulge: float) -> Image | None:
    """``_dewarped``, or None where the quadrilateral zxing-cpp reported makes no picture: its projective map passes
    through infinity inside the margin (a crossed or wildly skewed outline in a hostile photo), or gives coordinates
    Pillow refuses."""
    try:
        return _dewarped(image, quad, axis, degrees, bulge)
    except (ZeroDivisionError, OverflowError, ValueError):
        return None


def _read_pure(image: Image) -> list[str]:
    """zxing-cpp on a dewarped code: upright, at one scale, dark on light (no rotation, downscaling or inversion)."""
    import zxingcpp

    found = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode, text_mode=zxingcpp.TextMode.Plain,
                                   try_rotate=False, try_downscale=False, try_invert=False)
    return [b.text for b in found if b.valid]


def _enterprise(text: str) -> bool:
    """Whether ``text`` has an enterprise code's exact shape (a valid credit code): the only text a dewarped read may
    give. (Its signature is checked by whoever uses it.)"""
    from protocol.enterprise_code import has_code_shape

    return has_code_shape(text)


def _area(quad: _Quad) -> float:
    return abs(sum(quad[i][0] * quad[(i + 1) % 4][1] - quad[(i + 1) % 4][0] * quad[i][1] for i in range(4))) / 2


#: Steps a decoder does itself, better, and that would only cost time (zxing-cpp tries inverted codes).
_SKIP = {"zxing-cpp": frozenset({"inverted"}), "pyzbar": frozenset()}
#: The steps tried again at full resolution, by each decoder, when a photo decoded at a reduced scale gave nothing:
#: those where the full picture adds detail (halving or blurring it gives back about what was already tried).
#: zbar reads noisy photos better at reduced size (it had its turn there) and costs 4-5 times zxing-cpp's time on
#: 12 MP (0.45 s a call): on generated 12 MP photos it read nothing more at full resolution.
_FULL_STEPS = {"zxing-cpp": frozenset({"original", "binarized"}), "pyzbar": frozenset()}


class _Search:
    """One photo's search for its code, over one or two images of it (reduced scale, then full resolution),
    under one time limit.

    The text of the one QR code seen, or of the one enterprise code among several. Several different codes and
    none (or more than one) of them ours: no text, never a guess; and once a step saw several, a later step that
    happens to see only one of them is not believed either (only an enterprise code is). A single code that is not
    ours, seen at a reduced scale, is held back while the full picture is searched: a smaller enterprise code
    beside it (a shop's payment code next to the door sign) may only be readable there."""

    def __init__(self, decoders: list[str], time_limit: float) -> None:
        self.decoders = decoders
        self.loaded = [(name, _load(name)) for name in decoders]
        self.time_limit = time_limit
        self.deadline = time.thread_time() + time_limit  # opening the photo counts
        self.calls = 0
        self.stopped = False  # by the time limit, with steps left to try
        self.tried: list[str] = []  # "original, halved at 2000x1500 with zxing-cpp, pyzbar"
        self.seen: set[str] = set()  # every text read so far
        self.lone: str | None = None  # a single code not ours, held back by a provisional pass
        self.failed: tuple[Image, list[_Quad]] | None = None  # zxing-cpp's symbols found but not decoded, in the last image
        self.dewarp_tries = 0

    def out_of_time(self) -> bool:
        """Whether the time is up (then the search stops). The first decoder call is always made: the limit
        bounds a search, it never refuses a photo outright."""
        self.stopped = self.stopped or (self.calls > 0 and time.thread_time() > self.deadline)
        return self.stopped

    def run(self, image: Image, steps: list[tuple[str, Callable[[], Image | None]]], *, only: dict[str, frozenset[str]] | None = None, provisional: bool = False) -> str | None:
        """Each step with each decoder (``only``: just these steps for each decoder) until a text is read: the
        text, or None. ``provisional``: a single code that is not ours ends this pass without being returned."""
        loaded = [(name, decode) for name, decode in self.loaded if decode is not None and (only is None or only[name])]
        done: dict[str, None] = {}  # the steps and decoders tried, in order
        used: dict[str, None] = {}
        try:
            for step, make in steps:
                users = [(name, decode) for name, decode in loaded if step not in _SKIP[name] and (only is None or step in only[name])]
                if not users:
                    continue
                if self.out_of_time():
                    return None
                variant = make()
                if variant is None:
                    continue
                for name, decode in users:
                    if self.out_of_time():
                        return None
                    self.calls += 1
                    done[step] = used[name] = None
                    if name == "zxing-cpp" and step == "original":
                        failed: list[_Quad] = []
                        texts = list(dict.fromkeys(decode(variant, failed)))
                        self.failed = (variant, failed)
                    else:
                        texts = list(dict.fromkeys(decode(variant)))
                    self.seen.update(texts)
                    ours = [t for t in texts if t.startswith(_OURS)]
                    if len(ours) == 1:
                        return ours[0]
                    if len(texts) == 1 and len(self.seen) == 1:
                        if not provisional:
                            return texts[0]
                        self.lone = texts[0]
                        return None
            return None
        finally:
            if done:
                self.tried.append(f"{', '.join(done)} at {image.width}x{image.height} with {', '.join(used)}")

    def dewarp(self) -> str | None:
        """The last try, when nothing at all was read: zxing-cpp's failed symbols (the largest first), each dewarped
        with each model until one reads; an enterprise code's text, or None. The same text from another symbol
        confirms it, a different one makes it None (never a guess between two codes)."""
        if self.seen or self.stopped or self.failed is None:
            return None
        image, failed = self.failed
        quads = sorted((q for q in failed if _area(q) >= _DEWARP_MIN_AREA), key=_area, reverse=True)[:_DEWARP_SYMBOLS]
        if not quads:
            return None
        deadline = min(self.deadline, time.thread_time() + _DEWARP_TIME)
        found: str | None = None
        try:
            for quad in quads:
                for axis, degrees, bulge in _DEWARP_MODELS:
                    if self.dewarp_tries >= _DEWARP_TRIES or time.thread_time() > deadline:
                        return found
                    flat = _dewarped_or_none(image, quad, axis, degrees, bulge)
                    if flat is None:
                        break
                    self.dewarp_tries += 1
                    texts = set(_read_pure(flat))
                    self.seen.update(texts)
                    ours = {t for t in texts if _enterprise(t)}
                    if len(ours) > 1 or (found is not None and ours and ours != {found}):
                        found = None
                        return None
                    if ours:
                        found = ours.pop()
                        break  # the next symbol, if any: the same text or none
            return found
        finally:
            self.tried.append(f"dewarp of {len(quads)} symbol{'s' if len(quads) > 1 else ''} ({self.dewarp_tries} tries)")

    def result(self) -> str:
        """After the last pass found nothing: the code held back, if nothing contradicts it, else PhotoError."""
        if self.lone is not None and self.seen == {self.lone}:
            return self.lone
        tried = f"tried {'; '.join(self.tried) or 'nothing'}"
        if self.stopped:
            seen = f"; {len(self.seen)} different QR codes seen, none a single enterprise code" if len(self.seen) > 1 else ""
            raise PhotoError("time_limit", f"no QR code read within the {self.time_limit:g} s limit for one photo ({tried}{seen}): photograph the code closer, so that it fills more of the frame")
        if len(self.seen) > 1:
            raise PhotoError("no_code", f"{len(self.seen)} different QR codes and no single enterprise code among them ({tried}): photograph one code")
        raise PhotoError("no_code", f"no QR code found in the image ({tried})")


def _read(data: bytes | Image, decoders: list[str], preprocess: bool, max_pixels: int, max_bytes: int, time_limit: float, *, reduce: bool = True,
          dewarp: bool = True) -> str:
    """The search: JPEG bytes first at a reduced scale, then (on a miss, or when only a code not ours was read)
    at full resolution.

    ``reduce=False`` is the search as it was before reduced-scale decoding (full resolution, full colour then
    grayscale), for the benchmark's comparison; ``dewarp=False`` without the last try (see ``_Search.dewarp``)."""
    search = _Search(decoders, time_limit)

    def steps(image: Image) -> list[tuple[str, Callable[[], Image | None]]]:
        return _steps(image) if preprocess else [("original", lambda: image)]

    image, scale = _open_at(data, max_pixels, max_bytes, long_side=_DRAFT_LONG_SIDE if reduce else None, draft=reduce)
    # Would the full picture's working image (see _WORK_PIXELS) have more detail than this one?
    full_factor = math.ceil(math.sqrt(image.width * scale * image.height * scale / _WORK_PIXELS))
    more = full_factor < scale and any(_FULL_STEPS[name] for name in decoders)
    found = search.run(image, steps(image), provisional=more)
    if found is None and more and not search.out_of_time():
        del image  # the reduced image's memory, before decoding the full one
        full, _ = _open_at(data, max_pixels, max_bytes, long_side=None)
        found = search.run(full, steps(full), only=_FULL_STEPS)
    if found is None and dewarp and preprocess:
        found = search.dewarp()
    return found if found is not None else search.result()


# ---------------------------------------------------------------------------------------------- API


def decode_photo(data: bytes | Image, *, max_pixels: int = MAX_PIXELS, max_bytes: int = MAX_BYTES, time_limit: float = TIME_LIMIT) -> str:
    """The text of the QR code in a photo (of the one enterprise code among several), given as encoded bytes
    (JPEG, PNG, WebP, ...) or a Pillow image. PhotoError(reason) if it is not an image, too large, holds no
    readable QR code, or none was read within ``time_limit`` CPU seconds (the first decoder call is always made:
    0 means one try); RuntimeError if neither zxing-cpp nor pyzbar is installed."""
    decoders = decoders_available()
    if not decoders:
        raise RuntimeError("no QR decoder installed: install zxing-cpp or pyzbar (with libzbar0)")
    return _read(data, decoders, True, max_pixels, max_bytes, time_limit)


def decode_with(
    decoder_name: str, image: bytes | Image, preprocess: bool = True, *, max_pixels: int = MAX_PIXELS, max_bytes: int = MAX_BYTES, time_limit: float = TIME_LIMIT
) -> str:
    """Like ``decode_photo`` with one decoder only, with or without the pre-processings (for benchmarks and
    diagnostics). ValueError for an unknown decoder name, RuntimeError if it is not installed."""
    if _load(decoder_name) is None:
        raise RuntimeError(f"QR decoder {decoder_name!r} is not installed")
    return _read(image, [decoder_name], preprocess, max_pixels, max_bytes, time_limit)
