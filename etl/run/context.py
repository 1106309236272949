"""What the steps of one `etl migrate` run share: its options, its `Context` (settings, the target
resolved once, the API started once), a step's description, and `Parts` (a step's several results)."""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..core.config import Settings
from ..core.errors import PlaybookError
from ..core.result import Result

PHASES = ("preparation", "migration", "validation", "cutover", "finalization")


@dataclass(frozen=True)
class PlaybookOptions:
    """How a playbook run measures and decides; the CLI's options, with defaults for a quick run."""

    bench_seconds: float = 5.0
    bench_rate: float = 20.0
    monitor_samples: int = 5  # post-cutover monitor (step 15)
    monitor_interval: float = 2.0
    threshold_error: float = 0.01
    threshold_latency_p95: float = 2000.0  # ms, as `etl monitor`'s default
    per_bucket: int = 1  # records read back through the API per parity bucket (steps 11, 12)
    # ... and at most this many per store, drawn uniformly across the buckets (parity has proven every
    # row; this checks the API's path, whose faults are per field and type, not per bucket)
    verify_max: int = 2000
    min_compared: int = 1000  # records compared in a stage before the next move (or every record of a smaller export)
    restart: bool = False  # a cutover already begun is rolled back before migrating again
    lock_wait: float = 3600.0  # seconds to wait for another run on the same database to end (0: refuse at once)


@dataclass
class Context:
    """What the steps of one run share: settings, the target resolved once, the API started once."""

    settings: Settings
    options: PlaybookOptions
    source: Path | None
    sample_tickets: int
    echo: Callable[[object], None]
    stack: ExitStack
    progress: object = None  # the load's progress callback (table, done, total), with step() and note(), or None
    resuming: bool = False
    run: object = None  # the RunRecord
    breaches: list = field(default_factory=list)  # what the post-cutover monitor saw
    server_uptime: float | None = None  # seconds, when first read (a restart since shows as less)
    uptime_at: float | None = None  # time.monotonic() when server_uptime was read
    to_run: tuple[str, ...] = ()  # the slugs this run runs, in order (set by the runner)
    current: str | None = None  # the slug of the step running now
    _beside: dict = field(default_factory=dict)  # slug -> the Future of its work started early
    _pool: object = None
    _target: object = None
    _api: tuple[str, str] | None = None

    def target(self):
        if self._target is None:
            from ..mysql.db import resolve_target
            from ..mysql.lock import RUN, database_lock

            target = resolve_target(self.settings, start=True)
            # One run per database at a time, from here to the run's end: a second one waits, told by whom.
            run_id = getattr(self.run, "id", None)
            self.stack.enter_context(database_lock(target, f"etl migrate run {run_id}", kind=RUN,
                                                   wait=self.options.lock_wait, waiting=self.echo))
            self._target = target
        return self._target

    def api(self) -> tuple[str, str]:
        """(base URL, write token): BASE_URL with API_TOKEN, else `etl serve` started for this run."""
        if self._api is None:
            if self.settings.base_url_given:
                if not self.settings.api_token:
                    raise PlaybookError("BASE_URL is set but API_TOKEN is not: the playbook's API steps need a write token")
                self._api = (self.settings.base_url.rstrip("/"), self.settings.api_token)
            else:
                from ..api.serve import background

                self._api = self.stack.enter_context(background(self.settings, self.target()))
                self.echo(f"    etl serve started for this run at {self._api[0]} (stopped when the run ends)")
        return self._api

    def stage_now(self) -> str | None:
        """The cutover stage the flags are at now (None before the schema holds them)."""
        from ..cutover.flags import read_state

        return read_state(self.target()).stage

    def start_beside(self, slug: str, work: Callable[[], object]) -> None:
        """Start step `slug`'s work now, in a thread beside the running step (they do not depend on
        each other); step `slug` then takes its result with `taken`. The thread ends with the run."""
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = self.stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix=f"etl-{slug}"))
        self._beside[slug] = self._pool.submit(work)

    def taken(self, slug: str):
        """The Future of step `slug`'s work started beside an earlier step, or None."""
        return self._beside.pop(slug, None)

    def note_for(self, slug: str) -> Callable[[str], None]:
        """`note`, for work that may run beside another step: heard only while `slug` is the step shown."""
        return lambda text: self.note(text) if self.current == slug else None

    def note(self, text: str) -> None:
        """Live news of the running step, on the terminal's step line (nothing when piped or -q)."""
        if hasattr(self.progress, "note"):
            self.progress.note(text)

    def read_uptime(self, cur=None) -> None:
        """The server's uptime now, kept with when it was read (the preflight reads it on its own
        cursor; a run that starts after the preflight, --from-step, reads it when the monitor first needs it)."""
        if cur is None:
            with self.target().connect(database=False) as conn, conn.cursor() as own:
                return self.read_uptime(own)
        cur.execute("SHOW GLOBAL STATUS LIKE 'Uptime'")
        self.server_uptime, self.uptime_at = float(cur.fetchone()[1]), time.monotonic()

    def monitor_thresholds(self):
        """`etl monitor`'s thresholds, with the uptime floor lowered to "not restarted since this run
        first read the uptime": a server the run itself started (or just before it) is young, not restarted."""
        from ..api.monitor import Thresholds

        t = Thresholds(error_rate=self.options.threshold_error, latency_p95_ms=self.options.threshold_latency_p95)
        if self.server_uptime is None:
            try:
                self.read_uptime()
            except Exception:  # noqa: BLE001 - the monitor itself reports a server it cannot read
                pass
        if self.server_uptime is not None:
            since = self.server_uptime + time.monotonic() - self.uptime_at - 5
            return Thresholds(**{**t.__dict__, "min_uptime_s": max(0.0, min(t.min_uptime_s, since))})
        return t


@dataclass(frozen=True)
class Step:
    n: int
    slug: str
    phase: str
    title: str
    run: Callable[[Context], object]
    product: Callable[[Context], str | None] | None = None  # what it leaves behind, to re-check on --resume


@dataclass(frozen=True)
class Parts(Result):
    """A step that made several calls: their results, in order."""

    parts: tuple

    @property
    def ok(self) -> bool:
        return all(getattr(p, "ok", True) for p in self.parts)

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.parts)
