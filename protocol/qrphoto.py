"""Reading the text of a QR code from a photo: a phone's upload on the server, a QR terminal's camera frame.

``decode_photo`` opens the image with Pillow (refusing what is not an image or is too large to decode
safely), applies the EXIF orientation, converts it to grayscale and then tries a short sequence of cheap
pre-processings (original, halved, lightly blurred, binarized, inverted, upscaled), each with every
available decoder (zxing-cpp first, then pyzbar), until one of them reads a QR code. Decoders only look
for QR codes: that is faster and never returns some other barcode's text.

Pillow and the decoders are imported when first needed, so importing this module needs none of them.
"""

from __future__ import annotations

import functools
import io
import math
import threading
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["DECODERS", "FORMATS", "MAX_BYTES", "MAX_PIXELS", "PhotoError", "decode_photo", "decode_with", "decoders_available"]

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

_WORK_PIXELS = 16_000_000  # larger images are first reduced below this: bounds the time spent on one photo
_HALVE_MIN_SIDE = 160  # halve only if the result keeps at least 80 px on its short side
_UPSCALE_BELOW = 400  # upscale images whose long side is shorter than this...
_UPSCALE_MAX_FACTOR = 8  # ...by an integer factor up to this

_WARNINGS_LOCK = threading.Lock()

Decoder = Callable[["Image"], "list[str]"]
#: The text every enterprise code starts with (protocol/enterprise_code.py PREFIX): among several codes in one photo,
#: the one to read.
_OURS = "FE1:"


class PhotoError(ValueError):
    """A photo from which no QR code text can be read; ``reason`` is a stable machine code:
    ``not_an_image``, ``too_large`` or ``no_code``."""

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

        def zxing(image: Image) -> list[str]:
            # Plain text mode: the code's exact text (HRI would rewrite GS1 and control characters).
            found = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode, text_mode=zxingcpp.TextMode.Plain)
            return [b.text for b in found]

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


def _open(data: bytes | Image, max_pixels: int, max_bytes: int) -> Image:
    """A grayscale, upright, fully loaded copy of the image; PhotoError if it cannot or must not be read.

    Both steps end with a broad ``except Exception``: Pillow's decoders are third-party code fed bytes from
    anyone (the enterprise view needs no sign-in), and on crafted input they raise more than their documented
    OSError/ValueError (TypeError, IndexError, struct.error, ... found by fuzzing). Whatever they raise, the
    bytes are not an image that can be read: the documented PhotoError("not_an_image"), never a 500."""
    from PIL import Image as PILImage
    from PIL import ImageOps, UnidentifiedImageError

    if isinstance(data, (bytes, bytearray, memoryview)):
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
    pixels = image.width * image.height
    if pixels > max_pixels:
        raise PhotoError("too_large", f"the image is {image.width}x{image.height} ({pixels:,} pixels); the limit is {max_pixels:,}")
    try:
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
        return image.reduce(factor) if factor > 1 else image
    except (PILImage.DecompressionBombWarning, PILImage.DecompressionBombError) as e:
        raise PhotoError("too_large", f"the image is too large to decode safely: {e}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:  # truncated or corrupt pixel data
        raise PhotoError("not_an_image", f"a broken {image.format or 'image'} ({image.width}x{image.height}): {e}") from None
    except Exception as e:  # noqa: BLE001 - hostile bytes in a third-party decoder (see the docstring)
        raise PhotoError("not_an_image", f"a broken {image.format or 'image'} ({image.width}x{image.height}; {type(e).__name__}: {e})") from None


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


#: Steps a decoder does itself, better, and that would only cost time (zxing-cpp tries inverted codes).
_SKIP = {"zxing-cpp": frozenset({"inverted"}), "pyzbar": frozenset()}


def _decode(image: Image, decoders: list[str], preprocess: bool) -> str:
    """The text of the one QR code in the image, or of the one enterprise code among several.

    Several different codes and none (or more than one) of them ours: PhotoError, never a guess; and once a step saw
    several, a later step that happens to see only one of them is not believed either (only an enterprise code is)."""
    loaded = [(name, _load(name)) for name in decoders]
    tried: list[str] = []
    several: set[str] = set()
    for step, make in _steps(image) if preprocess else [("original", lambda: image)]:
        variant = make()
        if variant is None:
            continue
        tried.append(step)
        for name, decode in loaded:
            if decode is not None and step not in _SKIP[name]:
                texts = list(dict.fromkeys(decode(variant)))
                ours = [t for t in texts if t.startswith(_OURS)]
                if len(ours) == 1:
                    return ours[0]
                if len(texts) == 1 and not several:
                    return texts[0]
                several.update(texts)
    if len(several) > 1:
        raise PhotoError("no_code", f"{len(several)} different QR codes and no single enterprise code among them in the {image.width}x{image.height} image: photograph one code")
    raise PhotoError("no_code", f"no QR code found in the {image.width}x{image.height} image (tried {', '.join(tried)} with {', '.join(decoders)})")


# ---------------------------------------------------------------------------------------------- API


def decode_photo(data: bytes | Image, *, max_pixels: int = MAX_PIXELS, max_bytes: int = MAX_BYTES) -> str:
    """The text of the (first) QR code in a photo, given as encoded bytes (JPEG, PNG, WebP, ...) or a
    Pillow image. PhotoError(reason) if it is not an image, too large, or holds no readable QR code;
    RuntimeError if neither zxing-cpp nor pyzbar is installed."""
    decoders = decoders_available()
    if not decoders:
        raise RuntimeError("no QR decoder installed: install zxing-cpp or pyzbar (with libzbar0)")
    return _decode(_open(data, max_pixels, max_bytes), decoders, preprocess=True)


def decode_with(decoder_name: str, image: bytes | Image, preprocess: bool = True, *, max_pixels: int = MAX_PIXELS, max_bytes: int = MAX_BYTES) -> str:
    """Like ``decode_photo`` with one decoder only, with or without the pre-processings (for benchmarks and
    diagnostics). ValueError for an unknown decoder name, RuntimeError if it is not installed."""
    if _load(decoder_name) is None:
        raise RuntimeError(f"QR decoder {decoder_name!r} is not installed")
    return _decode(_open(image, max_pixels, max_bytes), [decoder_name], preprocess)
