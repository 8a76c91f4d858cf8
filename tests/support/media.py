"""Real media files made in tests: an MP4 (ISO BMFF) with a movie header, a WAV, a JPEG with EXIF and GPS."""

from __future__ import annotations

import datetime as dt
import os
import struct
import wave
from pathlib import Path

MP4_EPOCH = dt.datetime(1904, 1, 1, tzinfo=dt.timezone.utc)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def write_mp4(path: Path, created: dt.datetime, seconds: float, payload_bytes: int = 8192) -> Path:
    """A small MP4 whose movie header says when it was created and how long it lasts."""
    secs = int((created - MP4_EPOCH).total_seconds())
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd = bytes(4) + struct.pack(">IIII", secs, secs, 1000, int(seconds * 1000)) + struct.pack(">IH10x", 0x10000, 0x100) + matrix + bytes(24) + struct.pack(">I", 2)
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 0x200) + b"isomiso2avc1mp41")
    moov = _box(b"moov", _box(b"mvhd", mvhd) + _box(b"trak", _box(b"tkhd", bytes(84))))
    path.write_bytes(ftyp + moov + _box(b"mdat", os.urandom(payload_bytes)))
    return path


def write_wav(path: Path, seconds: float, rate: int = 8000) -> Path:
    """A silent mono 16-bit WAV of the given length."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(2 * int(seconds * rate)))
    return path


def write_exif_jpeg(path: Path, taken: dt.datetime, lat: float, lon: float) -> Path:
    """A JPEG whose EXIF says when (with its UTC offset) and where it was taken."""
    from PIL import Image

    def dms(value: float) -> tuple[float, float, float]:
        d = int(value)
        m = int((value - d) * 60)
        return (float(d), float(m), round((value - d - m / 60) * 3600, 2))

    exif = Image.Exif()
    exif[0x010F] = "ZFY"
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")
    offset = taken.utcoffset() or dt.timedelta(0)
    sub[0x9011] = f"{'+' if offset >= dt.timedelta(0) else '-'}{abs(int(offset.total_seconds())) // 3600:02d}:{abs(int(offset.total_seconds())) % 3600 // 60:02d}"
    exif.get_ifd(0x8825).update({1: "N" if lat >= 0 else "S", 2: dms(abs(lat)), 3: "E" if lon >= 0 else "W", 4: dms(abs(lon))})
    Image.new("RGB", (64, 48), (30, 90, 160)).save(path, "JPEG", exif=exif)
    return path
