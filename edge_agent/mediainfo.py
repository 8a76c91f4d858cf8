"""What a finished recording tells about itself, for the MediaCaptured event.

The file stays on the recorder; the SHA-256 in MediaCaptured is the promise it will not change.
:func:`probe` hashes a finished file and reads when and where it was made: EXIF time and GPS of
photos (Pillow), the duration of WAV files (:mod:`wave`, or the RIFF chunk sizes for non-PCM), the
``mvhd`` box of MP4/MOV/M4A (parsed here), the recorders' file names (``20261124_093015_ZFY0012.mp4``,
``VID_20261124_093015.mp4``, local time) and last the modification time (the end of the recording).
:attr:`MediaInfo.source` says where each time and the place came from; anything odd about the file
goes to :attr:`MediaInfo.notes`, never an exception: a truncated file still yields its hash and what
could be read. :func:`is_settled` tells a folder watcher when a file is finished.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import struct
import wave
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO, Literal

from PIL import Image

MediaKind = Literal["video", "audio", "photo"]
Location = tuple[float, float, float | None]  # latitude, longitude (WGS-84 degrees), accuracy in metres
FileStamp = tuple[int, int]  # (size in bytes, mtime in ns)
StrPath = str | os.PathLike[str]

#: Read size for hashing. 1, 2 and 4 MiB hash a cached 512 MB file equally fast (about 1.5 GB/s
#: with OpenSSL's SHA-NI code, 5x coreutils' sha256sum); 1 MiB is the smallest buffer at full speed.
HASH_CHUNK = 1 << 20
#: China Standard Time, the recorders' local time in file names and in EXIF without an offset.
CST = timezone(timedelta(hours=8), "CST")
#: Media kind by lower-case file extension.
EXTENSIONS: Mapping[str, MediaKind] = MappingProxyType(
    {".mp4": "video", ".mov": "video", ".m4v": "video", ".wav": "audio", ".m4a": "audio", ".mp3": "audio",
     ".aac": "audio", ".jpg": "photo", ".jpeg": "photo", ".png": "photo", ".heic": "photo"}
)  # fmt: skip
_BMFF = frozenset({".mp4", ".mov", ".m4v", ".m4a"})
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MP4_EPOCH_S = 2_082_844_800  # seconds from 1904-01-01 (ISO BMFF / QuickTime epoch) to 1970-01-01 UTC
_EARLIEST_MS = 946_684_800_000  # 2000-01-01: earlier container or EXIF times mean the clock was never set
_LOCAL_AS_UTC_SLACK_MS = 120_000
_NAME_TIME = re.compile(r"(?<!\d)(20\d\d)(\d\d)(\d\d)[_-]?(\d\d)(\d\d)(\d\d)(?!\d)")
_OFFSET = re.compile(r"([+-])(\d\d):(\d\d)")


def sha256_file(path: StrPath) -> tuple[str, int]:
    """Stream the file through SHA-256: (lower-case hex digest, number of bytes read)."""
    digest = hashlib.sha256()
    buf = bytearray(HASH_CHUNK)
    total = 0
    with open(path, "rb", buffering=0) as f, memoryview(buf) as view:
        while n := f.readinto(buf):
            digest.update(view[:n])
            total += n
    return digest.hexdigest(), total


@dataclass(frozen=True)
class MediaInfo:
    """What one media file says about itself; times are ms since 1970-01-01 UTC."""

    file_name: str
    media_kind: MediaKind
    size_bytes: int  # the bytes that were hashed
    sha256: str
    started_ms: int | None = None
    ended_ms: int | None = None
    duration_ms: int | None = None  # 0 for photos
    location: Location | None = None
    #: Field name -> origin: ``container``, ``exif``, ``file_name`` or ``mtime``.
    source: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: What was odd about the file (truncated, malformed, times disagreeing ...), for the log.
    notes: tuple[str, ...] = ()

    def captured_fields(self) -> dict[str, Any]:
        """The MediaCaptured fields this file provides; officer, case and the like are the caller's."""
        names = ("file_name", "media_kind", "size_bytes", "sha256", "started_ms", "ended_ms", "duration_ms")
        out: dict[str, Any] = {n: getattr(self, n) for n in names if getattr(self, n) is not None}
        if self.location is not None:
            lat, lon, acc = self.location
            out["location"] = {"lat": lat, "lon": lon} | ({} if acc is None else {"accuracy_m": acc})
        return out


