"""One declarative description of each IndexedDB store and the MySQL table it becomes.

Transform, load, parity and expectations all read these descriptions; none keeps a
column list of its own. ``sql/schema.mysql.sql`` is the one other place columns are
written, and ``tests/test_schema.py`` holds the two together against a live server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Logical kinds a column can have -> how MySQL spells them.
KINDS = ("varchar", "text", "mediumtext", "int", "bigint", "bool", "double", "datetime", "epoch_ms", "json")


def snake(name: str) -> str:
    """camelCase -> snake_case (``handlingDuration1`` -> ``handling_duration1``)."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


@dataclass(frozen=True)
class Column:
    name: str  # target column (snake_case)
    kind: str
    source: str | None  # path inside the record ("duration.rawHours"); None: derived by transform
    length: int | None = None  # varchar length in characters
    nullable: bool = True
    default: str | None = None  # SQL DEFAULT, for NOT NULL columns the app's backend does not write

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"column {self.name}: unknown kind {self.kind!r}")
        if self.kind == "varchar" and not self.length:
            raise ValueError(f"column {self.name}: varchar needs a length")

    @property
    def mysql_type(self) -> str:
        return {
            "varchar": f"VARCHAR({self.length})",
            "text": "TEXT",
            "mediumtext": "MEDIUMTEXT",
            "json": "MEDIUMTEXT",  # MariaDB's JSON is a LONGTEXT alias; MySQL's is binary: store text in both
            "int": "INT",
            "bigint": "BIGINT",
            "bool": "TINYINT(1)",
            # The app's numbers are JavaScript numbers, i.e. IEEE doubles: DOUBLE holds every one
            # exactly, and mysql2 returns it as a number (DECIMAL would come back as text).
            "double": "DOUBLE",
            "datetime": "DATETIME(3)",
            "epoch_ms": "BIGINT",
        }[self.kind]

    @property
    def max_bytes(self) -> int | None:
        """Largest utf8mb4 value the column holds, in bytes (None: bounded by characters only)."""
        return {"text": 65_535, "mediumtext": 16_777_215, "json": 16_777_215}.get(self.kind)

    @property
    def is_time(self) -> bool:
        return self.kind == "datetime"

    @property
    def is_text(self) -> bool:
        return self.kind in ("varchar", "text", "mediumtext", "json")


@dataclass(frozen=True)
class Span:
    """A stored length of time and the two times it measures (read by the expectations).

    The app stores the length as it computed it at upload: `end - start` plus the uploading
    browser's UTC offset, somewhere in `offset_hours` (tickets: openTime was read as local
    time), and 0 when the end is missing or before the start. `formatted`, when given, is the
    same length as `H:MM:SS` text.
    """

    value: str  # column holding the stored length
    start: str
    end: str
    unit: str  # "hours" | "minutes"
    offset_hours: tuple[float, float] = (0.0, 0.0)
    formatted: str | None = None

    def __post_init__(self):
        if self.unit not in ("hours", "minutes"):
            raise ValueError(f"span {self.value}: unit must be hours or minutes, got {self.unit!r}")


SESSION_COLUMN = "upload_session_id"  # the upload session a record came in (see Store.carries_session)


@dataclass(frozen=True)
class Sla:
    """SLA bands the UI shows, fixed at migration time: `sla_<h>h` says whether the stored
    `duration` is within h hours; NULL while the record is not closed (`closed` or the duration missing)."""

    duration: str
    closed: str
    hours: tuple[int, ...]

    def column(self, h: int) -> str:
        return f"sla_{h}h"

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.column(h) for h in self.hours)


