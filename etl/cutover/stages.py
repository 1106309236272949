"""The cutover's stages: LaunchDarkly's six migration stages mapped onto the seed's flags.

Every valid combination of dataSource, writeMode and migrationMode is exactly one stage, so the
flags alone say what browsers do (the adapter needs nothing else) and the stage can always be
derived from them. The seed defines dual-read as "MySQL primary, IndexedDB fallback", so
dual-read is the stage where MySQL is authoritative (LaunchDarkly's *live*). The stage before it,
*shadow*, reads IndexedDB (authoritative) and compares MySQL's answer; the seed has no value for
that, so `migrationMode` is its switch: true means "browsers read the second origin and compare"
(shadow and live, the only stages where both origins are read).

    stage       dataSource  writeMode       migrationMode  reads (served / compared)  writes (first / second)
    off         indexeddb   indexeddb-only  false          indexeddb / -              indexeddb / -
    dual-write  indexeddb   dual-write      false          indexeddb / -              indexeddb / mysql
    shadow      indexeddb   dual-write      true           indexeddb / mysql          indexeddb / mysql
    live        dual-read   dual-write      true           mysql / indexeddb          mysql / indexeddb
    rampdown    mysql       dual-write      false          mysql / -                  mysql / indexeddb
    complete    mysql       mysql-only      false          mysql / -                  mysql / -

Why: the authoritative origin is the one users are served and the one written first (a failed
first write stops the second, so the authority is never behind). IndexedDB stays authoritative
until browsers have shown, in shadow, that MySQL answers the same; from live on MySQL is, and
IndexedDB keeps receiving writes until complete so that a rollback finds it current.
`rollbackMode` = true only ever accompanies *off* (set by a rollback, cleared by the next move).
"""

from __future__ import annotations

from dataclasses import dataclass

IDB, MYSQL = "indexeddb", "mysql"


@dataclass(frozen=True)
class Stage:
    name: str
    data_source: str
    write_mode: str
    migration_mode: bool
    read_from: str  # the authoritative origin: what users are served
    compare_with: str | None  # the other origin, read (sampled) and compared
    write_first: str
    write_second: str | None  # written only when the first write succeeded
    why: str

    @property
    def flags(self) -> dict[str, object]:
        return {"dataSource": self.data_source, "writeMode": self.write_mode, "migrationMode": self.migration_mode}

    @property
    def index(self) -> int:
        return STAGE_NAMES.index(self.name)

    def line(self) -> str:
        reads = self.read_from + (f" (compared with {self.compare_with})" if self.compare_with else "")
        writes = self.write_first + (f" then {self.write_second}" if self.write_second else "")
        return f"{self.name:<11} reads {reads:<32} writes {writes:<22} {self.why}"


STAGES: tuple[Stage, ...] = (
    Stage("off", IDB, "indexeddb-only", False, IDB, None, IDB, None, "before the migration, and after a rollback"),
    Stage("dual-write", IDB, "dual-write", False, IDB, None, IDB, MYSQL, "MySQL starts receiving the app's writes"),
    Stage("shadow", IDB, "dual-write", True, IDB, MYSQL, IDB, MYSQL, "browsers compare MySQL's answers with IndexedDB's"),
    Stage("live", "dual-read", "dual-write", True, MYSQL, IDB, MYSQL, IDB, "MySQL serves (seed: dual-read, MySQL primary)"),
    Stage("rampdown", MYSQL, "dual-write", False, MYSQL, None, MYSQL, IDB, "IndexedDB still written, for a rollback"),
    Stage("complete", MYSQL, "mysql-only", False, MYSQL, None, MYSQL, None, "IndexedDB retired"),
)
STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)
COMPARING = tuple(s.name for s in STAGES if s.compare_with)  # stages where browsers report consistency


def stage(name: str) -> Stage:
    for s in STAGES:
        if s.name == name:
            return s
    raise KeyError(f"unknown stage {name!r}; the stages are {', '.join(STAGE_NAMES)}")


def stage_of(flags: dict) -> Stage | None:
    """The stage the flags describe (None for a combination that is no stage)."""
    for s in STAGES:
        if all(flags.get(k) == v for k, v in s.flags.items()):
            return s
    return None


def table() -> str:
    return "\n".join(s.line() for s in STAGES)
