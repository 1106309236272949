"""The migration playbook: each step a function; `migrate` runs them in order and records the run.

The CLI and the notebooks call these functions; they hold no logic of their own.
"""

from __future__ import annotations

import json
import time
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from .core.config import Settings, mask_uri
from .core.errors import EtlError
from .mysql.db import MySQLTarget, apply_schema, resolve_target
from .mysql.server import LocalServer


def local_server(settings: Settings) -> LocalServer:
    return LocalServer(settings.runtime_dir / "mysql")


def db_up(settings: Settings):
    return local_server(settings).up()


def db_down(settings: Settings):
    return local_server(settings).down()


@dataclass(frozen=True)
class DbStatus:
    configured_uri: str | None
    local: object | None

    def __str__(self) -> str:
        lines = []
        if self.configured_uri:
            lines.append(f"MYSQL_URI is set: commands use {mask_uri(self.configured_uri)}")
        lines.append(f"project-local server: {self.local}" if self.local else "project-local server: not running")
        return "\n".join(lines)


def db_status(settings: Settings) -> DbStatus:
    return DbStatus(settings.mysql_uri, local_server(settings).status())


def target(settings: Settings) -> MySQLTarget:
    """The MySQL every stage talks to: MYSQL_URI, else the local server (started on demand)."""
    return resolve_target(settings, start=True)


def schema_apply(settings: Settings, *, upgrade_digests: bool = False, upgrade: bool = False):
    return apply_schema(target(settings), upgrade_digests=upgrade_digests, upgrade=upgrade)


def normalize_export(settings: Settings, source: Path):
    """`source` -> settings.export_dir. Re-running with the same, unchanged source reuses the
    export folder (its summary names the source, and the source files' sizes and modification
    times are as they were); anything else replaces it atomically."""
    from .source.export import export_or_reuse

    return export_or_reuse(source, settings.export_dir)


def transform_export(settings: Settings):
    from .stage.transform import transform

    return transform(settings.export_dir, settings.stage_dir)


def sample_export(settings: Settings, tickets: int):
    from .source.sample import SampleResult, write_sample

    out = settings.runtime_dir / "sample-export"
    existing = SampleResult.existing(out)
    if existing is not None and existing.tickets == tickets:
        return existing
    return write_sample(out, tickets=tickets)


def load_stage(settings: Settings):
    """Write the stage into MySQL (chunked, checked, resumable; loading it again writes nothing)."""
    from .mysql.load import load

    return load(settings.stage_dir, target(settings), chunk_size=settings.chunk_size)


def parity_check(settings: Settings):
    """Parity of the stage with MySQL; a mismatch raises ParityError, which stops the run."""
    from .report.parity import parity_with_report

    result = parity_with_report(settings.stage_dir, target(settings), runtime_dir=settings.runtime_dir)
    result.raise_for_mismatch()
    return result


def validate_migration(settings: Settings, echo: Callable[[object], None] = print):
    """The expectation suites against MySQL, then the data docs; a failed expectation raises ValidationError."""
    from .check.validate import check, validate_settings

    return check(validate_settings(settings), echo=echo)


# ---------------------------------------------------------------- the run


@dataclass
class StepRecord:
    name: str
    status: str = "pending"
    seconds: float = 0.0
    result: object = None
    error: str | None = None


@dataclass
class RunRecord:
    started_at: str
    settings: dict
    steps: list[StepRecord] = field(default_factory=list)
    status: str = "running"
    path: Path | None = None

    def __str__(self) -> str:
        lines = [f"migration run {self.status}: {len(self.steps)} steps, record at {self.path}"]
        for s in self.steps:
            lines.append(f"  {s.status:<7} {s.name:<28} {s.seconds:7.2f} s")
        return "\n".join(lines)

    def save(self) -> None:
        """Write the record, private to the user (0600). Each value is stored in its safe form:
        an object with public() (a connection target, the settings) is stored as that, other
        dataclasses field by field, each field again in its safe form; never as is."""
        body = {"started_at": self.started_at, "settings": safe(self.settings), "steps": safe(self.steps),
                "status": self.status}
        text = mask_uri(json.dumps(body, indent=2, ensure_ascii=False))
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o600)  # O_CREAT's mode is cut by the umask only, but an old file keeps its own
        os.replace(tmp, self.path)


def safe(x):
    """A value as a run record may hold it (see RunRecord.save)."""
    if hasattr(x, "public") and callable(x.public):
        return safe(x.public())
    if hasattr(x, "asdict") and callable(x.asdict) and not isinstance(x, type):
        return safe(x.asdict())
    if is_dataclass(x) and not isinstance(x, type):
        return {f.name: safe(getattr(x, f.name)) for f in fields(x)}
    if isinstance(x, dict):
        return {str(k): safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [safe(v) for v in x]
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return str(x)


def migrate(settings: Settings, *, source: Path | None = None, sample_tickets: int = 30000,
            echo: Callable[[object], None] = print) -> RunRecord:
    """Run every step in order; stop at the first failure. The run record lands in RUNTIME_DIR/runs."""
    runs = settings.runtime_dir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run = RunRecord(started_at=stamp, settings=settings.public(), path=runs / f"{stamp}.json")

    steps: list[tuple[str, Callable[[], object]]] = [
        ("preflight: mysql server", lambda: target(settings)),
        ("apply schema", lambda: schema_apply(settings)),
    ]
    if source is None:
        steps.append(("generate sample export", lambda: sample_export(settings, sample_tickets)))
        source = settings.runtime_dir / "sample-export"
    # export (issue 4): normalize `source` into settings.export_dir
    steps.append(("export", lambda: normalize_export(settings, source)))
    steps.append(("transform", lambda: transform_export(settings)))
    # load (issue 5)
    steps.append(("load", lambda: load_stage(settings)))
    # parity (issue 6): stops the run on a mismatch
    steps.append(("parity", lambda: parity_check(settings)))
    # validate + data docs (issue 7): failed expectations stop the run; rules the source export
    # already breaks only warn (etl validate --strict makes them fail)
    steps.append(("validate + data docs", lambda: validate_migration(settings, echo)))

    # Parity and validation only read the stage and MySQL: validation runs beside parity (one core
    # each; at 1M tickets they took 8 s + 100 s one after the other) and is reported after it.
    beside = {"parity": "validate + data docs"}
    early: dict[str, Future] = {}
    pool = ThreadPoolExecutor(1)

    def timed(step):
        t0 = time.perf_counter()
        return step(), time.perf_counter() - t0

    for name, step in steps:
        rec = StepRecord(name)
        run.steps.append(rec)
        echo(f"==> {name}")
        if name in beside:
            early[beside[name]] = pool.submit(timed, dict(steps)[beside[name]])
        t0 = time.perf_counter()
        try:
            if name in early:
                rec.result, own = early.pop(name).result()
                t0 = time.perf_counter() - own  # its own seconds, not the wait for parity
            else:
                rec.result = step()
            rec.status = "ok"
            echo(rec.result)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM (etl.errors.Interrupted)
            rec.status, rec.error = "interrupted", "interrupted"
            run.status = "interrupted"
            raise
        except Exception as e:
            rec.status, rec.error = "failed", f"{type(e).__name__}: {e}" if not isinstance(e, EtlError) else str(e)
            run.status = "failed"
            raise
        finally:
            rec.seconds = time.perf_counter() - t0
            run.save()
            if run.status == "failed":
                pool.shutdown(wait=True)  # a step started early finishes before the run is reported failed
    pool.shutdown()
    run.status = "ok"
    run.save()
    return run
