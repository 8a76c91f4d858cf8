"""Photos like a phone camera's: 12 megapixels of sensor noise around an enterprise's door code, as a
JPEG of several megabytes, optionally stored sideways with an EXIF orientation tag (as phones do).

Sensor noise is what makes real photos large: a clean synthetic image compresses to a few hundred kB and
would never reach the body limits a real upload meets.
"""

from __future__ import annotations

import io

import segno
from PIL import Image, ImageChops, ImageFilter

#: A 12 MP phone camera.
CAMERA_SIZE = (4000, 3000)
#: EXIF tag of the orientation; 6 = "rotate 90° clockwise to display" (a phone held upright).
EXIF_ORIENTATION = 0x0112
ROTATE_CW_TO_DISPLAY = 6
_NOISE_SIGMAS = (24, 36, 54, 80)  # tried in turn until the JPEG is large enough
_JPEG_QUALITY = 88


def _scene(text: str, size: tuple[int, int]) -> Image.Image:
    """A grey wall with a light gradient and the code's sticker (white, quiet zone) in the middle."""
    width, height = size
    wall = Image.linear_gradient("L").resize((width, height)).point(lambda v: 70 + v // 2)
    sticker = segno.make(text, error="m")
    buf = io.BytesIO()
    sticker.save(buf, kind="png", scale=1, border=4)
    code = Image.open(buf).convert("L")
    side = min(width, height) // 3
    code = code.resize((side, side), Image.Resampling.NEAREST).filter(ImageFilter.GaussianBlur(1.5))  # a little out of focus
    wall.paste(code, ((width - side) // 2, (height - side) // 2))
    return Image.merge("RGB", (wall, wall.point(lambda v: v * 0.97), wall.point(lambda v: v * 0.92)))


def camera_photo(text: str, *, size: tuple[int, int] = CAMERA_SIZE, min_bytes: int = 5_000_000, orientation: int | None = None) -> bytes:
    """A noisy JPEG of ``size`` (as displayed) showing the QR code of ``text``, at least ``min_bytes`` long.
    With ``orientation=6`` the pixels are stored turned a quarter left and tagged to be turned back."""
    scene = _scene(text, size)
    for sigma in _NOISE_SIGMAS:
        noise = Image.merge("RGB", [Image.effect_noise(size, sigma) for _ in range(3)])
        photo = ImageChops.add(scene, noise, scale=1.0, offset=-128)
        exif = Image.Exif()
        if orientation is not None:
            photo = photo.rotate(90, expand=True)  # stored sideways (counter-clockwise): the tag turns it back
            exif[EXIF_ORIENTATION] = orientation
        out = io.BytesIO()
        photo.save(out, "JPEG", quality=_JPEG_QUALITY, exif=exif)
        if out.tell() >= min_bytes:
            return out.getvalue()
    raise AssertionError(f"could not make a photo of {min_bytes:,} bytes; the largest was {out.tell():,}")
