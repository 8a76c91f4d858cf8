"""The dewarp last try of protocol/qrphoto.py: QR labels wrapped around a bottle or a pipe (generated here by
tests/support/curved_qr.py, never read from the shared samples) are detected but not read by the straight sampling
grid; unwrapped, most are read, with the right text, and only an enterprise code's text is taken from there."""

from __future__ import annotations

import functools

import pytest

from protocol import qrphoto
from protocol.qrphoto import PhotoError
from tests.support.curved_qr import FOREIGN, curved_photo, enterprise_text, flat_photo

pytestmark = pytest.mark.skipif("zxing-cpp" not in qrphoto.decoders_available(), reason="zxing-cpp is not installed")

#: (axis, half the angle the label covers, seed): 40-60 degrees, where the earlier steps read none of them.
CURVED = [(axis, deg, seed) for axis in ("vertical", "horizontal") for deg in (40, 50, 60) for seed in range(3)]


@functools.cache
def photo(axis: str, deg: int, seed: int, foreign: bool = False) -> bytes:
    return curved_photo(FOREIGN if foreign else enterprise_text(seed), seed, deg, axis=axis)


def read(data: bytes, *, dewarp: bool = True) -> str | None:
    try:
        return qrphoto._read(data, qrphoto.decoders_available(), True, qrphoto.MAX_PIXELS, qrphoto.MAX_BYTES, qrphoto.TIME_LIMIT, dewarp=dewarp)
    except PhotoError:
        return None


@pytest.fixture
def no_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dewarp's CPU budget out of the way (a loaded test machine would make fewer tries): only the bound on
    the number of tries holds."""
    monkeypatch.setattr(qrphoto, "_DEWARP_TIME", 10.0)


def test_curved_labels_are_read_only_with_the_dewarp(no_budget: None) -> None:
    without = [read(photo(*c), dewarp=False) for c in CURVED]
    assert without == [None] * len(CURVED)  # the earlier steps read none of them: the test can fail
    got = {c: read(photo(*c)) for c in CURVED}
    wrong = {c: t for c, t in got.items() if t is not None and t != enterprise_text(c[2])}
    assert not wrong
    read_ok = [c for c, t in got.items() if t is not None]
    # About half of them (the figures of bench/qr.py --synthetic-curved); each axis some.
    assert len(read_ok) >= len(CURVED) * 4 // 10, read_ok
    assert {c[0] for c in read_ok} == {"vertical", "horizontal"}


def test_a_foreign_code_read_only_after_the_dewarp_is_refused(no_budget: None, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    pure = qrphoto._read_pure

    def spy(image: object) -> list[str]:
        texts = pure(image)  # type: ignore[arg-type]
        seen.extend(texts)
        return texts

    monkeypatch.setattr(qrphoto, "_read_pure", spy)
    for c in CURVED[::2]:
        data = photo(*c, foreign=True)
        if read(data, dewarp=False) is None:  # (read earlier, a lone code is taken as before)
            with pytest.raises(PhotoError):
                qrphoto.decode_photo(data)
    assert FOREIGN in seen  # the dewarp did read it (so the refusal is the rule's, not a miss)


@pytest.mark.parametrize(
    "text",
    ["FE1:hello", "FE1:91350100M000100Y44:K1:20261124:" + "A" * 103, "fe1:91350100M000100Y43:K1:20261124:" + "A" * 103,
     " FE1:91350100M000100Y43:K1:20261124:" + "A" * 103, "FE1:91350100M000100Y43:K1:20261124:" + "A" * 102],
)
def test_only_an_enterprise_codes_exact_shape_is_taken_from_the_dewarp(text: str) -> None:
    assert not qrphoto._enterprise(text)  # wrong check character, case, a space, a character short
    assert qrphoto._enterprise(enterprise_text(1))


def test_flat_photos_are_read_before_the_dewarp_and_its_tries_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    dewarped = qrphoto._dewarped

    def count(*args: object) -> object:
        calls.append(1)
        return dewarped(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(qrphoto, "_dewarped", count)
    for seed in range(4):
        text = enterprise_text(100 + seed)
        assert qrphoto.decode_photo(flat_photo(text, seed)) == text
    assert calls == []  # read by the earlier steps: the dewarp never ran
    monkeypatch.setattr(qrphoto, "_DEWARP_TIME", 10.0)
    for c in CURVED[:6]:
        calls.clear()
        read(photo(*c, foreign=True))  # never read: every try is made
        assert 0 < len(calls) <= qrphoto._DEWARP_TRIES
    # The budget: with none left, a photo gets no more than one try.
    monkeypatch.setattr(qrphoto, "_DEWARP_TIME", 0.0)
    calls.clear()
    read(photo(*CURVED[0], foreign=True))
    assert len(calls) <= 1


def test_no_dewarp_without_a_detected_symbol_or_when_something_was_read() -> None:
    search = qrphoto._Search(["zxing-cpp"], 1.0)
    assert search.dewarp() is None and search.dewarp_tries == 0  # nothing detected
    search.failed = (None, [((0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0))])  # type: ignore[assignment]
    search.seen.add(FOREIGN)  # an earlier step read a code: its rules decide, not the dewarp
    assert search.dewarp() is None and search.dewarp_tries == 0


def test_a_dewarp_that_fails_inside_pillow_or_its_arithmetic_costs_the_photo_nothing(no_budget: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The projective map divides by a term that a crossed outline can make zero, and Pillow refuses some meshes: such
    a try gives no picture, and the photo ends as "no code", never as an error the server would answer with a 500."""

    def broken(*args: object) -> None:
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(qrphoto, "_dewarped", broken)
    data = photo("v", 50, 1)
    with pytest.raises(PhotoError):
        qrphoto.decode_photo(data)
