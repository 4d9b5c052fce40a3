"""The C fast paths of NFC normalization against ``unicodedata``.

``pack_texts`` (behind ``encode_batch``) encodes a non-ASCII string in C
when every code point is listed in ``_nfc_table.h`` as NFC on its own; the
table must therefore never list a code point that can change under NFC or
combine with its neighbour, in the Unicode database of the running Python.
"""
from __future__ import annotations

import importlib.util
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bytepiece import _core
from bytepiece.normalization import nfc_utf8


def _table_script():
    """scripts/make_nfc_table.py: its rule for "NFC on its own", applied here
    to the Unicode database of the Python running the tests."""
    path = Path(__file__).resolve().parents[1] / "scripts" / "make_nfc_table.py"
    spec = importlib.util.spec_from_file_location("make_nfc_table", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_listed_code_point_is_nfc_on_its_own():
    ranges = _core.nfc_safe_ranges()
    assert ranges and ranges[0] == (0, 0x2FF)
    script = _table_script()
    seconds = script.composition_seconds()
    bad = []
    for lo, hi in ranges:
        assert 0 <= lo <= hi <= 0x10FFFF
        for cp in range(lo, hi + 1):
            if unicodedata.category(chr(cp)) == "Cn":
                continue  # assigned after this Python's Unicode: it leaves them as they are
            if not script.nfc_on_its_own(cp, seconds):
                bad.append(hex(cp))
    assert not bad, f"code points that NFC may change or combine: {bad[:20]}"


def test_ranges_are_sorted_and_disjoint():
    ranges = _core.nfc_safe_ranges()
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:]))


def _packed(texts):
    data, offsets = _core.pack_texts(texts, nfc_utf8)
    return [bytes(data[offsets[i]:offsets[i + 1]]) for i in range(len(texts))]


SAMPLES = [
    "", "plain ascii\n", "Café ñ ÿ\n", "e\u0301 combining acute", "\u0301 leading mark",
    "床前明月光，疑是地上霜。\n", "한국어 텍스트", "\u1100\u1161\u11a8 jamo", "Ω \u2126 ohm sign",
    "가\u11a8 syllable and trailing jamo", "emoji 😀 outside the BMP",
    "CJK ext B \U00020000\U00021D53 and \U0002F800 compatibility", "\U0001D15E musical",
    "\U000110BA kaithi \U00011099\U000110BA", "Ελληνικά ά \u0387",
    "\u0958 deva nukta", "fullwidth ＡＢＣ", "か\u3099 kana voicing", "\ufb01 ligature",
    "\u00c5\u212b angstrom", "mixed é\u0300 order \u0323\u0307",
]


def test_pack_texts_matches_unicodedata_on_tricky_strings():
    expected = [unicodedata.normalize("NFC", t).encode("utf-8") for t in SAMPLES]
    assert _packed(SAMPLES) == expected
    assert [_core.str_nfc_utf8(t, nfc_utf8) for t in SAMPLES] == expected
    with pytest.raises(ValueError, match="surrogate"):
        _core.str_nfc_utf8("bad \ud800", nfc_utf8)


def test_pack_texts_reports_lone_surrogates():
    with pytest.raises(ValueError, match="surrogate"):
        _core.pack_texts(["fine", "bad \ud800 here"], nfc_utf8)


def test_pack_texts_grows_past_its_sizing():
    """The buffer is sized from string lengths; texts that are neither str
    nor bytes, and strings that NFC makes longer (U+1D15E is 4 bytes, its
    NFC 8), must grow it and still come out whole."""
    texts = [bytearray(b"raw " * 50), "\U0001D15E" * 300, memoryview(b"view"), "\u0958" * 100, "tail"]
    expected = [bytes(texts[0]), unicodedata.normalize("NFC", texts[1]).encode(), b"view",
                unicodedata.normalize("NFC", texts[3]).encode(), b"tail"]
    data, offsets = _core.pack_texts(texts, nfc_utf8)
    assert len(data) == offsets[-1] == sum(map(len, expected))
    assert _packed(texts) == expected


