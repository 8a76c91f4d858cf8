"""Photos of a QR code on a paper label wrapped around a bottle or a pipe: made here with segno and Pillow (never
read from the shared samples), for protocol/qrphoto.py's dewarp step and bench/qr.py --synthetic-curved.

The label is wrapped around a cylinder (axis vertical or horizontal) and photographed by a pinhole camera in front of
it: columns are squeezed towards the label's edges (foreshortening), and the rows bend (the label's edges are further
from the camera than its middle). Then a slight tilt, uneven light (darker where the surface turns away, a gradient
across the frame), lens blur and sensor noise, on a cluttered background. Everything is seeded: the same arguments
give the same image.
"""

from __future__ import annotations

import io
import itertools
import math
import random
import statistics

import segno
from PIL import Image, ImageChops, ImageDraw, ImageFilter

#: An enterprise code's text (protocol/enterprise_code.py): FE1:<credit code>:<key id>:<date>:<103 base32 characters>.
_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
#: A code that is not an enterprise code, as long as one in the same (alphanumeric) mode: the same symbol size.
FOREIGN = "HTTPS://PAY.EXAMPLE.COM/QR/" + "".join(random.Random(7).choice(_B32) for _ in range(126))


def enterprise_text(seed: int) -> str:
    r = random.Random(seed)
    return "FE1:91350100M000100Y43:K1:20261124:" + "".join(r.choice(_B32) for _ in range(103))


def _code(text: str, module_px: int) -> Image.Image:
    buf = io.BytesIO()
    segno.make_qr(text, error="m").save(buf, kind="png", scale=module_px, border=0)
    return Image.open(buf).convert("L")


