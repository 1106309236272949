"""A record as Chromium stores it -> the export contract's JSON value.

The stored value is, outermost first:
  IndexedDB's wrapper (third_party/blink/renderer/modules/indexeddb/idb_value_wrapping.cc):
    FF 11 02 + snappy (raw) of what follows     a compressed value
    FF 11 01 + varint size + varint index       a large value kept in a blob file (the index-th
                                                external object); the file holds what follows
  Blink's envelope: FF + varint version; version >= 21 adds FE + 8-byte trailer offset + 4-byte
    size (the trailer lists host interfaces and is not needed here); below 16 there is no
    separate envelope (V8's header is Blink's)
  V8's ValueSerializer wire format: FF + version, then one value.

The value becomes what JSON.stringify in the export snippet writes (etl/source/snippet.js): a Date is
{"$date": ms}, undefined properties are absent (undefined in an array is null, as are holes),
numbers stay numbers (a whole double as an integer, as JavaScript prints it) and strings strings.
A Map, Set, RegExp, ArrayBuffer or typed array is written as null with a warning, a BigInt as
text with a warning, as the snippet does; a Blob or File in a record is an error (ValueError).
"""

from __future__ import annotations

import math
import struct

import cramjam

from .leveldb import varint

WRAPPER, COMPRESSED, IN_BLOB = 0x11, 0x02, 0x01
BLINK_VERSIONS = range(13, 22)  # what this reader knows; a newer Blink is refused by name
TRAILER_FROM = 21
SEPARATE_ENVELOPE_FROM = 16
V8_VERSIONS = range(13, 16 + 1)


class UnknownEnvelope(ValueError):
    """A value envelope or version this reader does not know."""


class Unsupported(ValueError):
    """A value the export cannot hold (a Blob or File), or a tag this reader does not know;
    `path` names the property (filled in as the error leaves the objects that hold it)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.path: list[str] = []


class _Undefined:
    __slots__ = ()

    def __repr__(self):
        return "undefined"


UNDEFINED = _Undefined()


def unwrap(value: bytes, blob_reader=None) -> bytes:
    """The Blink-serialized bytes inside IndexedDB's wrapper. `blob_reader(index)` returns the
    bytes of the record's index-th external object (for values kept in a blob file)."""
    while len(value) >= 3 and value[0] == 0xFF and value[1] == WRAPPER:
        kind = value[2]
        if kind == COMPRESSED:
            try:
                value = bytes(cramjam.snappy.decompress_raw(value[3:]))
            except Exception as e:
                raise ValueError(f"compressed value does not decompress (snappy: {e})") from None
        elif kind == IN_BLOB:
            size, pos = varint(value, 3)
            index, _ = varint(value, pos)
            if blob_reader is None:
                raise ValueError("the value is kept in a blob file, which is not available")
            value = blob_reader(index)
            if len(value) != size:
                raise ValueError(f"the value's blob file holds {len(value):,} bytes, the record says {size:,}")
        else:
            raise UnknownEnvelope(f"unknown IndexedDB value wrapper FF 11 {kind:02X} (known: 01 blob, 02 snappy)")
    return value


def decode(value: bytes, blob_reader=None, warnings: set | None = None):
    """The JSON value of one stored record (see the module's doc)."""
    data = unwrap(value, blob_reader)
    if len(data) < 2 or data[0] != 0xFF:
        raise UnknownEnvelope(f"unknown value envelope: starts {data[:4].hex(' ')}, not a Blink version tag FF")
    version, pos = varint(data, 1)
    if version not in BLINK_VERSIONS:
        raise UnknownEnvelope(f"unknown Blink serialization version {version} (this reader knows "
                              f"{BLINK_VERSIONS.start}-{BLINK_VERSIONS.stop - 1})")
    if version >= TRAILER_FROM:
        if data[pos:pos + 1] != b"\xfe":
            raise UnknownEnvelope(f"Blink version {version} without its trailer offset tag FE")
        pos += 13
    if version < SEPARATE_ENVELOPE_FROM:
        pos = 0  # Blink's header is V8's
    if data[pos:pos + 1] != b"\xff":
        raise UnknownEnvelope(f"no V8 header after the Blink envelope (byte {pos}: {data[pos:pos + 1].hex() or 'end'})")
    v8_version, pos = varint(data, pos + 1)
    if v8_version not in V8_VERSIONS:
        raise UnknownEnvelope(f"unknown V8 serialization version {v8_version} (this reader knows "
                              f"{V8_VERSIONS.start}-{V8_VERSIONS.stop - 1})")
    state = _State(warnings if warnings is not None else set())
    try:
        value, _ = _read(data, pos, state)
    except (IndexError, struct.error):
        raise ValueError(f"the serialized value ends early ({len(data)} bytes)") from None
    return None if value is UNDEFINED or value.__class__ is _Lossy else value


