"""etl.source.chromium.v8value on values the Dexie test profile does not hold, in V8's wire format as
Chromium 156 writes it (Blink version 21 with its trailer offset, V8 version 16)."""

from __future__ import annotations

import cramjam
import pytest

from etl.source.chromium import v8value

HEADER = b"\xff\x15\xfe" + bytes(12) + b"\xff\x10"  # Blink 21 + trailer offset, V8 16


def one_byte(s: str) -> bytes:
    return b'"' + bytes([len(s)]) + s.encode("latin-1")


def obj(*pairs: bytes, n: int) -> bytes:
    return b"o" + b"".join(pairs) + b"{" + bytes([n])


def test_arrays_holes_references_and_wrappers():
    inner = obj(one_byte("a"), b"I\x02", n=1)  # {a: 1}
    dense = b"A\x03" + b"I\x04" + b"-" + b"_" + b"$\x00\x03"  # [2, <hole>, undefined]
    sparse = b"a\x05" + b"I\x02" + one_byte("x") + b"@\x01\x05"  # length 5, [1] = "x"
    value = obj(one_byte("o"), inner, one_byte("again"), b"^\x01", one_byte("d"), dense, one_byte("s"), sparse,
                one_byte("w"), b"s" + one_byte("boxed"), one_byte("neg0"), b"N" + bytes(7) + b"\x80", n=6)
    assert v8value.decode(HEADER + value) == {
        "o": {"a": 1}, "again": {"a": 1}, "d": [2, None, None], "s": [None, "x", None, None, None],
        "w": "boxed", "neg0": 0}


def test_a_bigint_is_text_and_a_map_is_null_with_warnings():
    warnings: set[str] = set()
    # a BigInt: bitfield = byte length << 1 | sign, then the digits in 8-byte words, little-endian
    big = b"Z" + bytes([16 << 1]) + (2 ** 64 + 1).to_bytes(16, "little")
    value = obj(one_byte("big"), big, one_byte("m"), b";" + b":\x00", n=2)
    assert v8value.decode(HEADER + value, warnings=warnings) == {"big": str(2 ** 64 + 1), "m": None}
    assert warnings == {"big: a BigInt, written as text", "m: a Map, which JSON cannot hold: written as null"}


def test_the_compressed_wrapper_and_a_two_byte_string():
    text = "tab\there 😀"
    raw = text.encode("utf-16-le")
    value = HEADER + obj(one_byte("t"), b"c" + bytes([len(raw)]) + raw, n=1)
    wrapped = b"\xff\x11\x02" + bytes(cramjam.snappy.compress_raw(value))
    assert v8value.decode(wrapped) == {"t": text}


@pytest.mark.parametrize("data, match", [
    (b"\xff\x11\x07xyz", "unknown IndexedDB value wrapper FF 11 07"),
    (b"\xff\x63\xfe" + bytes(12) + b"\xff\x10o{\x00", "unknown Blink serialization version 99"),
    (b"\x01\x02\x03", "unknown value envelope"),
    (HEADER.replace(b"\xff\x10", b"\xff\x30") + b"o{\x00", "unknown V8 serialization version 48"),
])
def test_unknown_envelopes_are_named(data, match):
    with pytest.raises(v8value.UnknownEnvelope, match=match):
        v8value.decode(data)


def test_a_blob_in_a_record_is_refused_by_name():
    value = HEADER + obj(one_byte("file"), b"\\i\x00", n=1)
    with pytest.raises(v8value.Unsupported, match="a Blob in the record: blobs are not exported") as e:
        v8value.decode(value)
    assert e.value.path == ["file"]  # the reader's error names it as the field