@dataclass
class _Found:
    """What the readers found so far."""

    started_ms: int | None = None
    ended_ms: int | None = None
    duration_ms: int | None = None
    location: Location | None = None
    source: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def start(self, ms: int, origin: str, what: str) -> None:
        if ms < _EARLIEST_MS:
            day = datetime.fromtimestamp(ms / 1000, timezone.utc)
            self.notes.append(f"{what} {day:%Y-%m-%d} ignored: the clock was not set")
        else:
            self.started_ms, self.source["started_ms"] = ms, origin


def probe(path: StrPath, *, name_tz: tzinfo = CST) -> MediaInfo:
    """Hash a finished media file and read its kind, times and place.

    Start time: the container's or EXIF's own time, else the file name, else the modification time
    minus the duration. ``name_tz`` is the recorder's local time zone, for file names and for EXIF
    times without OffsetTimeOriginal. Raises ValueError for an extension that is not a media kind,
    OSError if the file cannot be read; damaged contents only add notes.
    """
    p = Path(path)
    ext = p.suffix.lower()
    kind = EXTENSIONS.get(ext)
    if kind is None:
        known = " ".join(sorted(EXTENSIONS))
        raise ValueError(f"{p.name}: unknown media extension {p.suffix or '(none)'!r}; expected one of {known}")
    before = os.stat(p)
    digest, size = sha256_file(p)
    found = _Found()
    if kind == "photo":
        found.duration_ms = 0
        _read_photo(p, found, name_tz)
    elif ext == ".wav":
        _read_wav(p, size, found)
    elif ext in _BMFF:
        _read_bmff(p, size, found)
    else:
        found.notes.append(f"no reader for {ext} files: duration unknown")
    _settle_times(found, _name_time(p.name, name_tz), before.st_mtime_ns // 1_000_000, name_tz)
    after = os.stat(p)
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns) or size != before.st_size:
        found.notes.append("the file changed while it was read: probe it again once it is settled")
    return MediaInfo(p.name, kind, size, digest, found.started_ms, found.ended_ms, found.duration_ms,
                     found.location, MappingProxyType(found.source), tuple(found.notes))  # fmt: skip


def _settle_times(found: _Found, name_ms: int | None, mtime_ms: int, name_tz: tzinfo) -> None:
    """Fill in the start from the file name or mtime if the contents had none; derive the end."""
    if found.started_ms is not None and name_ms is not None:
        diff = found.started_ms - name_ms
        offset = datetime.fromtimestamp(name_ms / 1000, name_tz).utcoffset()
        offset_ms = int(offset.total_seconds() * 1000) if offset else 0
        if offset_ms and abs(diff - offset_ms) <= _LOCAL_AS_UTC_SLACK_MS:
            found.started_ms -= offset_ms  # a common recorder bug: local wall-clock time stored as UTC
            found.notes.append(f"{found.source['started_ms']} time is local time stored as UTC (the file name agrees); shifted")
        elif abs(diff) > _LOCAL_AS_UTC_SLACK_MS:
            found.notes.append(f"{found.source['started_ms']} time and file name differ by {diff / 1000:.0f} s; kept the former")
    elif name_ms is not None:
        found.start(name_ms, "file_name", "file-name time")
    if found.started_ms is not None:
        if found.duration_ms is not None:
            found.ended_ms = found.started_ms + found.duration_ms
            found.source["ended_ms"] = found.source["started_ms"]
    else:
        found.ended_ms, found.source["ended_ms"] = mtime_ms, "mtime"
        if found.duration_ms is not None and mtime_ms - found.duration_ms >= 0:
            found.started_ms = mtime_ms - found.duration_ms
            found.source["started_ms"] = "mtime"
        found.notes.append("no recorded start time: the end is the file's modification time")


def _name_time(name: str, tz: tzinfo) -> int | None:
    """Start time from a recorder file name: YYYYMMDD_HHMMSS (or without the ``_``) local time."""
    m = _NAME_TIME.search(Path(name).stem)
    try:
        return _ms(datetime(*map(int, m.groups()), tzinfo=tz)) if m else None  # type: ignore[misc]
    except ValueError:  # 20261340_250000 and the like: not a time
        return None