def label(text: str, module_px: int = 8) -> Image.Image:
    """The printed label: the code with its quiet zone on white paper, a little wider than the code (with a line of
    printed text beside it, as door labels have)."""
    code = _code(text, module_px)
    side = code.width
    quiet = 4 * module_px
    out = Image.new("L", (side + 2 * quiet + 6 * module_px, side + 2 * quiet + 4 * module_px), 245)
    out.paste(code, (quiet + 3 * module_px, quiet))
    draw = ImageDraw.Draw(out)
    for i in range(6):  # a line of "printed text" under the code
        x = quiet + 3 * module_px + i * side // 6
        draw.rectangle((x, side + quiet + module_px, x + side // 9, side + quiet + 3 * module_px), fill=90)
    return out


def _noise(size: tuple[int, int], sigma: float, r: random.Random) -> Image.Image:
    normal = statistics.NormalDist(128, sigma)
    lut = [max(0, min(255, round(normal.inv_cdf((u + 0.5) / 256)))) for u in range(256)]
    return Image.frombytes("L", size, r.randbytes(size[0] * size[1])).point(lut)


def wrap(flat: Image.Image, half_angle: float, *, distance: float = 4.0, offset: float = 0.0, cell: int = 6) -> Image.Image:
    """``flat`` wrapped around a cylinder whose axis is vertical, seen by a pinhole camera: the label's width covers
    2 * ``half_angle`` radians of the cylinder (0: flat), centred ``offset`` radians off the line of sight; the camera
    is ``distance`` cylinder radii from the axis. Pillow's MESH transform, cells of ``cell`` pixels; outside the label:
    transparent (mode LA)."""
    w, h = flat.size
    if half_angle <= 1e-6:
        return flat.convert("LA")
    radius = (w / 2) / half_angle  # pixels
    d = distance * radius
    f = d - radius  # the label's middle (on the line of sight) keeps its scale

    def project(theta: float) -> tuple[float, float]:
        # A point of the surface at angle theta: (x, depth) -> image x, and the row scale at that column.
        x, z = radius * math.sin(theta), d - radius * math.cos(theta)
        return f * x / z, f / z

    lo, hi = offset - half_angle, offset + half_angle
    x_lo, x_hi = project(lo)[0], project(hi)[0]
    scale_max = max(project(t)[1] for t in (lo, hi, min(max(0.0, lo), hi)))
    out_w, out_h = math.ceil(x_hi - x_lo), math.ceil(h * scale_max)

    def theta_at(x_out: float) -> float:  # bisection: image x is increasing in theta on the visible side
        a, b = lo, hi
        for _ in range(40):
            m = (a + b) / 2
            if project(m)[0] + (-x_lo) < x_out:
                a = m
            else:
                b = m
        return (a + b) / 2

    columns = []
    for X in range(0, out_w + cell, cell):
        X = min(X, out_w)
        t = theta_at(X)
        columns.append((X, (t - lo) * radius, project(t)[1]))  # source x (arc length from the left edge), row scale
    mesh = []
    for (xa, sa, ka), (xb, sb, kb) in itertools.pairwise(columns):
        if xb <= xa:
            continue
        for Y in range(0, out_h, cell):
            Yb = min(Y + cell, out_h)
            # Source row of an output row: around the label's middle row, divided by the column's scale.
            ya_top, ya_bot = h / 2 + (Y - out_h / 2) / ka, h / 2 + (Yb - out_h / 2) / ka
            yb_top, yb_bot = h / 2 + (Y - out_h / 2) / kb, h / 2 + (Yb - out_h / 2) / kb
            mesh.append(((xa, Y, xb, Yb), (sa, ya_top, sa, ya_bot, sb, yb_bot, sb, yb_top)))
    rgba = flat.convert("LA")
    return rgba.transform((out_w, out_h), Image.Transform.MESH, mesh, Image.Resampling.BILINEAR)


def curved_photo(text: str, seed: int, half_angle_deg: float, *, axis: str = "vertical", module_px: int = 8, fmt: str = "JPEG") -> bytes:
    """A 1280x960 photo of ``text``'s label wrapped around a cylinder (``axis`` "vertical": a bottle standing up,
    "horizontal": a pipe), the label covering 2 * ``half_angle_deg`` degrees of it; seeded."""
    r = random.Random(seed * 7919 + round(half_angle_deg * 10))
    flat = label(text, module_px)
    if axis == "horizontal":
        flat = flat.transpose(Image.Transpose.ROTATE_90)
    curved = wrap(flat, math.radians(half_angle_deg), distance=r.uniform(3.0, 6.0), offset=math.radians(r.uniform(-8, 8)))
    if axis == "horizontal":
        curved = curved.transpose(Image.Transpose.ROTATE_270)
    # Uneven light on the label: darker where the surface turns away from the light (towards the wrapped edges).
    w, h = curved.size
    shade = Image.linear_gradient("L").rotate(90 if axis == "vertical" else 0).resize((w, h))
    side = r.choice((0.55, 0.7))
    shade = shade.point(lambda v: round(255 * (side + (1 - side) * math.sin(math.pi * v / 255) ** 0.6)))
    lum, alpha = curved.split()
    curved = Image.merge("LA", (ImageChops.multiply(lum, shade), alpha))
    curved = curved.rotate(r.uniform(-12, 12), Image.Resampling.BICUBIC, expand=True)

    size = (1280, 960)
    small = Image.linear_gradient("L").resize((size[0] // 10, size[1] // 10)).rotate(r.uniform(0, 360), fillcolor=120).point(lambda v: 50 + v // 2)
    draw = ImageDraw.Draw(small)
    for _ in range(30):
        x, y = r.randrange(small.width), r.randrange(small.height)
        draw.rectangle((x, y, x + r.randrange(2, 20), y + r.randrange(2, 15)), fill=r.randrange(256))
    frame = small.resize(size, Image.Resampling.BILINEAR)
    margin = 80  # the tilt below moves the frame's edges by up to about 60 px
    if curved.width > size[0] - 2 * margin or curved.height > size[1] - 2 * margin:
        k = min((size[0] - 2 * margin) / curved.width, (size[1] - 2 * margin) / curved.height)
        curved = curved.resize((int(curved.width * k), int(curved.height * k)), Image.Resampling.LANCZOS)
    x, y = r.randrange(margin, size[0] - curved.width - margin + 1), r.randrange(margin, size[1] - curved.height - margin + 1)
    frame.paste(curved.getchannel("L"), (x, y), curved.getchannel("A"))
    # Light falling across the whole frame, a slight perspective tilt, lens blur, sensor noise.
    light = Image.linear_gradient("L").rotate(r.uniform(0, 360)).resize(size).point(lambda v: 190 + v * 65 // 255)
    frame = ImageChops.multiply(frame, light)
    tilt = r.uniform(-0.00005, 0.00005), r.uniform(-0.00005, 0.00005)
    frame = frame.transform(size, Image.Transform.PERSPECTIVE, (1, 0, 0, 0, 1, 0, *tilt), Image.Resampling.BICUBIC, fillcolor=100)
    frame = frame.filter(ImageFilter.GaussianBlur(r.uniform(0.6, 1.2)))
    frame = ImageChops.add(frame, _noise(size, r.uniform(4, 9), r), 1.0, -128)
    buf = io.BytesIO()
    if fmt == "JPEG":
        frame.save(buf, "JPEG", quality=90)
    else:
        frame.save(buf, fmt)
    return buf.getvalue()


def flat_photo(text: str, seed: int, *, module_px: int = 6) -> bytes:
    """The same scene with the label flat (a door sign): read by the earlier steps."""
    return curved_photo(text, seed, 0.0, module_px=module_px)