@dataclass(frozen=True)
class Store:
    name: str  # IndexedDB object store
    table: str  # MySQL table
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    natural_key: tuple[str, ...]  # what identifies the same real-world record across uploads
    time_column: str | None  # drives the `day` / `month` buckets
    default_buckets: tuple[str, ...]  # parity's grouping when none is asked for
    required: bool = True  # old exports may lack uploadSessions
    # Columns the database maintains itself (DEFAULT / ON UPDATE); never written by load.
    managed: tuple[Column, ...] = field(default=())
    # Columns the UI groups by: expectations hold them to the values the source export holds.
    categorical: tuple[str, ...] = field(default=())
    # Stored lengths of time and the times they measure (expectations check them against each other).
    spans: tuple[Span, ...] = field(default=())
    # Columns an upload sets besides the provenance ones (incidents: importedAt).
    per_upload: tuple[str, ...] = field(default=())
    sla: Sla | None = None

    def __post_init__(self):
        names = [c.name for c in self.columns]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"store {self.name}: columns described twice: {sorted(dupes)}")
        for key in (*self.primary_key, *self.natural_key):
            if key not in names:
                raise ValueError(f"store {self.name}: key column {key!r} is not a column")
        for key in self.primary_key:
            if self.column(key).nullable:
                raise ValueError(f"store {self.name}: primary key column {key!r} must be NOT NULL")
        for b in self.default_buckets:
            self.bucket_column(b)
        sla = (self.sla.duration, self.sla.closed, *self.sla.columns) if self.sla else ()
        for name in (*self.categorical, *self.per_upload, *sla, *(n for sp in self.spans for n in (sp.value, sp.start, sp.end, sp.formatted) if n)):
            if name not in names:
                raise ValueError(f"store {self.name}: column {name!r} named by categorical/spans is not a column")

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"store {self.name} has no column {name!r}")

    @property
    def carries_session(self) -> bool:
        """A record of an upload, naming its upload session (not a session itself, nor a vendor)."""
        return SESSION_COLUMN in self.column_names

    @property
    def upload_metadata(self) -> tuple[str, ...]:
        """Record properties an upload sets: provenance, per_upload, and the primary key when it is
        not the natural identity (tickets' and incidents' ids are new at every upload). Two records
        differing only there are the same record (etl.duplicates)."""
        per_upload = ({c.name for c in provenance()} if self.carries_session else set()) | set(self.per_upload)
        if self.primary_key != self.natural_key:
            per_upload |= set(self.primary_key)
        return tuple(c.source for c in self.columns if c.name in per_upload and c.source)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def bucket_names(self) -> tuple[str, ...]:
        """Every bucket parity may group by: day/month of the time column, or a low-cardinality column."""
        timed = ("day", "month") if self.time_column else ()
        return timed + tuple(c.name for c in self.columns if c.kind in ("varchar", "int", "bool") and c.name not in self.primary_key)

    def bucket_column(self, bucket: str) -> tuple[str, str | None]:
        """(column, truncation) for a bucket name; raises ValueError for names the store does not have."""
        if bucket in ("day", "month") and self.time_column:
            return self.time_column, bucket
        if bucket in self.bucket_names:
            return bucket, None
        raise ValueError(f"store {self.name}: unknown bucket {bucket!r}; choose from {', '.join(self.bucket_names)}")


# ---- builders: keep the descriptions below short and readable -------------------------------

def _col(source: str, kind: str, *, name: str | None = None, **kw) -> Column:
    return Column(name=name or snake(source), kind=kind, source=source, **kw)


def varchar(source: str, length: int, **kw) -> Column:
    return _col(source, "varchar", length=length, **kw)


def text(source: str, **kw) -> Column:
    return _col(source, "text", **kw)


def time(source: str, **kw) -> Column:
    return _col(source, "datetime", **kw)


def number(source: str, **kw) -> Column:
    """A JavaScript number the UI computes with: DOUBLE (see Column.mysql_type)."""
    return _col(source, "double", **kw)


def minutes(source: str) -> Column:
    return number(source)


def duration(source: str) -> tuple[Column, Column]:
    """A `{rawHours, formatted}` object flattened into two columns."""
    return (
        number(f"{source}.rawHours", name=f"{snake(source)}_raw_hours"),
        _col(f"{source}.formatted", "varchar", name=f"{snake(source)}_formatted", length=50),
    )


def provenance(*, with_session: bool = True) -> tuple[Column, ...]:
    # 255: the width the app's backend writes batch and session ids with (domain.md)
    cols = (
        _col("uploadTimestamp", "epoch_ms"),
        varchar("batchId", 255),
        varchar("fileName", 255),
        varchar("fileHash", 128),
    )
    return cols + ((varchar("uploadSessionId", 255),) if with_session else ())


# MySQL's own digest of the described columns (a STORED generated column: see etl/core/digest.py).
ROW_DIGEST = Column("row_digest", "bigint", None)
MANAGED = (
    Column("created_at", "datetime", None, nullable=False),
    Column("updated_at", "datetime", None, nullable=False),
    ROW_DIGEST,
)

N = range(1, 6)
SLA_HOURS = (4, 8, 24)
TICKET_SLA = Sla("duration_raw_hours", "close_time", SLA_HOURS)
# The UTC offsets a browser can have: stored ticket durations exceed close - open by one of them.
BROWSER_OFFSET_HOURS = (-12.0, 14.0)

TICKETS = Store(
    name="tickets",
    table="tickets",
    columns=(
        varchar("id", 64, nullable=False),
        varchar("customerId", 255),
        varchar("name", 255),
        varchar("category", 100),
        text("description"),
        text("cause"),
        text("handling"),
        time("openTime", nullable=False),
        time("closeTime"),
        *duration("duration"),
        time("closeHandling"),
        *duration("handlingDuration"),
        varchar("classification", 255),
        varchar("subClassification", 255),
        varchar("status", 50),
        *(text(f"handling{i}") for i in N),
        *(time(f"closeHandling{i}") for i in N),
        *(c for i in N for c in duration(f"handlingDuration{i}")),
        varchar("openBy", 255),
        varchar("cabang", 128),
        varchar("repClass", 64),
        *provenance(),
        # SLA bands the UI shows, fixed at migration time from the stored duration (NULL: not closed).
        *(Column(c, "bool", None) for c in TICKET_SLA.columns),
    ),
    primary_key=("id",),
    natural_key=("customer_id", "open_time", "open_by"),
    time_column="open_time",
    default_buckets=("day", "cabang", "status", "category"),
    managed=MANAGED,
    categorical=("status", "category", "cabang"),
    sla=TICKET_SLA,
    # Every duration object measures from openTime to its own close time (domain.md).
    spans=tuple(
        Span(f"{d}_raw_hours", "open_time", close, "hours", BROWSER_OFFSET_HOURS, f"{d}_formatted")
        for d, close in (("duration", "close_time"), ("handling_duration", "close_handling"),
                         *((f"handling_duration{i}", f"close_handling{i}") for i in N))
    ),
)