class _State:
    __slots__ = ("objects", "warnings")

    def __init__(self, warnings: set):
        self.objects: list = []  # by id, for back references ('^')
        self.warnings = warnings


class _Lossy:
    """A value JSON cannot hold as it is: the property that holds it writes `value` with a warning."""

    __slots__ = ("kind", "value")

    def __init__(self, kind: str, value=None):
        self.kind, self.value = kind, value

    def note(self, where: str, warnings: set):
        if self.value is None:
            warnings.add(f"{where}: a {self.kind}, which JSON cannot hold: written as null")
        else:
            warnings.add(f"{where}: a {self.kind}, written as text")
        return self.value


def _varint_at(d: bytes, pos: int) -> tuple[int, int]:
    b = d[pos]
    return (b, pos + 1) if b < 0x80 else varint(d, pos)


# The decoder is one function with the common tags first and their varints inlined: a profile
# holds millions of values, and this is where reading one spends its time.
def _read(d: bytes, pos: int, st: _State):
    t = d[pos]
    pos += 1
    while t == 0:  # padding (aligns two-byte strings)
        t = d[pos]
        pos += 1
    if t == 0x22:  # '"' one-byte (Latin-1) string
        n = d[pos]
        if n < 0x80:
            pos += 1
        else:
            n, pos = varint(d, pos)
        end = pos + n
        if end > len(d):
            raise IndexError
        return d[pos:end].decode("latin-1"), end
    if t == 0x49:  # 'I' zigzag int32
        n = d[pos]
        if n < 0x80:
            pos += 1
        else:
            n, pos = varint(d, pos)
        return (n >> 1) ^ -(n & 1), pos
    if t == 0x6F:  # 'o' object
        obj: dict = {}
        st.objects.append(obj)
        while True:
            c = d[pos]
            while c == 0:
                pos += 1
                c = d[pos]
            if c == 0x7B:  # '{' end, then the property count
                _, pos = _varint_at(d, pos + 1)
                return obj, pos
            k, pos = _read(d, pos, st)
            if k.__class__ is not str:
                k = str(k) if isinstance(k, int) else repr(k)
            try:
                v, pos = _read(d, pos, st)
            except Unsupported as e:
                e.path.insert(0, k)
                raise
            if v is UNDEFINED:
                continue  # JSON.stringify leaves it out
            if v.__class__ is _Lossy:
                v = v.note(k, st.warnings)
            obj[k] = v
    if t == 0x4E:  # 'N' double
        return _number(struct.unpack_from("<d", d, pos)[0]), pos + 8
    if t == 0x63:  # 'c' two-byte string
        n, pos = _varint_at(d, pos)
        end = pos + n
        if end > len(d):
            raise IndexError
        return d[pos:end].decode("utf-16-le", "surrogatepass"), end
    if t == 0x44:  # 'D' Date
        ms = struct.unpack_from("<d", d, pos)[0]
        date = {"$date": None if math.isnan(ms) else int(ms)}
        st.objects.append(date)
        return date, pos + 8
    if t == 0x30:  # '0' null
        return None, pos
    if t == 0x5F:  # '_' undefined
        return UNDEFINED, pos
    if t == 0x54:  # 'T'
        return True, pos
    if t == 0x46:  # 'F'
        return False, pos
    if t == 0x55:  # 'U' uint32
        return _varint_at(d, pos)
    if t == 0x53:  # 'S' UTF-8 string (old writers)
        n, pos = _varint_at(d, pos)
        return d[pos:pos + n].decode("utf-8", "surrogatepass"), pos + n
    if t == 0x5E:  # '^' a reference to an object read before
        i, pos = _varint_at(d, pos)
        return st.objects[i], pos
    if t == 0x41:  # 'A' dense array: length, the elements ('-' a hole), properties, '$', counts
        length, pos = _varint_at(d, pos)
        arr: list = []
        st.objects.append(arr)
        for i in range(length):
            if d[pos] == 0x2D:
                pos += 1
                arr.append(None)  # a hole: JSON.stringify writes null
                continue
            v, pos = _read_element(d, pos, st, i)
            arr.append(v)
        pos = _skip_properties(d, pos, st, 0x24)
        return arr, pos
    if t == 0x61:  # 'a' sparse array: length, index/value pairs, '@', counts
        length, pos = _varint_at(d, pos)
        arr = [None] * length
        st.objects.append(arr)
        while d[pos] != 0x40:
            k, pos = _read(d, pos, st)
            v, pos = _read_element(d, pos, st, k)
            if isinstance(k, int) and 0 <= k < length:
                arr[k] = v
        _, pos = _varint_at(d, pos + 1)
        _, pos = _varint_at(d, pos)
        return arr, pos
    if t in (0x79, 0x78):  # 'y' / 'x' Boolean objects
        st.objects.append(t == 0x79)
        return t == 0x79, pos
    if t == 0x6E:  # 'n' Number object
        v = _number(struct.unpack_from("<d", d, pos)[0])
        st.objects.append(v)
        return v, pos + 8
    if t == 0x73:  # 's' String object: the string takes no id, the wrapper the next one
        v, pos = _read(d, pos, st)
        st.objects.append(v)
        return v, pos
    if t in (0x5A, 0x7A):  # 'Z' BigInt, 'z' BigInt object: the snippet writes the digits as text
        bits, pos = _varint_at(d, pos)
        n = int.from_bytes(d[pos:pos + (bits >> 1)], "little")
        v = _Lossy("BigInt", str(-n if bits & 1 else n))
        if t == 0x7A:
            st.objects.append(v)
        return v, pos + (bits >> 1)
    if t == 0x52:  # 'R' RegExp: pattern, flags
        st.objects.append(None)
        _, pos = _read(d, pos, st)
        _, pos = _varint_at(d, pos)
        return _Lossy("RegExp"), pos
    if t in (0x3B, 0x27):  # ';' Map, "'" Set: entries, then ':' / ',' and a count
        st.objects.append(None)
        end = 0x3A if t == 0x3B else 0x2C
        while d[pos] != end:
            _, pos = _read(d, pos, st)
        _, pos = _varint_at(d, pos + 1)
        return _Lossy("Map" if t == 0x3B else "Set"), pos
    if t == 0x42:  # 'B' ArrayBuffer, perhaps with a view ('V') over it
        n, pos = _varint_at(d, pos)
        pos += n
        st.objects.append(None)
        if d[pos:pos + 1] == b"V":
            pos = _skip_view(d, pos + 1)
        return _Lossy("ArrayBuffer"), pos
    if t == 0x56:  # 'V' a view
        return _Lossy("typed array"), _skip_view(d, pos)
    if t == 0x5C:  # '\\' a host object: Blink's Blob, File, ... in the record
        sub = chr(d[pos]) if pos < len(d) else "?"
        kind = {"b": "Blob", "i": "Blob", "f": "File", "e": "File", "l": "FileList", "L": "FileList"}.get(sub, "host object")
        raise Unsupported(f"a {kind} in the record: blobs are not exported (store their content as text, or leave the "
                          "field out)")
    raise Unsupported(f"unknown V8 serialization tag {chr(t)!r} (0x{t:02x}) at byte {pos - 1}")


