"""What the commands draw on a terminal while people wait: `live_progress`, the bars of a load (a
bar per table with rows written of planned, rows per second and time left) and the line of the running
step with its news (export, transform, parity, validate, migrate); and `monitor_display`, the live table
of `etl monitor`'s samples (one line per sample when not on a terminal). Nothing is drawn when the
output is piped."""

from __future__ import annotations

import contextlib

from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.text import Text

from .common import err, out


class _RowsPerSecond(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:,.0f} rows/s" if task.speed else "", style="progress.data.speed")


class _ForTables(ProgressColumn):
    """A column drawn for a table's bar only, blank on the line of the running step."""

    def __init__(self, column: ProgressColumn):
        super().__init__()
        self.column = column

    def render(self, task):
        return Text("") if task.fields.get("step") else self.column.render(task)


class _Live:
    """What `live_progress` yields: called as the load's progress (table, rows done, rows planned),
    `step(text)` starts the line of a new step (its elapsed time from zero), `note(text)` says on that
    line what the step is doing now (a store staged, a table compared, a phase of validation)."""

    def __init__(self, bars: Progress):
        self.bars, self.tables, self.line = bars, {}, None

    def __call__(self, table: str, done: int, total: int) -> None:
        if table not in self.tables:
            self.tables[table] = self.bars.add_task(table, total=total)
        self.bars.update(self.tables[table], completed=done, total=total)

    def step(self, text: str) -> None:
        if self.line is None:
            self.line = self.bars.add_task(text, total=None, step=True)
        else:
            self.bars.reset(self.line, description=text, total=None)

    def note(self, text: str) -> None:
        if self.line is None:
            self.step(text)
        else:
            self.bars.update(self.line, description=text)
        self.bars.refresh()  # drawn now: news can be followed by more within one of rich's refreshes


@contextlib.contextmanager
def live_progress(enabled: bool):
    """On stderr, a bar per table the load writes (rows written / planned, rows per second, time left)
    and a line for the running step with its news and elapsed time; or nothing (piped, -q)."""
    if not enabled:
        yield None
        return
    bars = Progress(TextColumn("{task.description:<16}"), BarColumn(), _ForTables(MofNCompleteColumn()),
                    _ForTables(_RowsPerSecond()), TimeElapsedColumn(), _ForTables(TextColumn("eta")),
                    _ForTables(TimeRemainingColumn()), console=err, transient=False)
    with bars:
        yield _Live(bars)


@contextlib.contextmanager
def monitor_display(thresholds):
    """A live table on a terminal; one line per sample otherwise."""
    from rich.live import Live

    from ..api.monitor import rows_for_display  # display only: which metrics, and their state
    from rich.table import Table

    def table(sample):
        t = Table(title=f"sample {sample['sample']} at {sample['time']}")
        for name in ("metric", "value", "threshold", "state"):
            t.add_column(name)
        for row in rows_for_display(sample, thresholds):
            t.add_row(*row, style="bold red" if row[3] == "BREACH" else None)
        return t

    if not out.is_terminal:
        def line(sample):
            api = sample["api"]
            out.print(f"sample {sample['sample']}: api up={api['up']} p95={api['p95_ms']} ms errors={api['error_rate']:.3f}; "
                      f"breaches: {', '.join(b['metric'] for b in sample['breaches']) or 'none'}", highlight=False, markup=False)
        yield line
        return
    with Live(console=out, auto_refresh=False) as live:
        yield lambda sample: live.update(table(sample), refresh=True)