INCIDENTS = Store(
    name="incidents",
    table="incidents",
    columns=(
        varchar("id", 255, nullable=False),
        varchar("noCase", 255),
        varchar("priority", 50),
        varchar("site", 255),
        varchar("ncal", 50),
        varchar("status", 50),
        _col("level", "int"),
        varchar("ts", 255),
        varchar("odpBts", 255),
        time("startTime"),  # nullable: the backend writes incidents without one
        time("startEscalationVendor"),
        time("endTime"),
        minutes("durationMin"),
        minutes("durationVendorMin"),
        text("problem"),
        text("penyebab"),
        text("actionTerakhir"),
        text("note"),
        varchar("klasifikasiGangguan", 255),
        number("powerBefore"),
        number("powerAfter"),
        time("startPause1"),
        time("endPause1"),
        time("startPause2"),
        time("endPause2"),
        minutes("totalDurationPauseMin"),
        minutes("totalDurationVendorMin"),
        minutes("netDurationMin"),
        time("importedAt"),
        *provenance(),
    ),
    primary_key=("id",),
    natural_key=("no_case", "start_time"),
    time_column="start_time",
    default_buckets=("day", "site", "status", "priority"),
    managed=MANAGED,
    categorical=("status", "priority", "site", "level", "klasifikasi_gangguan"),
    per_upload=("imported_at",),
    spans=(
        Span("duration_min", "start_time", "end_time", "minutes"),
        Span("duration_vendor_min", "start_escalation_vendor", "end_time", "minutes"),
    ),
)

CUSTOMERS = Store(
    name="customers",
    table="customers",
    columns=(
        varchar("id", 255, nullable=False),
        varchar("nama", 255),
        varchar("jenisKlien", 100),
        varchar("layanan", 128),
        varchar("kategori", 100),
        *provenance(),
    ),
    primary_key=("id",),
    natural_key=("id",),
    time_column="upload_timestamp",  # customers are monthly snapshots: bucket by the upload's month
    default_buckets=("month", "jenis_klien", "layanan", "kategori"),
    managed=MANAGED,
    categorical=("jenis_klien", "layanan", "kategori"),
)

VENDORS = Store(
    name="vendors",
    table="vendors",
    columns=(
        _col("id", "int", nullable=False),
        varchar("name", 255),
        text("description"),
        varchar("contactPerson", 255),
        varchar("email", 255),
        varchar("phone", 64),
        _col("isActive", "bool"),
        time("createdAt"),
        time("updatedAt"),
    ),
    primary_key=("id",),
    natural_key=("id",),
    time_column="created_at",
    default_buckets=("day",),
    managed=(ROW_DIGEST,),
)

UPLOAD_SESSIONS = Store(
    name="uploadSessions",
    table="upload_sessions",
    columns=(
        varchar("id", 255, nullable=False),  # as wide as the records' upload_session_id
        varchar("fileName", 255),
        varchar("fileHash", 128),
        _col("fileSize", "bigint"),
        _col("uploadTimestamp", "epoch_ms"),
        _col("recordCount", "int"),
        _col("successCount", "int"),
        _col("errorCount", "int"),
        varchar("dataType", 50),
        varchar("status", 50),
        _col("errorLog", "json"),
        # made by transform for legacy records; the backend's own sessions leave it to the default
        Column("reconstructed", "bool", None, nullable=False, default="0"),
    ),
    primary_key=("id",),
    natural_key=("id",),
    time_column="upload_timestamp",
    default_buckets=("day", "data_type", "status"),
    required=False,
    managed=MANAGED,
    categorical=("data_type", "status"),
)

STORES: tuple[Store, ...] = (TICKETS, INCIDENTS, CUSTOMERS, VENDORS, UPLOAD_SESSIONS)
# The stores whose records name an upload session: what sessions are rebuilt from and counted over.
SESSION_STORES: tuple[Store, ...] = tuple(s for s in STORES if s.carries_session)
BY_NAME = {s.name: s for s in STORES}
BY_TABLE = {s.table: s for s in STORES}


def store(name: str) -> Store:
    """Look a store up by IndexedDB store name or by table name."""
    found = BY_NAME.get(name) or BY_TABLE.get(name)
    if found is None:
        raise KeyError(f"unknown store {name!r}; known: {', '.join(BY_NAME)}")
    return found