def _read_element(d: bytes, pos: int, st: _State, index):
    """An array element: undefined is null in JSON, a lossy value its stand-in."""
    try:
        v, pos = _read(d, pos, st)
    except Unsupported as e:
        e.path.insert(0, str(index))
        raise
    if v is UNDEFINED:
        return None, pos
    if v.__class__ is _Lossy:
        v = v.note(str(index), st.warnings)
    return v, pos


def _skip_properties(d: bytes, pos: int, st: _State, end: int) -> int:
    """A dense array's extra named properties (JSON.stringify ignores them), its end tag and two counts."""
    while d[pos] != end:
        _, pos = _read(d, pos, st)
        _, pos = _read(d, pos, st)
    _, pos = _varint_at(d, pos + 1)
    _, pos = _varint_at(d, pos)
    return pos


def _skip_view(d: bytes, pos: int) -> int:
    pos += 1  # subtag
    for _ in range(3):  # offset, length, flags
        _, pos = _varint_at(d, pos)
    return pos


def _number(v: float):
    """A double as JSON.stringify writes it: whole values as integers, NaN and infinities as null."""
    if v != v or v in (math.inf, -math.inf):
        return None
    if v == int(v) and -9007199254740992 < v < 9007199254740992:
        return int(v)  # also turns -0 into 0, as JavaScript prints it
    return v
