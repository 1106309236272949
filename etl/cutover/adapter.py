"""The browser adapter (etl/cutover/adapter.js): the JavaScript a Dexie app includes to obey the flags.

`etl adapter` prints it with its configuration filled in from the one description of each
(the stages of etl.cutover.stages, the stores and columns of etl.stores), so neither is written
twice. The API paths are the app backend's (`/api/tickets`, `/api/upload-sessions`, ...).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from importlib.resources import files
from pathlib import Path

from ..core.result import Result
from ..core.stores import STORES, Store
from .stages import STAGES

PLACEHOLDER = "__ETL_CUTOVER_CONFIG__"
BUCKETS = ("cabang", "status", "category")  # the mismatch contract's buckets besides the day
# Columns the transform fills in where the browser's record has nothing (upload sessions are
# rebuilt for records that have none): NULL in IndexedDB and a value in MySQL is no difference.
FILLED = ("upload_session_id",)


def _store(s: Store) -> dict:
    (key,) = s.primary_key
    return {
        "name": s.name, "table": s.table, "path": "/api/" + s.table.replace("_", "-"),
        "key": key, "keySource": s.column(key).source, "time": s.time_column,
        "buckets": [b for b in BUCKETS if b in s.column_names],
        "filled": [c for c in FILLED if c in s.column_names],
        "columns": [{"name": c.name, "source": c.source, "kind": c.kind} for c in s.columns],
    }


def config() -> dict:
    stages = [{**asdict(s), "flags": s.flags} for s in STAGES]
    return {"stages": stages, "stores": {s.name: _store(s) for s in STORES}}


def adapter_source() -> str:
    text = files("etl.cutover").joinpath("adapter.js").read_text(encoding="utf-8")
    return text.replace(PLACEHOLDER, json.dumps(config(), ensure_ascii=False))


@dataclass(frozen=True)
class AdapterFile(Result):
    path: str
    bytes: int

    def __str__(self) -> str:
        return f"wrote the cutover adapter to {self.path} ({self.bytes:,} bytes): include it with a <script> tag"


def write_adapter(path: Path) -> AdapterFile:
    text = adapter_source()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return AdapterFile(str(path), len(text.encode("utf-8")))


# ---------------------------------------------------------------- the adapter's comparison, in Python
#
# The same representation rules as adapter.js `normalize` / `differingFields` / `buckets`, for
# Python callers that compare a browser's records with the API's rows (etl.api.verify). Values
# are JSON values as an export holds them; a Date is the export's {"$date": ms}, which a browser
# holds as a Date. tests/test_api_playbook_helpers.py runs both on the same tricky values.

TEXT_KINDS = frozenset({"varchar", "text", "mediumtext", "json"})


@dataclass(frozen=True)
class JsDate:
    """A JavaScript Date (the export writes one as {"$date": ms})."""

    ms: float


class _Object:
    """A JavaScript object or array that normalize leaves as it is: === is identity, so it never
    equals a value from the other origin."""

    def __init__(self, value):
        self.value = value

    def __repr__(self) -> str:
        return repr(self.value)


def js_value(v):
    """An export's JSON value as the browser holds it: {"$date": ms} is a Date."""
    if isinstance(v, dict) and len(v) == 1 and "$date" in v and isinstance(v["$date"], (int, float)) \
            and not isinstance(v["$date"], bool):
        return JsDate(float(v["$date"]))
    return v


def get_path(record, path: str):
    """adapter.js `get`: a dotted path into a record; None where JavaScript gives undefined."""
    o = record
    for k in path.split("."):
        if not isinstance(o, dict):
            return None
        o = o.get(k)
    return js_value(o)


_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
            "\u2028\u2029\u202f\u205f\u3000\ufeff"
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_RADIX = re.compile(r"0([xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)")


def js_number(v) -> float:
    """JavaScript's Number(v) for the values a JSON record holds (NaN when it is not a number)."""
    if v is None:
        return 0.0
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, JsDate):
        return v.ms
    if isinstance(v, list):  # String([x]) is String(x), String([]) is ""; longer lists are NaN
        return js_number(v[0] if v and not isinstance(v[0], (list, dict)) else "") if len(v) <= 1 else math.nan
    if isinstance(v, str):
        t = v.strip(_JS_SPACE)
        if t == "":
            return 0.0
        if t in ("Infinity", "+Infinity", "-Infinity"):
            return -math.inf if t[0] == "-" else math.inf
        if _DECIMAL.fullmatch(t):
            return float(t)
        m = _RADIX.fullmatch(t)
        if m:
            return float(int(m[1][1:], {"x": 16, "o": 8, "b": 2}[m[1][0].lower()]))
    return math.nan


def js_number_text(x: float) -> str:
    """JavaScript's String(number) (what JSON.stringify writes for a finite number)."""
    if x != x:
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0"
    if x < 0:
        return "-" + js_number_text(-x)
    mantissa, _, exp = repr(float(x)).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    n = len(whole) + int(exp or 0) if whole != "0" else int(exp or 0) - (len(frac) - len(frac.lstrip("0")))
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    e = n - 1
    return digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if e >= 0 else "-") + str(abs(e))


_SURROGATE = re.compile("[\ud800-\udfff]")


def _js_string(s: str) -> str:
    """JSON.stringify of a string (well-formed: a lone surrogate is escaped)."""
    return _SURROGATE.sub(lambda m: f"\\u{ord(m[0]):04x}", json.dumps(s, ensure_ascii=False))


