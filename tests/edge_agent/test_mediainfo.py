"""Media probing on real files: JPEG with EXIF, WAV, hand-built MP4/MOV boxes, file names, hashing."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import wave
from datetime import datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest
from PIL import Image

from edge_agent import mediainfo
from edge_agent.mediainfo import CST, HASH_CHUNK, MediaInfo, is_settled, probe, sha256_file
from protocol.messages import MediaCaptured
from tests.support.media import write_wav

UTC = timezone.utc
START = datetime(2026, 11, 24, 1, 30, 15, tzinfo=UTC)  # 09:30:15 China Standard Time
START_MS = int(START.timestamp() * 1000)
MP4_EPOCH = datetime(1904, 1, 1, tzinfo=UTC)


def ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


# ------------------------------------------------------------------------------------- helpers


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def mvhd(created: datetime | None, timescale: int, duration: int, version: int = 0) -> bytes:
    secs = 0 if created is None else int((created - MP4_EPOCH).total_seconds())
    if version == 1:
        times = struct.pack(">QQIQ", secs, secs, timescale, duration)
    else:
        times = struct.pack(">IIII", secs, secs, timescale, duration)
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    rest = struct.pack(">IH10x", 0x10000, 0x100) + matrix + bytes(24) + struct.pack(">I", 2)
    return box(b"mvhd", bytes([version, 0, 0, 0]) + times + rest)


def ftyp() -> bytes:
    return box(b"ftyp", b"isom" + struct.pack(">I", 0x200) + b"isomiso2avc1mp41")


def moov(header: bytes) -> bytes:
    return box(b"moov", header + box(b"trak", box(b"tkhd", bytes(84))))


def mp4(path: Path, *parts: bytes) -> Path:
    path.write_bytes(b"".join(parts))
    return path


def standard_mp4(path: Path, created: datetime | None = START) -> Path:
    return mp4(path, ftyp(), moov(mvhd(created, 1000, 65000)), box(b"mdat", os.urandom(4096)))


def float_wav(path: Path, seconds: float, rate: int = 8000, claimed: int | None = None) -> Path:
    """IEEE-float (format tag 3) stereo WAV with a fact chunk: not PCM, so the wave module refuses it."""
    data = bytes(8 * int(seconds * rate))
    fmt = struct.pack("<HHIIHHH", 3, 2, rate, rate * 8, 8, 32, 0)
    chunks = (b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"fact" + struct.pack("<II", 4, int(seconds * rate))
              + b"data" + struct.pack("<I", len(data) if claimed is None else claimed) + data)  # fmt: skip
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)
    return path


def exif_jpeg(path: Path, *, when: str | None, offset: str | None, gps: dict[int, object] | None) -> Path:
    exif = Image.Exif()
    exif[0x010F] = "ZFY"
    sub = exif.get_ifd(0x8769)
    if when is not None:
        sub[0x9003] = when
    if offset is not None:
        sub[0x9011] = offset
    if gps is not None:
        exif.get_ifd(0x8825).update(gps)
    Image.new("RGB", (32, 24), (200, 30, 30)).save(path, "JPEG", exif=exif)
    return path


SHANGHAI_GPS: dict[int, object] = {1: "N", 2: (31.0, 13.0, 49.44), 3: "E", 4: (121.0, 28.0, 25.32), 31: 4.5}


def set_mtime(path: Path, dt: datetime) -> int:
    ns = int(dt.timestamp()) * 1_000_000_000
    os.utime(path, ns=(ns, ns))
    return ns // 1_000_000


# ------------------------------------------------------------------------------------- hashing


@pytest.mark.parametrize("size", [0, 1, HASH_CHUNK - 1, HASH_CHUNK, HASH_CHUNK + 1, 5 * HASH_CHUNK // 2])
def test_sha256_file_matches_hashlib_on_the_whole_file(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert sha256_file(path) == (hashlib.sha256(data).hexdigest(), size)
    assert 1 << 20 <= HASH_CHUNK <= 4 << 20


def test_probe_hash_and_size_are_of_the_whole_file(tmp_path: Path) -> None:
    path = standard_mp4(tmp_path / "a.mp4")
    info = probe(path)
    data = path.read_bytes()
    assert (info.sha256, info.size_bytes, info.file_name) == (hashlib.sha256(data).hexdigest(), len(data), "a.mp4")


def test_unknown_extension_is_a_clear_value_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("x")
    with pytest.raises(ValueError, match=r"notes\.txt: unknown media extension '\.txt'.*\.mp4"):
        probe(path)
    (tmp_path / "noext").write_text("x")
    with pytest.raises(ValueError, match="unknown media extension"):
        probe(tmp_path / "noext")


@pytest.mark.parametrize(("name", "kind"), [("a.MP4", "video"), ("a.mov", "video"), ("a.m4v", "video"), ("a.m4a", "audio"),
                                            ("a.mp3", "audio"), ("a.AAC", "audio"), ("a.wav", "audio"), ("a.jpeg", "photo"),
                                            ("a.png", "photo"), ("a.heic", "photo")])  # fmt: skip
def test_kind_comes_from_the_extension_and_junk_contents_never_crash(tmp_path: Path, name: str, kind: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\x00\x01garbage" * 10)
    info = probe(path)
    assert info.media_kind == kind and info.size_bytes == 90
    assert info.source["ended_ms"] == "mtime" and info.notes


# ------------------------------------------------------------------------------------- photos


def test_jpeg_exif_time_with_offset_and_gps(tmp_path: Path) -> None:
    path = exif_jpeg(tmp_path / "DSC0001.jpg", when="2026:11:24 09:30:15", offset="+07:00", gps=SHANGHAI_GPS)
    with Image.open(path) as im:  # the file really carries what the probe should find
        written = im.getexif()
        assert written.get_ifd(0x8769)[0x9003] == "2026:11:24 09:30:15"
        assert written.get_ifd(0x8769)[0x9011] == "+07:00"
        assert written.get_ifd(0x8825)[1] == "N" and float(written.get_ifd(0x8825)[4][2]) == pytest.approx(25.32)
    info = probe(path)
    when = ms(datetime(2026, 11, 24, 9, 30, 15, tzinfo=timezone(timedelta(hours=7))))
    assert (info.media_kind, info.started_ms, info.ended_ms, info.duration_ms) == ("photo", when, when, 0)
    assert info.location is not None
    lat, lon, acc = info.location
    assert lat == pytest.approx(31 + 13 / 60 + 49.44 / 3600) and lon == pytest.approx(121 + 28 / 60 + 25.32 / 3600)
    assert acc == pytest.approx(4.5)
    assert dict(info.source) == {"started_ms": "exif", "ended_ms": "exif", "location": "exif"}
    assert info.notes == ()


def test_jpeg_without_offset_is_china_time_and_south_west_are_negative(tmp_path: Path) -> None:
    gps = {1: "S", 2: (33.0, 52.0, 4.0), 3: "W", 4: (151.0, 12.0, 36.0)}
    path = exif_jpeg(tmp_path / "p.jpeg", when="2026:11:24 09:30:15", offset=None, gps=gps)
    info = probe(path)
    assert info.started_ms == START_MS
    assert info.location == (pytest.approx(-(33 + 52 / 60 + 4 / 3600)), pytest.approx(-(151 + 12 / 60 + 36 / 3600)), None)
    assert probe(path, name_tz=UTC).started_ms == START_MS + 8 * 3600 * 1000


def test_jpeg_gps_without_fix_is_ignored(tmp_path: Path) -> None:
    path = exif_jpeg(tmp_path / "p.jpg", when="2026:11:24 09:30:15", offset=None, gps={1: "N", 2: (0.0, 0.0, 0.0), 3: "E", 4: (0.0, 0.0, 0.0)})
    info = probe(path)
    assert info.location is None and "location" not in info.source and any("no fix" in n for n in info.notes)


def test_photo_time_from_file_name_then_mtime(tmp_path: Path) -> None:
    named = exif_jpeg(tmp_path / "IMG_20261124_093015.jpg", when=None, offset=None, gps=None)
    info = probe(named)
    assert (info.started_ms, info.ended_ms, info.duration_ms) == (START_MS, START_MS, 0)
    assert info.source["started_ms"] == "file_name"
    bare = exif_jpeg(tmp_path / "photo.jpg", when=None, offset=None, gps=None)
    mtime = set_mtime(bare, START)
    info = probe(bare)
    assert (info.started_ms, info.ended_ms) == (mtime, mtime)
    assert dict(info.source) == {"started_ms": "mtime", "ended_ms": "mtime"}


def test_png_without_exif_and_unreadable_heic(tmp_path: Path) -> None:
    Image.new("L", (4, 4)).save(tmp_path / "20261124_093015_ZFY0012.png")
    assert probe(tmp_path / "20261124_093015_ZFY0012.png").started_ms == START_MS
    (tmp_path / "x.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(16))
    info = probe(tmp_path / "x.heic")
    assert any(n.startswith("EXIF unreadable") for n in info.notes) and info.source["ended_ms"] == "mtime"


# ------------------------------------------------------------------------------------- WAV


def test_pcm_wav_duration_from_the_wave_module(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "20261124_093015_ZFY0012.wav", 2.5)
    info = probe(path)
    assert (info.media_kind, info.duration_ms, info.started_ms, info.ended_ms) == ("audio", 2500, START_MS, START_MS + 2500)
    assert dict(info.source) == {"duration_ms": "container", "started_ms": "file_name", "ended_ms": "file_name"}
    assert info.notes == ()


def test_non_pcm_wav_falls_back_to_riff_chunk_sizes(tmp_path: Path) -> None:
    path = float_wav(tmp_path / "rec.wav", 1.75)
    with pytest.raises(wave.Error):
        wave.open(str(path), "rb")  # the stdlib really refuses it
    info = probe(path)
    assert info.duration_ms == 1750 and info.source["duration_ms"] == "container"
    assert any("RIFF" in n for n in info.notes)


def test_truncated_wav_counts_only_the_bytes_present(tmp_path: Path) -> None:
    pcm = write_wav(tmp_path / "pcm.wav", 2.5)
    pcm.write_bytes(pcm.read_bytes()[: 44 + 16000])  # 1 s of the 2.5 s left
    info = probe(pcm)
    assert info.duration_ms == 1000 and any("truncated" in n for n in info.notes)
    streamed = float_wav(tmp_path / "streamed.wav", 0.5, claimed=0xFFFFFFFF)  # size never patched in
    assert probe(streamed).duration_ms == 500


def test_wav_mtime_fallback_is_end_minus_duration(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "audio.wav", 2.5)
    mtime = set_mtime(path, START)
    info = probe(path)
    assert (info.started_ms, info.ended_ms, info.duration_ms) == (mtime - 2500, mtime, 2500)
    assert info.source["started_ms"] == info.source["ended_ms"] == "mtime"


# ------------------------------------------------------------------------------------- MP4 / MOV


def test_mp4_mvhd_v0(tmp_path: Path) -> None:
    info = probe(standard_mp4(tmp_path / "clip.mp4"))
    assert (info.media_kind, info.started_ms, info.duration_ms, info.ended_ms) == ("video", START_MS, 65000, START_MS + 65000)
    assert dict(info.source) == {"started_ms": "container", "duration_ms": "container", "ended_ms": "container"}
    assert info.notes == ()


def test_mov_mvhd_v1_with_64_bit_fields(tmp_path: Path) -> None:
    duration = 90000 * 3600 * 30  # 30 h at 90 kHz: more than 32 bits
    path = mp4(tmp_path / "long.mov", ftyp(), moov(mvhd(START, 90000, duration, version=1)), box(b"mdat", b"x" * 100))
    info = probe(path)
    assert (info.started_ms, info.duration_ms) == (START_MS, 30 * 3600 * 1000)


def test_moov_after_mdat_and_size_zero_box(tmp_path: Path) -> None:
    path = mp4(tmp_path / "a.m4v", ftyp(), box(b"mdat", os.urandom(300_000)), moov(mvhd(START, 600, 600 * 12)))
    assert (probe(path).started_ms, probe(path).duration_ms) == (START_MS, 12000)
    to_end = struct.pack(">I4s", 0, b"mdat") + b"tail" * 100  # size 0: the last box runs to the end of the file
    path = mp4(tmp_path / "b.mp4", ftyp(), moov(mvhd(START, 1000, 5000)), to_end)
    info = probe(path)
    assert info.duration_ms == 5000 and info.notes == ()


def test_largesize_mdat(tmp_path: Path) -> None:
    payload = os.urandom(5000)
    large = struct.pack(">I4sQ", 1, b"mdat", 16 + len(payload)) + payload
    path = mp4(tmp_path / "c.mp4", ftyp(), large, moov(mvhd(START, 1000, 65000)))
    info = probe(path)
    assert (info.started_ms, info.duration_ms, info.notes) == (START_MS, 65000, ())


def test_moov_behind_a_5_gib_mdat_is_reached_by_seeking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mdat_size = 5 << 30
    path = tmp_path / "huge.mp4"
    with open(path, "wb") as f:
        f.write(ftyp() + struct.pack(">I4sQ", 1, b"mdat", mdat_size))
        f.seek(len(ftyp()) + mdat_size)  # sparse: the mdat payload is a hole, never written or read
        f.write(moov(mvhd(START, 1000, 65000)))
    monkeypatch.setattr(mediainfo, "sha256_file", lambda p: ("0" * 64, os.path.getsize(p)))
    read: list[int] = []

    class Counting(io.FileIO):
        def read(self, n: int = -1, /) -> bytes:
            data = super().read(n)
            read.append(len(data))
            return data

    monkeypatch.setattr(mediainfo, "open", lambda p, mode: Counting(p, mode.replace("b", "")), raising=False)
    try:
        info = probe(path)
        assert (info.started_ms, info.duration_ms, info.size_bytes) == (START_MS, 65000, path.stat().st_size)
        assert 0 < sum(read) < 200  # box headers and the mvhd fields only
    finally:
        path.unlink()


def test_truncated_mp4_without_moov_uses_name_and_notes_it(tmp_path: Path) -> None:
    whole = ftyp() + box(b"mdat", os.urandom(10_000)) + moov(mvhd(START, 1000, 65000))
    path = mp4(tmp_path / "VID_20261124_093015.mp4", whole[:5000])  # power lost while recording
    info = probe(path)
    assert (info.started_ms, info.duration_ms, info.ended_ms) == (START_MS, None, None)
    assert info.source["started_ms"] == "file_name"
    assert any("truncated" in n for n in info.notes) and any("no moov" in n for n in info.notes)


def test_every_prefix_and_corruption_of_an_mp4_is_survived(tmp_path: Path) -> None:
    whole = ftyp() + moov(mvhd(START, 1000, 65000, version=1)) + box(b"mdat", b"m" * 64)
    path = tmp_path / "x.mp4"
    for cut in range(len(whole) + 1):
        path.write_bytes(whole[:cut])
        info = probe(path)
        assert info.size_bytes == cut
        if cut >= len(ftyp()) + 8 + 8 + 32 + 4:  # the mvhd fields are all present
            assert (info.started_ms, info.duration_ms) == (START_MS, 65000)
    for at in range(0, len(whole), 3):
        for byte in (0x00, 0x01, 0xFF):
            damaged = bytearray(whole)
            damaged[at] = byte
            path.write_bytes(damaged)
            probe(path)
    path.write_bytes(struct.pack(">I4s", 4, b"ftyp") + bytes(40))
    assert any("malformed size 4" in n for n in probe(path).notes)


def test_mp4_without_creation_time_uses_file_name_then_mtime(tmp_path: Path) -> None:
    info = probe(standard_mp4(tmp_path / "20261124_093015_ZFY0012.mp4", created=None))
    assert (info.started_ms, info.ended_ms) == (START_MS, START_MS + 65000)
    assert info.source["started_ms"] == "file_name" and info.source["duration_ms"] == "container"
    path = standard_mp4(tmp_path / "clip.mp4", created=None)
    end = set_mtime(path, START + timedelta(minutes=5))
    info = probe(path)
    assert (info.started_ms, info.ended_ms, info.duration_ms) == (end - 65000, end, 65000)
    assert info.source["started_ms"] == "mtime"


def test_container_local_time_stored_as_utc_is_recognised_by_the_file_name(tmp_path: Path) -> None:
    wall_clock_as_utc = datetime(2026, 11, 24, 9, 30, 16, tzinfo=UTC)
    info = probe(standard_mp4(tmp_path / "20261124_093015_ZFY0012.mp4", created=wall_clock_as_utc))
    assert info.started_ms == START_MS + 1000 and info.source["started_ms"] == "container"
    assert any("local time stored as UTC" in n for n in info.notes)
    info = probe(standard_mp4(tmp_path / "20261124_120000_ZFY0012.mp4"))  # disagrees otherwise: keep the container
    assert info.started_ms == START_MS and any("differ by" in n for n in info.notes)


def test_clock_never_set_is_not_believed(tmp_path: Path) -> None:
    info = probe(standard_mp4(tmp_path / "VID_20261124_093015.mp4", created=datetime(1970, 1, 1, 0, 5, tzinfo=UTC)))
    assert info.started_ms == START_MS and info.source["started_ms"] == "file_name"
    assert any("clock was not set" in n for n in info.notes)


# ------------------------------------------------------------------------------------- names, fields, settling


@pytest.mark.parametrize(("name", "expected"), [
    ("20261124_093015_ZFY0012.mp4", START_MS),
    ("VID_20261124_093015.mp4", START_MS),
    ("REC20261124093015.mp4", START_MS),
    ("ZFY0012_20261124-093015_0001.mp4", START_MS),
    ("20261340_093015.mp4", None),
    ("120261124_093015.mp4", None),
    ("clip.mp4", None),
])  # fmt: skip
def test_file_name_schemes(name: str, expected: int | None) -> None:
    assert mediainfo._name_time(name, CST) == expected


def test_captured_fields_make_a_valid_media_captured(tmp_path: Path) -> None:
    path = exif_jpeg(tmp_path / "p.jpg", when="2026:11:24 09:30:15", offset="+08:00", gps=SHANGHAI_GPS)
    info = probe(path)
    assert isinstance(info, MediaInfo)
    base = {"type": "media_captured", "event_id": "evt-00000001", "device_id": "ZFY0012", "seq": 1,
            "device_time_ms": START_MS, "clock_error_ms": 50}  # fmt: skip
    event = msgspec.convert(base | info.captured_fields(), MediaCaptured)
    assert (event.sha256, event.started_ms, event.duration_ms) == (info.sha256, START_MS, 0)
    assert event.location is not None and event.location.accuracy_m == pytest.approx(4.5)


def test_is_settled_needs_two_equal_polls(tmp_path: Path) -> None:
    path = tmp_path / "rec.mp4"
    assert is_settled(path, None) == (False, None)
    path.write_bytes(b"")
    settled, stamp = is_settled(path, None)
    assert not settled and not is_settled(path, stamp)[0]  # empty: just created
    with open(path, "ab") as f:
        f.write(b"x" * 100)
    settled, stamp = is_settled(path, stamp)
    assert not settled and stamp is not None and stamp[0] == 100
    settled, stamp2 = is_settled(path, stamp)
    assert settled and stamp2 == stamp
    with open(path, "ab") as f:
        f.write(b"y")
    assert is_settled(path, stamp) == (False, (101, path.stat().st_mtime_ns))


def test_every_prefix_and_corruption_of_a_wav_and_a_jpeg_is_survived(tmp_path: Path) -> None:
    pcm = write_wav(tmp_path / "a.wav", 0.01).read_bytes()
    flt = float_wav(tmp_path / "b.wav", 0.01).read_bytes()
    jpg = exif_jpeg(tmp_path / "c.jpg", when="2026:11:24 09:30:15", offset="+08:00", gps=SHANGHAI_GPS).read_bytes()
    for name, whole in (("x.wav", pcm), ("y.wav", flt), ("z.jpg", jpg)):
        path = tmp_path / name
        for cut in range(0, len(whole) + 1, 1 if name.endswith("wav") else 7):
            path.write_bytes(whole[:cut])
            assert probe(path).size_bytes == cut
        for at in range(0, min(len(whole), 400), 2):
            damaged = bytearray(whole)
            damaged[at] ^= 0xFF
            path.write_bytes(damaged)
            probe(path)
