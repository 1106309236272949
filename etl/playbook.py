"""The application layer: one verb per command (`etl migrate`'s 18 steps are in etl.run, its runner in etl.run.runner).

The CLI and the notebooks call these functions with settings and options; they hold no logic of
their own. Every verb that talks to MySQL takes an optional `target`: a caller that resolved it
once (a server check, and the local server started when MYSQL_URI is not set) hands it on.
The MySQL client and the stages are imported inside the verbs, so `etl export` starts fast.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from .core.config import Settings, mask_uri
from .core.errors import ConfigError
from .core.result import Result

if TYPE_CHECKING:
    from .mysql.db import MySQLTarget
    from .mysql.server import LocalServer


def local_server(settings: Settings) -> "LocalServer":
    from .mysql.server import LocalServer

    return LocalServer(settings.runtime_dir / "mysql")


def db_up(settings: Settings):
    return local_server(settings).up()


def db_down(settings: Settings):
    return local_server(settings).down()


@dataclass(frozen=True)
class DbStatus(Result):
    configured_uri: str | None  # MYSQL_URI, its password masked
    local: object | None  # the project-local server's ServerInfo, or None

    def __str__(self) -> str:
        lines = []
        if self.configured_uri:
            lines.append(f"MYSQL_URI is set: commands use {self.configured_uri}")
        lines.append(f"project-local server: {self.local}" if self.local else "project-local server: not running")
        return "\n".join(lines)


def db_status(settings: Settings) -> DbStatus:
    return DbStatus(mask_uri(settings.mysql_uri) if settings.mysql_uri else None, local_server(settings).status())


def target(settings: Settings) -> "MySQLTarget":
    """The MySQL every stage talks to: MYSQL_URI, else the local server (started on demand)."""
    from .mysql.db import resolve_target

    return resolve_target(settings, start=True)


def notebook_target(settings: Settings, database: str | None = None, suffix: str = "nb") -> "MySQLTarget":
    """A database of a notebook's own on the server the stages use: `database`, else
    `<configured database>_<suffix>` (created by `apply_schema`). Never the configured database
    itself, so a notebook cannot disturb what `etl migrate` loaded there."""
    base = target(settings)
    name = database or f"{base.database}_{suffix}"
    if name == base.database:
        raise ConfigError(f"a notebook works in a database of its own, not in {base.database}, which migrate uses")
    return replace(base, database=name)


def schema_apply(settings: Settings, *, upgrade_digests: bool = False, upgrade: bool = False, target_=None):
    from .mysql.db import apply_schema

    return apply_schema(target_ or target(settings), upgrade_digests=upgrade_digests, upgrade=upgrade)


def users_add(settings: Settings, username: str, role: str, *, update: bool = False):
    """Create (or with `update`, replace) a user the backend can log in; the password is read from
    ETL_USER_PASSWORD or a prompt, never taken as an argument."""
    from .mysql.users import add_user, check, read_password

    check(username, role)  # before any password is asked
    return add_user(target(settings), username, role, read_password(), update=update)


def sample(out_dir: Path, **options):
    from .source.sample import write_sample

    return write_sample(out_dir, **options)


def snippet(out_file: Path | None = None, *, as_bookmarklet: bool = False):
    """The export snippet as text (or a javascript: URL), or written to `out_file` (a SnippetFile)."""
    from .source.snippet import bookmarklet, snippet_source, write_snippet

    if out_file is not None:
        return write_snippet(out_file, as_bookmarklet=as_bookmarklet)
    return bookmarklet() + "\n" if as_bookmarklet else snippet_source()


def export_source(settings: Settings, source: Path, *, force: bool = False, origin: str | None = None,
                  part_bytes: int | None = None, note: Callable[[str], None] | None = None):
    """`etl export`: check `source` and write settings.export_dir; `note(text)` hears of each phase."""
    from .source.export import export

    return export(source, settings.export_dir, force=force, origin=origin, note=note,
                  **({"part_bytes": part_bytes} if part_bytes else {}))


def merge_exports(sources: Sequence[str], out_dir: Path, *, force: bool = False):
    from .source.merge import merge

    return merge(sources, out_dir, force=force)


def normalize_export(settings: Settings, source: Path):
    """`source` -> settings.export_dir. Re-running with the same, unchanged source reuses the
    export folder (its summary names the source, and the source files' sizes and modification
    times are as they were); anything else replaces it atomically."""
    from .source.export import export_or_reuse

    return export_or_reuse(source, settings.export_dir)


def transform_export(settings: Settings, *, note: Callable[[str], None] | None = None):
    """`etl transform`; `note(text)` hears of each store staged."""
    from .stage.transform import transform

    return transform(settings.export_dir, settings.stage_dir, note=note)


def sample_export(settings: Settings, tickets: int):
    """The generated sample export in RUNTIME_DIR/sample-export (one made earlier with as many tickets is reused)."""
    from .source.sample import sample_or_reuse

    return sample_or_reuse(settings.runtime_dir / "sample-export", tickets)


def query(settings: Settings, sql: str | None, *, mysql: bool = False, shell: bool = False):
    """`etl sql`: a query's result over the stage's views (and MySQL's tables with `mysql`), or
    DuckDB's shell on them (None)."""
    from .report import query as q

    mysql_target = target(settings) if mysql else None
    if shell or not sql:
        q.open_shell(settings.stage_dir, settings.export_dir, settings.runtime_dir, mysql=mysql_target)
        return None
    return q.run_sql(sql, settings.stage_dir, settings.export_dir, mysql=mysql_target)


def load_stage(settings: Settings, *, target_=None, via_api: bool = False, **options):
    """Write the stage into MySQL (chunked, checked, resumable; loading it again writes nothing).
    `options`: batch_rows, method, delete_missing, progress, wait (etl.mysql.load.load). With `via_api`
    the rows go through the API's bulk endpoints at BASE_URL (the seed's step 7), same ledger and checks."""
    if via_api:
        from .api.via_api import load_via_api

        options.pop("method", None)  # the API decides how it writes
        return load_via_api(settings.stage_dir, target_ or target(settings), settings.base_url, settings.api_token,
                            chunk_size=settings.chunk_size, **options)
    from .mysql.load import load

    return load(settings.stage_dir, target_ or target(settings), chunk_size=settings.chunk_size, **options)


def parity_check(settings: Settings, *, src: Path | None = None, buckets: Sequence[str] | None = None,
                 tables: Sequence[str] | None = None, fail_on_mismatch: bool = True, target_=None,
                 note: Callable[[str], None] | None = None):
    """Parity of the stage (or `src`) with MySQL, its reports written under RUNTIME_DIR/parity; with
    `fail_on_mismatch` a mismatch raises ParityError, which stops a run."""
    from .report.parity import parity_with_report

    result = parity_with_report(src or settings.stage_dir, target_ or target(settings), runtime_dir=settings.runtime_dir,
                                buckets=buckets, tables=tables, note=note)
    if fail_on_mismatch:
        result.raise_for_mismatch()
    return result


def validate_target(settings: Settings, *, strict: bool = False, docs: bool = True, target_=None,
                    note: Callable[[str], None] | None = None):
    """The expectation suites against MySQL with expected values from the stage, then the data docs."""
    from .check.suites import gx_root
    from .report.datadocs import validate  # the check's, its verdicts stored for the data docs

    return validate(target_ or target(settings), settings.stage_dir, strict=strict, root=gx_root(settings.root), docs=docs,
                    note=note)


def validate_migration(settings: Settings, echo: Callable[[object], None] = print, *, target_=None):
    """validate_target; a failed expectation raises ValidationError (after showing the result)."""
    from .check.validate import check

    return check(validate_target(settings, target_=target_), echo=echo)


def build_docs(settings: Settings):
    """The data docs from the suites and past results; needs no database."""
    from .check.suites import gx_root
    from .report.datadocs import build_docs as build

    return build(gx_root(settings.root))


def serve_api(settings: Settings, *, host: str | None = None, port: int | None = None, pool_size: int = 16,
              echo: Callable[[object], None] = print):
    """`etl serve`: the migration's API over the target database, until Ctrl-C."""
    from .api.serve import serve

    return serve(settings, target(settings), host=host, port=port, pool_size=pool_size, echo=echo)


def monitor_api(settings: Settings, *, threshold_error: float = 0.01, threshold_latency_p95: float = 2000,
                with_db: bool = True, note: Callable[[str], None] = print, display=None, **options):
    """`etl monitor`: samples of the API's and the database's health. Without a reachable database
    the API alone is watched (`note` says why). `display(thresholds)` gives a context manager whose
    value is called with each sample (the CLI's live table)."""
    import contextlib

    from .api.monitor import Thresholds, monitor
    from .core.errors import ServerError
    from .mysql.db import resolve_target

    mysql_target = None
    if with_db:
        try:
            mysql_target = resolve_target(settings)
        except ServerError as e:
            note(f"note: no database health: {e}")
    thresholds = Thresholds(error_rate=threshold_error, latency_p95_ms=threshold_latency_p95)
    with (display(thresholds) if display else contextlib.nullcontext(None)) as on_sample:
        return monitor(settings.base_url, settings.api_token, mysql_target, settings.runtime_dir, thresholds=thresholds,
                       on_sample=on_sample, **options)


def bench_api(settings: Settings, *, endpoints: Sequence[str] | None = None, threshold_p95: float = 2000,
              threshold_chunk: float = 5.0, threshold_error: float = 0.01, threshold_memory: float = 100, **options):
    """`etl bench` (the seed's perf-bench) against BASE_URL; the report under RUNTIME_DIR/bench."""
    from .api.bench import ENDPOINTS, BenchThresholds, bench

    return bench(settings.base_url, settings.api_token, settings.runtime_dir, endpoints=tuple(endpoints or ENDPOINTS),
                 chunk_size=settings.chunk_size,
                 thresholds=BenchThresholds(threshold_p95, threshold_chunk, threshold_error, threshold_memory), **options)


def adapter(out_file: Path | None = None):
    """The browser adapter (JavaScript a Dexie app includes to obey the flags), or written to `out_file`."""
    from .cutover.adapter import adapter_source, write_adapter

    return write_adapter(out_file) if out_file is not None else adapter_source()


def flags_list(settings: Settings):
    from .cutover import read_state

    return read_state(target(settings))


def flags_set(settings: Settings, assignments: Sequence[str], *, reason: str | None):
    from .cutover import set_flags

    return set_flags(target(settings), list(assignments), reason=reason, runtime_dir=settings.runtime_dir)


def flags_history(settings: Settings, *, limit: int = 50):
    from .cutover import history

    return history(target(settings), limit=limit)


def flags_rollback(settings: Settings, *, reason: str | None = None):
    """Reads and writes back to IndexedDB at once, rollbackMode on: always allowed, recorded."""
    from .cutover import rollback

    return rollback(target(settings), reason=reason, runtime_dir=settings.runtime_dir)


def cutover_move(settings: Settings, name: str | None = None, *, force: bool = False, reason: str | None = None,
                 max_mismatch_rate: float = 0.001, min_compared: int = 1000, bench_max_age_h: float = 24.0,
                 monitor_max_age_h: float = 1.0):
    """Move the cutover to stage `name` (None: the next one), forward only on green guards."""
    from .cutover import Thresholds, advance, move_to

    thresholds = Thresholds(bench_max_age_s=bench_max_age_h * 3600, monitor_max_age_s=monitor_max_age_h * 3600,
                            max_mismatch_rate=max_mismatch_rate, min_compared=min_compared)
    options = dict(force=force, reason=reason, thresholds=thresholds)
    if name is None:
        return advance(settings, target(settings), **options)
    return move_to(settings, target(settings), name=name, **options)


def cutover_status(settings: Settings, *, bucket_limit: int = 20):
    from .cutover import status

    return status(target(settings), bucket_limit=bucket_limit)


# ---------------------------------------------------------------- status, runs and the evidence report (issue 18)


def migrate(settings: Settings, *, source: Path | None = None, sample_tickets: int = 30000,
            echo: Callable[[object], None] = print, until: str | None = None, from_step: str | None = None,
            only: str | None = None, resume: bool = False, progress=None, **options):
    """`etl migrate`: the seed's 18 steps (etl.run), run and recorded by etl.run.runner. `options` are
    etl.run.context.PlaybookOptions' fields (bench_seconds, monitor_samples, restart, ...)."""
    from .run.runner import migrate as run
    from .run.context import PlaybookOptions

    return run(settings, source=source, sample_tickets=sample_tickets, echo=echo, until=until, from_step=from_step,
               only=only, resume=resume, options=PlaybookOptions(**options), progress=progress)


# ---------------------------------------------------------------- status, runs and the evidence report (issue 18)


def status(settings: Settings):
    """`etl status`: the target and whether it connects, export, stage, rejects, ledger, flag stage,
    the last run and the last parity and validation verdicts. Reads only; never raises for a part
    it cannot read."""
    from .status import status as read

    return read(settings)


def runs(settings: Settings, *, limit: int | None = None):
    """`etl runs`: the recorded runs, newest first."""
    from .status import runs as read

    return read(settings, limit=limit)


def report(settings: Settings, run_id: str | None = None, *, open_browser: bool = True):
    """`etl report [RUN]`: rebuild a run's evidence report (no database needed) and open it."""
    from .status import report as build

    return build(settings, run_id, open_browser=open_browser)


# ---------------------------------------------------------------- the data docs: open, serve (issue 19)


def docs_open(settings: Settings):
    """`etl docs --open`: the data docs' index in a browser, or where it is when there is no display."""
    from .check.suites import docs_index, gx_root
    from .report.datadocs import open_docs

    return open_docs(docs_index(gx_root(settings.root)))


def docs_serve(settings: Settings, *, port: int | None = None, echo: Callable[[object], None] = print):
    """`etl docs --serve`: the data docs over HTTP on 127.0.0.1 until Ctrl-C, as `dbt docs serve`."""
    from .check.suites import gx_root
    from .report.datadocs import DEFAULT_PORT, serve_docs

    return serve_docs(gx_root(settings.root), port=DEFAULT_PORT if port is None else port, echo=echo)