def canonical(v) -> str:
    """adapter.js `canonical`: JSON text with object keys sorted (in UTF-16 order, as Array.sort does)."""
    if isinstance(v, list):
        return "[" + ",".join(canonical(x) for x in v) + "]"
    if isinstance(v, JsDate):
        return "{}"  # a Date has no own enumerable keys
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: k.encode("utf-16-be", "surrogatepass"))
        return "{" + ",".join(_js_string(k) + ":" + canonical(v[k]) for k in keys) + "}"
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return js_number_text(float(v)) if math.isfinite(v) else "null"
    return _js_string(str(v))


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def js_json_parse(text: str):
    """JSON.parse: numbers are doubles; NaN and Infinity are not JSON."""
    return json.loads(text, parse_int=float, parse_constant=_reject_constant)


_ZONED = re.compile(r"[zZ]|[+-]\d\d:?\d\d$")
_ISO = re.compile(r"(?P<y>[+-]\d{6}|\d{4})(?:-(?P<mo>\d\d)(?:-(?P<d>\d\d))?)?"
                   r"(?:T(?P<h>\d\d):(?P<mi>\d\d)(?::(?P<s>\d\d)(?:\.(?P<f>\d+))?)?)?(?P<z>Z|[+-]\d\d:?\d\d)?")


def js_date_parse(text: str) -> float | None:
    """Date.parse of the ISO forms (date, date-time, Z or +hh:mm); None where it gives NaN.
    Date-only forms are UTC, date-times without a zone local time (the adapter never passes one)."""
    m = _ISO.fullmatch(text)
    if not m or (m["y"] == "-000000"):
        return None
    y, mo, d = int(m["y"]), int(m["mo"] or 1), int(m["d"] or 1)
    h, mi, s = int(m["h"] or 0), int(m["mi"] or 0), int(m["s"] or 0)
    ms = int((m["f"] or "0")[:3].ljust(3, "0"))
    if not (1 <= mo <= 12 and 1 <= d <= 31 and mi <= 59 and s <= 59 and (h < 24 or (h == 24 and mi == s == ms == 0))):
        return None
    if m["h"] is not None and m["z"] is None:
        return None  # local time: the machine's zone; instant() always names one
    days = _days_from_civil(y, mo, 1) + d - 1
    offset = 0
    if m["z"] and m["z"] != "Z":
        oh, om = int(m["z"][1:3]), int(m["z"][-2:])
        if oh > 23 or om > 59:
            return None
        offset = (oh * 60 + om) * (1 if m["z"][0] == "+" else -1)
    t = ((days * 24 + h) * 60 + mi - offset) * 60_000 + s * 1000 + ms
    return float(t) if abs(t) <= 8.64e15 else None


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (any year)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def instant(v):
    """adapter.js `instant`: a time as epoch ms (Date, number, ISO text; zone-less text is UTC)."""
    if isinstance(v, JsDate):
        return v.ms
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip(_JS_SPACE) != "":
        text = v if _ZONED.search(v) else v.replace(" ", "T", 1) + "Z"
        ms = js_date_parse(text)
        return v if ms is None else ms
    return v


def normalize(kind: str, v):
    """adapter.js `normalize`: one value in the form both origins agree on when they hold the same value."""
    if v is None or (v == "" and isinstance(v, str) and kind not in TEXT_KINDS):
        return None
    if kind in ("datetime", "epoch_ms"):
        out = instant(v)
    elif kind == "bool":
        return v is True or (type(v) in (int, float) and v == 1) or v in ("1", "true")
    elif kind in ("double", "int", "bigint"):
        n = js_number(v)
        out = n if math.isfinite(n) else v
    elif kind == "json":
        if isinstance(v, str):
            try:
                return canonical(js_json_parse(v))
            except ValueError:
                return v
        return canonical(v)
    else:
        out = v
    return _Object(out) if isinstance(out, (dict, list, JsDate)) else out


def same(a, b) -> bool:
    """JavaScript's === between two normalized values."""
    if isinstance(a, _Object) or isinstance(b, _Object):
        return False
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


def differing_fields(s: Store, record: dict, row: dict) -> list[str]:
    """adapter.js `differingFields`: the columns whose values differ between a browser's record and an API row."""
    out = []
    for c in s.columns:
        if not c.source:
            continue
        mine = normalize(c.kind, get_path(record, c.source))
        if mine is None and c.name in FILLED:
            continue  # the migration fills it in
        if not same(mine, normalize(c.kind, js_value(row.get(c.name)))):
            out.append(c.name)
    return out


def mismatch_buckets(s: Store, row: dict) -> dict:
    """adapter.js `buckets`: the mismatch report's buckets of a row (day of the time column, and
    cabang / status / category where the store has them)."""
    out = {"day": None, "cabang": None, "status": None, "category": None}
    if s.time_column and row.get(s.time_column) is not None:
        ms = instant(js_value(row[s.time_column]))
        if isinstance(ms, (int, float)) and not isinstance(ms, bool) and math.isfinite(ms):
            out["day"] = (datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ms)).date().isoformat()
    for b in BUCKETS:
        if b in s.column_names and row.get(b) is not None:
            out[b] = _js_text(row[b])[:100]
    return out


def _js_text(v) -> str:
    """String(v) for a JSON value (true, 5, 5.5, text)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return js_number_text(float(v))
    return str(v)


def to_row(s: Store, record: dict) -> dict:
    """adapter.js `toRow` (only where a record has no API row: a missing record's buckets)."""
    row = {}
    for c in s.columns:
        if not c.source:
            continue
        v = get_path(record, c.source)
        if v == "" and isinstance(v, str) and c.kind not in TEXT_KINDS:
            v = None
        elif isinstance(v, JsDate):
            v = _iso(v.ms)
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and c.kind == "datetime":
            v = _iso(v)
        row[c.name] = v
    return row


def _iso(ms: float) -> str | None:
    try:
        t = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ms)
    except OverflowError:
        return None
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
