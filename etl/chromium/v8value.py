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

The value becomes what JSON.stringify in the export snippet writes (etl/snippet.js): a Date is
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
    """A value the export cannot hold (a Blob or File), or a tag this reader does not know."""


class _Undefined:
    __slots__ = ()

    def __repr__(self):
        return "undefined"


UNDEFINED = _Undefined()
_HOLE = object()


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
    reader = _Reader(data, pos, warnings if warnings is not None else set())
    try:
        return _json(reader.value())
    except (IndexError, struct.error):
        raise ValueError(f"the serialized value ends early (at byte {reader.pos} of {len(data)})") from None


class _Reader:
    def __init__(self, data: bytes, pos: int, warnings: set):
        self.data, self.pos, self.warnings = data, pos, warnings
        self.objects: list = []  # by id, for back references ('^')
        self.path: list[str] = []

    def _varint(self) -> int:
        n, self.pos = varint(self.data, self.pos)
        return n

    def _tag(self) -> int:
        while self.data[self.pos] == 0x00:  # padding (aligns two-byte strings)
            self.pos += 1
        tag = self.data[self.pos]
        self.pos += 1
        return tag

    def _peek(self) -> int:
        p = self.pos
        while self.data[p] == 0x00:
            p += 1
        return self.data[p]

    def _double(self) -> float:
        v = struct.unpack_from("<d", self.data, self.pos)[0]
        self.pos += 8
        return v

    def _bytes(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise IndexError
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def _lossy(self, kind: str, as_null=True):
        where = ".".join(self.path) or "(the record)"
        self.warnings.add(f"{where}: a {kind}, which JSON cannot hold: written as null" if as_null
                          else f"{where}: a {kind}, written as text")

    def value(self):
        t = chr(self._tag())
        if t == "_":
            return UNDEFINED
        if t == "0":
            return None
        if t == "T":
            return True
        if t == "F":
            return False
        if t == "I":
            n = self._varint()
            return (n >> 1) ^ -(n & 1)  # zigzag
        if t == "U":
            return self._varint()
        if t == "N":
            return _number(self._double())
        if t == '"':
            return self._bytes(self._varint()).decode("latin-1")
        if t == "c":
            return self._bytes(self._varint()).decode("utf-16-le", "surrogatepass")
        if t == "S":
            return self._bytes(self._varint()).decode("utf-8", "surrogatepass")
        if t == "^":
            return self.objects[self._varint()]
        if t == "o":
            obj: dict = {}
            self.objects.append(obj)
            self._properties(obj, ord("{"))
            return obj
        if t == "A":
            length = self._varint()
            arr: list = []
            self.objects.append(arr)
            for i in range(length):
                if self._peek() == ord("-"):
                    self.pos += 1
                    arr.append(_HOLE)
                    continue
                self.path.append(str(i))
                arr.append(self.value())
                self.path.pop()
            self._properties({}, ord("$"), extra=2)
            return arr
        if t == "a":
            length = self._varint()
            arr = [_HOLE] * length
            self.objects.append(arr)
            props: dict = {}
            self._properties(props, ord("@"), extra=2)
            for k, v in props.items():
                if k.isdigit() and int(k) < length:
                    arr[int(k)] = v
            return arr
        if t == "D":
            ms = self._double()
            d = {"$date": None if math.isnan(ms) else int(ms)}
            self.objects.append(d)
            return d
        if t in "yx":
            self.objects.append(t == "y")
            return t == "y"
        if t == "n":
            v = _number(self._double())
            self.objects.append(v)
            return v
        if t == "s":
            v = self.value()  # a string takes no id: the wrapper's is the next one
            self.objects.append(v)
            return v
        if t in "Zz":
            v = self._bigint()
            if t == "z":
                self.objects.append(v)
            self._lossy("BigInt", as_null=False)
            return v
        if t == "R":
            self.value()  # pattern
            self._varint()  # flags
            self.objects.append(None)
            self._lossy("RegExp")
            return None
        if t in ";'":
            holder: list = []
            self.objects.append(None)
            end = ord(":") if t == ";" else ord(",")
            while self._peek() != end:
                holder.append(self.value())
            self.pos += 1
            self._varint()
            self._lossy("Map" if t == ";" else "Set")
            return None
        if t == "B":
            self._bytes(self._varint())
            self.objects.append(None)
            if self._peek() == ord("V"):  # a view over it follows
                self.pos += 1
                self._view()
            self._lossy("ArrayBuffer")
            return None
        if t == "V":
            self._view()
            self._lossy("typed array")
            return None
        if t == "\\":  # a host object: Blink's Blob, File, ... in the record
            sub = chr(self.data[self.pos]) if self.pos < len(self.data) else "?"
            kind = {"b": "Blob", "i": "Blob", "f": "File", "e": "File", "l": "FileList", "L": "FileList"}.get(sub, "host object")
            raise Unsupported(f"a {kind} in the record at {'.'.join(self.path) or '(the record)'}: "
                              "blobs are not exported (store their content as text, or leave the field out)")
        raise Unsupported(f"unknown V8 serialization tag {t!r} (0x{ord(t):02x}) at byte {self.pos - 1}")

    def _properties(self, obj: dict, end: int, extra: int = 1) -> None:
        while self._peek() != end:
            key = self.value()
            key = key if isinstance(key, str) else _key_text(key)
            self.path.append(key)
            obj[key] = self.value()
            self.path.pop()
        self.pos += 1
        for _ in range(extra):
            self._varint()

    def _view(self) -> None:
        self._tag()  # subtag
        self._varint()
        self._varint()
        self._varint()  # flags (V8 >= 14)

    def _bigint(self) -> str:
        """As text, as the snippet writes a BigInt: sign bit, then the length of the digits in bytes."""
        bitfield = self._varint()
        n = int.from_bytes(self._bytes(bitfield >> 1), "little")
        return str(-n if bitfield & 1 else n)


def _number(v: float):
    """A double as JSON.stringify writes it: whole values as integers, NaN and infinities as null."""
    if math.isnan(v) or math.isinf(v):
        return None
    if v == int(v) and abs(v) < 2 ** 53:
        return int(v)  # also turns -0 into 0, as JavaScript prints it
    return v


def _key_text(v) -> str:
    return str(v) if isinstance(v, int) else repr(v)


def _json(v):
    """Drop undefined properties; undefined and holes in arrays become null (JSON.stringify's rules)."""
    if isinstance(v, dict):
        return {k: _json(x) for k, x in v.items() if x is not UNDEFINED}
    if isinstance(v, list):
        return [None if x is UNDEFINED or x is _HOLE else _json(x) for x in v]
    return v