def _ms(dt: datetime) -> int:
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def _read_photo(path: Path, found: _Found, local_tz: tzinfo) -> None:
    try:
        with Image.open(path) as im:
            exif = im.getexif()
            sub, gps = exif.get_ifd(0x8769), exif.get_ifd(0x8825)
    except Exception as exc:  # Pillow raises many kinds on damaged or unsupported images (HEIC needs a plugin)
        found.notes.append(f"EXIF unreadable: {type(exc).__name__}: {exc}")
        return
    # DateTimeOriginal, else IFD0 DateTime (the last change, for a recorder's photo the same moment)
    when = _exif_time(sub.get(0x9003), sub.get(0x9011), local_tz) or _exif_time(exif.get(0x0132), sub.get(0x9010), local_tz)
    if when is not None:
        found.start(_ms(when), "exif", "EXIF time")
    if gps:
        found.location = _gps_location(gps, found.notes)
        if found.location is not None:
            found.source["location"] = "exif"


def _exif_time(raw: object, raw_offset: object, default_tz: tzinfo) -> datetime | None:
    """EXIF ``YYYY:MM:DD HH:MM:SS`` in the ``±HH:MM`` offset if given, else in ``default_tz``."""
    if not isinstance(raw, str):
        return None
    try:
        naive = datetime.strptime(raw.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    m = _OFFSET.fullmatch(raw_offset.strip("\x00 ")) if isinstance(raw_offset, str) else None
    if m is None:
        return naive.replace(tzinfo=default_tz)
    delta = timedelta(hours=int(m[2]), minutes=int(m[3]))
    return naive.replace(tzinfo=timezone(-delta if m[1] == "-" else delta))


def _gps_location(gps: Mapping[int, Any], notes: list[str]) -> Location | None:
    lat, lon = _degrees(gps.get(2), gps.get(1), "S"), _degrees(gps.get(4), gps.get(3), "W")
    void = str(gps.get(9, "A")).strip("\x00 ") == "V"  # GPSStatus: V = measurement void
    if lat is None or lon is None or void or (lat, lon) == (0, 0) or abs(lat) > 90 or abs(lon) > 180:
        notes.append(f"EXIF GPS position ignored: unreadable, no fix or out of range ({lat}, {lon})")
        return None
    acc = _number(gps.get(31))
    return lat, lon, acc if acc is not None and acc >= 0 else None


def _degrees(value: object, ref: object, negative: str) -> float | None:
    """EXIF degrees/minutes/seconds rationals to signed decimal degrees."""
    parts = [_number(v) for v in value] if isinstance(value, tuple) and 1 <= len(value) <= 3 else [None]
    if None in parts:
        return None
    deg = sum(v / 60**i for i, v in enumerate(parts))  # type: ignore[operator]
    ref_text = ref.decode("latin-1") if isinstance(ref, bytes) else str(ref)
    return -deg if ref_text.strip("\x00 ").upper() == negative else deg


def _number(value: object) -> float | None:
    """A finite float from an EXIF rational (Pillow's IFDRational, a number, or a (num, den) pair)."""
    try:
        x = value[0] / value[1] if isinstance(value, tuple) and len(value) == 2 else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return x if math.isfinite(x) else None


def _read_wav(path: Path, size: int, found: _Found) -> None:
    try:
        with wave.open(str(path), "rb") as w:
            frames, rate, frame_bytes = w.getnframes(), w.getframerate(), w.getsampwidth() * w.getnchannels()
        if rate > 0 and frames * frame_bytes <= size:
            found.duration_ms, found.source["duration_ms"] = frames * 1000 // rate, "container"
            return
        why = "its data chunk runs past the end of the file" if rate > 0 else "sample rate 0"
    except Exception as exc:  # wave.Error, EOFError, struct.error, even RuntimeError on damaged files
        why = f"{type(exc).__name__}: {exc}"
    found.notes.append(f"wave module cannot read it ({why}); reading RIFF chunk sizes")
    with open(path, "rb") as f:
        found.duration_ms = _riff_duration(f, size, found.notes)
    if found.duration_ms is not None:
        found.source["duration_ms"] = "container"


def _riff_duration(f: BinaryIO, size: int, notes: list[str]) -> int | None:
    """Duration = data chunk bytes / fmt byte rate, for any WAVE format tag; None if unreadable."""
    head = f.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        notes.append("not a RIFF/WAVE file")
        return None
    pos, byte_rate, data_bytes = 12, 0, None
    while pos + 8 <= size and (not byte_rate or data_bytes is None):
        f.seek(pos)
        chunk_id, chunk_size = struct.unpack("<4sI", f.read(8).ljust(8, b"\0"))
        if chunk_id == b"fmt ":
            fmt = f.read(min(chunk_size, 16))
            byte_rate = struct.unpack_from("<I", fmt, 8)[0] if len(fmt) >= 12 else 0
        elif chunk_id == b"data":
            data_bytes = min(chunk_size, size - pos - 8)
            if data_bytes < chunk_size:
                notes.append(f"data chunk truncated: {data_bytes} of {chunk_size} bytes present")
        pos += 8 + chunk_size + (chunk_size & 1)
    if not byte_rate or data_bytes is None:
        notes.append("RIFF has no usable fmt byte rate or data chunk")
        return None
    return data_bytes * 1000 // byte_rate


def _boxes(f: BinaryIO, start: int, end: int, notes: list[str]) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload offset, end offset) of each box in [start, end); seeks past payloads, never reads them."""
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        size, kind = struct.unpack(">I4s", f.read(8).ljust(8, b"\0"))
        header = 8
        if size == 1:  # a 64-bit largesize follows the type
            size, header = (int.from_bytes(f.read(8), "big") if pos + 16 <= end else 0), 16
        elif size == 0:  # the box runs to the end of the file (or of its parent)
            size = end - pos
        if size < header:
            notes.append(f"box {kind!r} at offset {pos}: malformed size {size}")
            return
        if pos + size > end:
            notes.append(f"box {kind!r} at offset {pos}: truncated ({end - pos} of {size} bytes present)")
        yield kind, pos + header, min(pos + size, end)
        pos += size


def _read_bmff(path: Path, size: int, found: _Found) -> None:
    with open(path, "rb") as f:
        for kind, body, end in _boxes(f, 0, size, found.notes):
            if kind == b"moov":
                for child, cbody, cend in _boxes(f, body, end, found.notes):
                    if child == b"mvhd":
                        f.seek(cbody)
                        _mvhd(f.read(min(cend - cbody, 32)), found)
                        return
                found.notes.append("moov box has no mvhd")
                return
    found.notes.append("no moov box: the recording was not finalized, or this is not an MP4/MOV file")


def _mvhd(data: bytes, found: _Found) -> None:
    """Movie header: creation time (s since 1904, UTC; 0 = unknown) and duration in timescale units."""
    version = data[0] if data else -1
    if not (version == 1 and len(data) >= 32 or version == 0 and len(data) >= 20):
        found.notes.append(f"mvhd unreadable (version {version}, {len(data)} bytes)")
        return
    created, _, scale, duration = struct.unpack_from(">QQIQ" if version else ">IIII", data, 4)
    if created:
        found.start((created - _MP4_EPOCH_S) * 1000, "container", "mvhd creation time")
    if scale == 0 or duration in (0, 2 ** (64 if version else 32) - 1):
        found.notes.append(f"mvhd duration unknown (duration {duration}, timescale {scale}): fragmented or unfinished")
    else:
        found.duration_ms, found.source["duration_ms"] = duration * 1000 // scale, "container"


def is_settled(path: StrPath, prev: FileStamp | None) -> tuple[bool, FileStamp | None]:
    """One poll of a watched file: (finished?, stamp to pass as ``prev`` next time).

    Finished means size and mtime unchanged across two polls. Poll less often than the recorder
    flushes and over 2 s apart (FAT/exFAT SD cards keep mtimes in 2-second steps). An empty file is
    never settled (just created); a vanished one gives (False, None).
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False, None
    now = (st.st_size, st.st_mtime_ns)
    return now == prev and st.st_size > 0, now
