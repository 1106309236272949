"""The run record: what `etl migrate` did, step by step, kept for `etl status`, `etl runs` and the report.

One folder per run, RUNTIME_DIR/runs/<id>/ (id: the UTC start, ``20261207T061005Z``):

    run.json      this record, rewritten (atomically, mode 0600) as each step starts and ends
    report.html   the evidence report of the run (etl.report), self-contained

A record holds each value in its JSON-plain form (`etl.core.result.plain`: a holder of a secret
only as its masked `public()`), and the whole text passes `mask_uri` once more before it is
written, so no password reaches it. A record left at "running" by a process that is gone (SIGKILL,
a power cut) reads as "interrupted". Records from before this layout (RUNTIME_DIR/runs/<id>.json)
are read too.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

from .config import mask_uri
from .process import alive
from .result import plain

RUNS = "runs"
RECORD = "run.json"
REPORT = "report.html"
STATUSES = ("pending", "running", "ok", "failed", "interrupted", "skipped")


def now_text() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def storable(x):
    """A value as a run record holds it: JSON-plain, secrets only in their masked form."""
    if callable(getattr(x, "asdict", None)) and not isinstance(x, type):
        return plain(x.asdict())
    return plain(x)


@dataclass
class StepRecord:
    name: str  # what the step does, as its header says it
    slug: str = ""  # its name on the command line (--until, --only, --from-step)
    n: int = 0  # its number in the playbook (1..18)
    phase: str = ""
    status: str = "pending"  # one of STATUSES
    started_at: str | None = None
    seconds: float = 0.0
    result: object = None  # storable(result)
    error: str | None = None
    product: str | None = None  # a fingerprint of what the step left behind (re-checked by --resume)


@dataclass
class RunRecord:
    id: str
    started_at: str
    settings: dict
    options: dict = field(default_factory=dict)  # how the run was asked for (--until, --resume, ...)
    steps: list[StepRecord] = field(default_factory=list)
    status: str = "running"
    finished_at: str | None = None
    pid: int = field(default_factory=os.getpid)
    resumed_from: str | None = None  # the id of the run this one continues
    dir: Path | None = None

    @property
    def path(self) -> Path:
        return self.dir / RECORD

    @property
    def report_path(self) -> Path:
        return self.dir / REPORT

    def step(self, slug: str) -> StepRecord | None:
        return next((s for s in self.steps if s.slug == slug), None)

    def __str__(self) -> str:
        lines = [f"migration run {self.status}: {len(self.steps)} steps, record at {self.path}"]
        for s in self.steps:
            number = f"[{s.n}] " if s.n else ""
            lines.append(f"  {s.status:<11} {number + s.name:<34} {s.seconds:7.2f} s")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from .htmlrepr import heading, html_table

        return html_table(heading(self), ("step", "status", "seconds", "error"),
                          [(s.name, s.status, round(s.seconds, 2), s.error or "") for s in self.steps])

    def asdict(self) -> dict:
        body = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "dir"}
        body["steps"] = [{f.name: storable(getattr(s, f.name)) for f in fields(s)} for s in self.steps]
        body["settings"] = storable(self.settings)
        body["ok"] = self.status == "ok"
        return plain(body)

    def save(self) -> None:
        """Write the record, private to the user (0600), replacing the old one in one step."""
        self.dir.mkdir(parents=True, exist_ok=True)
        text = mask_uri(json.dumps(self.asdict(), indent=2, ensure_ascii=False))
        tmp = self.path.with_name(f".{RECORD}.tmp-{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o600)  # O_CREAT's mode is cut by the umask only, but an old file keeps its own
        os.replace(tmp, self.path)

    @classmethod
    def from_dict(cls, body: dict, where: Path) -> "RunRecord":
        names = {f.name for f in fields(StepRecord)}
        steps = [StepRecord(**{k: v for k, v in s.items() if k in names}) for s in body.get("steps", [])]
        run = cls(id=body.get("id") or where.stem, started_at=body.get("started_at", ""),
                  settings=body.get("settings") or {}, options=body.get("options") or {}, steps=steps,
                  status=body.get("status", "running"), finished_at=body.get("finished_at"),
                  pid=body.get("pid") or 0, resumed_from=body.get("resumed_from"), dir=where)
        if run.status == "running" and not (run.pid and alive(run.pid)):
            run.status = "interrupted"  # its process is gone without saying so (SIGKILL, power cut)
            for s in run.steps:
                if s.status == "running":
                    s.status = "interrupted"
        return run


def runs_dir(runtime_dir: Path) -> Path:
    return Path(runtime_dir) / RUNS


def new_run(runtime_dir: Path, settings: dict, options: dict | None = None,
            resumed_from: str | None = None) -> RunRecord:
    """A new run's record in a folder of its own (a second run in the same second gets -2, -3 ...)."""
    base = runs_dir(runtime_dir)
    base.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for i in range(1, 1000):
        run_id = stamp if i == 1 else f"{stamp}-{i}"
        try:
            (base / run_id).mkdir()
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(base / stamp)
    return RunRecord(id=run_id, started_at=now_text(), settings=settings, options=dict(options or {}),
                     resumed_from=resumed_from, dir=base / run_id)


def read_run(path: Path) -> RunRecord:
    """The record in a run folder (or an older single-file record). OSError/ValueError when unreadable."""
    path = Path(path)
    file = path / RECORD if path.is_dir() else path
    body = json.loads(file.read_text(encoding="utf-8"))
    if not isinstance(body, dict):
        raise ValueError(f"{file}: not a run record")
    return RunRecord.from_dict(body, path if path.is_dir() else path.with_suffix(""))


def list_runs(runtime_dir: Path) -> list[RunRecord]:
    """Every readable run record, newest first (unreadable ones are skipped)."""
    base = runs_dir(runtime_dir)
    found = []
    if base.is_dir():
        for p in base.iterdir():
            if (p.is_dir() and (p / RECORD).is_file()) or (p.is_file() and p.suffix == ".json"):
                try:
                    found.append(read_run(p))
                except (OSError, ValueError, TypeError):
                    continue
    return sorted(found, key=lambda r: r.id, reverse=True)  # ids are UTC start times


def find_run(runtime_dir: Path, run_id: str | None = None) -> RunRecord | None:
    """The run with this id (or id prefix), or the newest one when no id is given."""
    runs = list_runs(runtime_dir)
    if run_id is None:
        return runs[0] if runs else None
    exact = [r for r in runs if r.id == run_id]
    matches = exact or [r for r in runs if r.id.startswith(run_id)]
    return matches[0] if len(matches) == 1 else None