def test_pack_texts_rejects_a_normalizer_that_returns_str():
    with pytest.raises(TypeError, match="nfc_utf8 must return bytes"):
        _core.pack_texts(["e\u0301"], lambda t: t)


class _Str(str):
    pass


def test_pack_texts_str_subclass_and_latin1():
    texts = [_Str("e\u0301"), "\xe9\xff\x80", _Str("abc")]
    assert _packed(texts) == [unicodedata.normalize("NFC", t).encode("utf-8") for t in texts]


# Characters from the scripts the fast path covers, plus combining marks,
# jamo, kana voicing marks, singletons and astral code points around them.
_chars = st.one_of(
    st.characters(min_codepoint=0, max_codepoint=0x52F, blacklist_categories=("Cs",)),
    st.characters(min_codepoint=0x1100, max_codepoint=0x11FF),
    st.characters(min_codepoint=0x3000, max_codepoint=0x30FF),
    st.characters(min_codepoint=0xAC00, max_codepoint=0xD7A3),
    st.characters(min_codepoint=0x4E00, max_codepoint=0x4E40),
    st.characters(min_codepoint=0xF900, max_codepoint=0xFB4F),
    st.characters(min_codepoint=0x1D150, max_codepoint=0x1D1C0),
    st.characters(min_codepoint=0x1F600, max_codepoint=0x1F64F),
    st.characters(min_codepoint=0x2F800, max_codepoint=0x2F810),
    st.characters(min_codepoint=0x11080, max_codepoint=0x110C0),
    st.characters(blacklist_categories=("Cs",)),
)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.text(_chars, max_size=12), max_size=8))
def test_pack_texts_equals_nfc_utf8(texts):
    expected = [unicodedata.normalize("NFC", t).encode("utf-8") for t in texts]
    assert _packed(texts) == expected
    assert [_core.str_nfc_utf8(t, nfc_utf8) for t in texts] == expected


def _plain_nfc_exact(data: bytes) -> bool:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return "\r" not in text and unicodedata.is_normalized("NFC", text)


TRICKY_BYTES = [
    b"", b"ascii\n", b"a\r\nb", "Café\n".encode(), "e\u0301".encode(), "床前明月光".encode(),
    "😀".encode(), "\U0002F800".encode(), "\U0001D15E".encode(), b"\xf4\x90\x80\x80", b"\xf0\x8f\xbf\xbf",
    b"\xf0\x9f\x98", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xff", b"\xe4\xb8",
    b"\xc3", "한국어".encode(), "か\u3099".encode(), "\u212b".encode(),
]


def test_is_plain_nfc_utf8_never_claims_too_much():
    for data in TRICKY_BYTES:
        if _core.is_plain_nfc_utf8(data):
            assert _plain_nfc_exact(data), data
    assert _core.is_plain_nfc_utf8("床前明月光，疑是地上霜。\nCafé 😀 𡵓\n".encode())
    assert not _core.is_plain_nfc_utf8("e\u0301".encode())
    assert not _core.is_plain_nfc_utf8(b"line\r\n")
    assert not _core.is_plain_nfc_utf8(b"\xed\xa0\x80")   # an encoded surrogate


@settings(max_examples=300, deadline=None, database=None)
@given(st.one_of(st.binary(max_size=24), st.text(_chars, max_size=16).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_is_plain_nfc_utf8_implies_exact_check(data):
    if _core.is_plain_nfc_utf8(data):
        assert _plain_nfc_exact(data)
    elif _plain_nfc_exact(data):
        # Not shown only when some code point is outside the fast table.
        text = data.decode()
        safe = _core.nfc_safe_ranges()
        assert any(not any(lo <= ord(c) <= hi for lo, hi in safe) for c in text)


def test_fast_paths_reject_wrong_types():
    for bad in (None, "text", 123):
        with pytest.raises(TypeError):
            _core.is_plain_nfc_utf8(bad)
    for bad in (None, b"bytes", 123):
        with pytest.raises(TypeError):
            _core.str_nfc_utf8(bad, nfc_utf8)
