"""Validate: Great Expectations suites for the business rules and the UI's aggregations, run against MySQL.

The suites live in a Great Expectations file context under ``expectations/gx/`` as
reviewable JSON (``expectations/gx/expectations/``), one per table (the rules of
etl/check/rules.py) and one per aggregate view (etl/check/aggregates.py). They are generated from those
modules: `sync_suites` and `sync_runner` rewrite a stored object only when the code describes it differently, so an unchanged
checkout is left byte for byte as committed (tests/test_validate.py holds the two together).

Expected values are never written into a suite by hand: value sets and the views' rows are
suite parameters (``{"$PARAMETER": ...}``) computed from the staged source at every run.

A run:
1. the source side, from the stage: expected parameters (Polars) and, for every rule, the
   source records that already break it (DuckDB, the rule's own query);
2. the Great Expectations checkpoint against MySQL (SQL pushed down to the server; the
   connection string reaches Great Expectations through an environment variable, so no
   password is written into its config);
3. each failed expectation is classified: a rule the source keeps but MySQL breaks is a
   failure; one that MySQL breaks only in records the source already breaks is a warning
   (a finding about the source), which fails the run only with ``strict``.
Data docs (HTML) are rebuilt at `docs_index(root)`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from ..core.result import Result
from ..core import duck
from . import figures
from .aggregates import AGGREGATES, BY_VIEW, ROW_COLUMN, expected_rows, group_key, mysql_query
from ..core.config import mask_uri
from ..mysql.db import MySQLTarget
from ..core.errors import ValidationError
from ..core.resources import data_path
from .rules import MYSQL, DUCKDB, RULE_STORES, RULES, Rule
from ..stage.folder import StageFolder, read_stage, stage_path, stage_schema
from ..stage.sessions import carried_counts, finalize_sessions
from ..core.stores import SESSION_COLUMN, SESSION_STORES, UPLOAD_SESSIONS

GX_DIR = "expectations"  # the file context's project root, under the project root
DATASOURCE = "mysql"
BATCH = "all"
CHECKPOINT = "etl_validate"
URL_ENV = "ETL_GX_MYSQL_URL"  # the only way the connection string reaches Great Expectations
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 10}
EXAMPLES = 3


def gx_root(project_root: Path) -> Path:
    return Path(project_root) / GX_DIR


def docs_index(root: Path) -> Path:
    """Where the data docs' front page is written."""
    return Path(root) / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"


# ---------------------------------------------------------------- the suites, from the code


def suite_names() -> tuple[str, ...]:
    return tuple(s.table for s in RULE_STORES) + tuple(a.suite for a in AGGREGATES)


def build_suites() -> list:
    """The expectation suites as etl/check/rules.py and etl/check/aggregates.py describe them."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suites = []
    for store in RULE_STORES:
        exps = []
        for rule in (r for r in RULES if r.store is store):
            kind, kwargs = rule.ge_expectation()
            exps.append(getattr(gxe, kind)(**kwargs, meta={"rule": rule.name}, description=rule.description))
        suites.append(gx.ExpectationSuite(name=store.table, expectations=exps,
                                          meta={"table": store.table, "generated_by": "etl/check/rules.py"}))
    for agg in AGGREGATES:
        # Rows within the expected set and as many of them: the same rows (a view's rows are distinct).
        # Cheaper than ExpectColumnDistinctValuesToEqualSet, which evaluates the view six times.
        exps = [
            gxe.ExpectColumnValuesToBeInSet(column=ROW_COLUMN, value_set={"$PARAMETER": agg.parameter},
                                            meta={"rule": agg.rule, "view": agg.view}, description=agg.description),
            gxe.ExpectTableRowCountToEqual(value={"$PARAMETER": agg.count_parameter},
                                           meta={"rule": agg.rule, "view": agg.view}, description=agg.count_description),
        ]
        suites.append(gx.ExpectationSuite(name=agg.suite, expectations=exps,
                                          meta={"view": agg.view, "generated_by": "etl/check/aggregates.py"}))
    return suites


def _assets() -> dict[str, tuple[str, str]]:
    """asset name -> (type, table or query)."""
    assets = {s.table: ("table", s.table) for s in RULE_STORES}
    assets.update({a.suite: ("query", mysql_query(a)) for a in AGGREGATES})
    return assets


def _suite_content(suite) -> list[dict]:
    out = []
    for e in suite.expectations:
        d = e.configuration.to_json_dict()
        d.pop("id", None)
        out.append(d)
    return out


def open_context(root: Path):
    """The file context under `root` (created on first use), with progress bars off."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    root = Path(root)
    packed = data_path(GX_DIR)
    if not root.exists() and packed.is_dir() and packed != root:  # an installed etl run outside a checkout
        shutil.copytree(packed, root, ignore=shutil.ignore_patterns("uncommitted"))
    root.mkdir(parents=True, exist_ok=True)
    ctx = gx.get_context(mode="file", project_root_dir=str(root))
    bars = ctx.variables.progress_bars  # a ProgressBarsConfig when set in code, a dict when read from the file
    globally = bars.get("globally") if isinstance(bars, dict) else getattr(bars, "globally", None)
    if globally is not False:
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        ctx.variables.save()
    return ctx


def sync_suites(ctx) -> list[str]:
    """Make the stored suites what the code describes; rewrite only those that differ."""
    changed = []
    wanted = build_suites()
    stored = {s.name: s for s in ctx.suites.all()}
    for suite in wanted:
        old = stored.get(suite.name)
        if old is None or _suite_content(old) != _suite_content(suite) or old.meta != suite.meta:
            ctx.suites.add_or_update(suite)
            changed.append(f"suite {suite.name}")
    for name in set(stored) - {s.name for s in wanted}:
        ctx.suites.delete(name)
        changed.append(f"suite {name} removed")
    return changed


def sync_runner(ctx) -> list[str]:
    """Make the data source, its assets, the validation definitions and the checkpoint what the
    code describes. Adding a data source or an asset connects to it: call with the URL set."""
    import great_expectations as gx

    changed = []
    assets = _assets()
    try:
        ds = ctx.data_sources.get(DATASOURCE)
    except (KeyError, LookupError, ValueError):
        ds = None
    have = None
    if ds is not None:
        have = {a.name: (a.type, getattr(a, "table_name", None) if a.type == "table" else getattr(a, "query", None))
                for a in ds.assets}
    if ds is None or str(ds.connection_string) != f"${{{URL_ENV}}}" or have != assets:
        # Validation definitions and the checkpoint point at the assets by id: rebuild them together.
        for cp in ctx.checkpoints.all():
            ctx.checkpoints.delete(cp.name)
        for vd in ctx.validation_definitions.all():
            ctx.validation_definitions.delete(vd.name)
        if ds is not None:
            ctx.data_sources.delete(DATASOURCE)
        ds = ctx.data_sources.add_sql(name=DATASOURCE, connection_string=f"${{{URL_ENV}}}")
        for name, (kind, what) in assets.items():
            asset = ds.add_table_asset(name=name, table_name=what) if kind == "table" else ds.add_query_asset(name=name, query=what)
            asset.add_batch_definition_whole_table(BATCH)
        changed.append("data source")

    vds = {v.name: v for v in ctx.validation_definitions.all()}
    ordered = []
    wanted = [ctx.suites.get(n) for n in suite_names()]
    for suite in wanted:
        vd = vds.get(suite.name)
        if vd is None or vd.suite.name != suite.name or vd.data.data_asset.name != suite.name:
            batch = ctx.data_sources.get(DATASOURCE).get_asset(suite.name).get_batch_definition(BATCH)
            vd = ctx.validation_definitions.add_or_update(
                gx.ValidationDefinition(name=suite.name, data=batch, suite=ctx.suites.get(suite.name)))
            changed.append(f"validation definition {suite.name}")
        ordered.append(vd)
    for name in set(vds) - {s.name for s in wanted}:
        ctx.validation_definitions.delete(name)

    try:
        cp = ctx.checkpoints.get(CHECKPOINT)
    except Exception:  # noqa: BLE001 - Great Expectations raises several kinds for "not found"
        cp = None
    if cp is None or [v.name for v in cp.validation_definitions] != [v.name for v in ordered] \
            or cp.result_format != RESULT_FORMAT or [a.type for a in cp.actions] != ["update_data_docs"]:
        ctx.checkpoints.add_or_update(gx.Checkpoint(
            name=CHECKPOINT, validation_definitions=ordered, result_format=RESULT_FORMAT,
            actions=[gx.checkpoint.UpdateDataDocsAction(name="update_data_docs")]))
        changed.append(f"checkpoint {CHECKPOINT}")
    return changed


# ---------------------------------------------------------------- the source side


def _needed_columns(store) -> list[str]:
    """The columns the parameters are computed from (a 1M-ticket stage is not read whole)."""
    from .aggregates import MONTH

    cols = set(store.categorical) | ({SESSION_COLUMN} & set(store.column_names))
    for agg in AGGREGATES:
        if agg.store is store:
            cols |= {store.time_column if k == MONTH else k for k in agg.keys}
            cols |= {m.column for m in agg.measures if m.column}
    return [c for c in store.column_names if c in cols]


def source_frames(stage_dir: Path) -> dict[str, pl.DataFrame]:
    """The tables as MySQL should hold them after the load: the stage, with upload sessions
    finalized the way the loader finalizes them (counts = rows carrying the id). Only the
    columns expectations read, except for upload sessions (small, and finalized whole)."""
    frames = {}
    for store in RULE_STORES:
        cols = store.column_names if store is UPLOAD_SESSIONS else _needed_columns(store)
        frames[store.name] = (read_stage(stage_dir, store, lazy=True).select(cols).collect()
                              if stage_path(stage_dir, store).is_file()
                              else pl.DataFrame(schema=stage_schema(store)).select(cols))
    counts = carried_counts(frames[s.name] for s in SESSION_STORES if s.name in frames)
    frames[UPLOAD_SESSIONS.name] = finalize_sessions(frames[UPLOAD_SESSIONS.name], counts)  # the loader's own rule
    return frames


def source_parameters(frames: dict[str, pl.DataFrame]) -> dict[str, list]:
    """Every suite parameter: the source's value sets and the views' expected rows."""
    return {**value_sets(frames), **view_parameters(frames)}


def value_sets(frames: dict[str, pl.DataFrame]) -> dict[str, list]:
    """The `in set` rules' parameters: each categorical column's values in the source."""
    params: dict[str, list] = {}
    for rule in RULES:
        if rule.parameter:
            col = rule.expectation[1]["column"]
            values = frames[rule.store.name].get_column(col).drop_nulls().unique().sort().to_list()
            params[rule.parameter] = values
    return params


def view_parameters(frames: dict[str, pl.DataFrame]) -> dict[str, list]:
    """The views' parameters: their rows and row counts as the source gives them."""
    params: dict[str, list] = {}
    for agg in AGGREGATES:
        params[agg.parameter] = expected_rows(agg, frames[agg.store.name])
        params[agg.count_parameter] = len(params[agg.parameter])
    return params


@dataclass(frozen=True)
class SourceBreach:
    """The source records that break one rule."""

    records: int
    keys: frozenset
    examples: tuple[str, ...]


def _describe(row: dict) -> str:
    return ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in row.items())


def source_breaches(stage_dir: Path) -> dict[str, SourceBreach]:
    """Rule name -> the staged records breaking it (for the rules the source can break)."""
    con = duck.connect()
    for store in RULE_STORES:
        path = stage_path(stage_dir, store)
        if path.is_file():
            con.sql(f"CREATE VIEW {store.table} AS SELECT * FROM read_parquet({duck.literal(path)})")
        else:  # an export without this store: an empty table of the right shape
            con.register(store.table, pl.DataFrame(schema=stage_schema(store)).to_arrow())
    out = {}
    for rule in RULES:
        if not rule.source_checked:
            continue
        rel = con.sql(rule.sql(DUCKDB))
        cols = rel.columns
        rows = rel.fetchall()
        out[rule.name] = SourceBreach(len(rows), frozenset(r[0] for r in rows),
                                      tuple(_describe(dict(zip(cols, r))) for r in rows[:EXAMPLES]))
    con.close()
    return out


def collation_notes(frames: dict[str, pl.DataFrame]) -> list[str]:
    """Categorical values MySQL's collation merges (case, trailing spaces): one group in its views."""
    notes = []
    for store in RULE_STORES:
        frame = frames[store.name]
        for col in store.categorical:
            if not store.column(col).is_text:
                continue
            merged = (frame.select(pl.col(col).drop_nulls().unique()).with_columns(group_key(col).alias("__g"))
                      .group_by("__g").agg(pl.col(col).sort()).filter(pl.col(col).list.len() > 1))
            for spellings in merged.get_column(col).to_list():
                notes.append(f"{store.table}.{col}: the source holds {', '.join(repr(s) for s in spellings)}, "
                             "which MySQL's collation groups as one value (the app shows them apart)")
    return notes


# ---------------------------------------------------------------- the result


@dataclass(frozen=True)
class Check:
    suite: str
    rule: str
    description: str
    outcome: str  # passed | failed | warning
    observed: str  # what Great Expectations saw in MySQL ('' when it passed)
    source_records: int | None = None  # source records breaking the rule (None: the source defines it)
    source_examples: tuple[str, ...] = ()
    mysql_examples: tuple[str, ...] = ()  # records breaking it in MySQL (new ones first)
    why: str = ""

    def line(self) -> str:
        text = f"  {self.suite} / {self.rule}: {self.observed}"
        if self.why:
            text += f"\n      {self.why}"
        if self.mysql_examples:
            text += "\n      in MySQL, e.g. " + "; ".join(self.mysql_examples)
        if self.source_records:
            text += f"\n      source: {self.source_records:,} record(s), e.g. " + "; ".join(self.source_examples)
        return text


@dataclass(frozen=True)
class SuiteOutcome:
    name: str
    expectations: int
    failed: int
    warnings: int


@dataclass(frozen=True)
class ValidationResult(Result):
    target: str
    stage_dir: str
    strict: bool
    suites: tuple[SuiteOutcome, ...]
    checks: tuple[Check, ...]
    notes: tuple[str, ...]
    docs_index: str | None
    seconds: float
    source_seconds: float
    gx_seconds: float
    changed: tuple[str, ...] = field(default=())

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.outcome == "failed")

    @property
    def warnings(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.outcome == "warning")

    @property
    def findings(self) -> tuple[Check, ...]:
        """Rules the source export breaks, whatever MySQL does."""
        return tuple(c for c in self.checks if c.source_records)

    @property
    def ok(self) -> bool:
        return not self.failures

    def failed_rules(self) -> set[str]:
        return {c.rule for c in self.failures}

    def frame(self) -> pl.DataFrame:
        """One row per suite and outcome: suite, outcome (passed | warning | failed), expectations."""
        rows = [(s.name, outcome, n) for s in self.suites
                for outcome, n in (("passed", s.expectations - s.failed - s.warnings), ("warning", s.warnings),
                                   ("failed", s.failed))]
        return pl.DataFrame(rows, schema={"suite": pl.String, "outcome": pl.String, "expectations": pl.Int64},
                            orient="row")

    def suite_page(self, suite: str) -> Path | None:
        """The data docs page of a suite's latest run (what it found), else of the suite itself, when
        the docs were built. Results computed from MySQL's figures are stored as validation results,
        so their pages are under validations/<suite>/<run>/."""
        if not self.docs_index:
            return None
        site = Path(self.docs_index).parent
        runs = sorted((site / "validations" / suite).glob("*/*/*.html"), key=lambda p: p.parent.name)
        page = runs[-1] if runs else site / "expectations" / f"{suite}.html"
        return page if page.is_file() else None

    def _repr_html_(self) -> str:
        from ..core.htmlrepr import Link, heading, html_table

        def docs(suite: str):
            page = self.suite_page(suite)
            return Link("data docs", page.resolve().as_uri()) if page else ""

        rows = [(s.name, s.expectations, s.expectations - s.failed - s.warnings, s.warnings, s.failed,
                 "failed" if s.failed else "warning" if s.warnings else "passed", docs(s.name)) for s in self.suites]
        html = html_table(heading(self), ("suite", "expectations", "passed", "warnings", "failed", "verdict", "docs"),
                          rows, [f"note: {n}" for n in self.notes])
        found = [c for c in self.checks if c.outcome != "passed"]
        if found:
            html += html_table("failed expectations and warnings",
                               ("suite", "rule", "outcome", "MySQL", "why", "source records", "examples"),
                               [(c.suite, c.rule, c.outcome, c.observed, c.why, c.source_records,
                                 "; ".join(c.mysql_examples or c.source_examples)) for c in found])
        if self.docs_index:
            html += html_table("", ("data docs",), [(Link(self.docs_index, Path(self.docs_index).resolve().as_uri()),)])
        return html

    def __str__(self) -> str:
        verdict = "passed" if self.ok else "FAILED"
        n = len(self.checks)
        lines = [f"validated {self.target} against {self.stage_dir}: {verdict}, {n} expectations, "
                 f"{len(self.failures)} failed, {len(self.warnings)} warnings{' (strict)' if self.strict else ''} "
                 f"in {self.seconds:.1f} s (source {self.source_seconds:.1f} s, Great Expectations {self.gx_seconds:.1f} s)",
                 f"  {'suite':<28}{'expectations':>13}{'failed':>8}{'warnings':>10}"]
        lines += [f"  {s.name:<28}{s.expectations:>13}{s.failed:>8}{s.warnings:>10}" for s in self.suites]
        if self.failures:
            lines.append("failed expectations:")
            lines += [c.line() for c in self.failures]
        if self.warnings:
            lines.append("warnings: MySQL breaks these rules only where the source export already does "
                         "(--strict makes them fail):")
            lines += [c.line() for c in self.warnings]
        kept = [c for c in self.findings if c.outcome == "passed"]
        if kept:
            lines.append("source findings: the export breaks these rules, MySQL keeps them:")
            lines += [f"  {c.suite} / {c.rule}: source {c.source_records:,} record(s), e.g. "
                      + "; ".join(c.source_examples) for c in kept]
        lines += [f"note: {n}" for n in self.notes]
        if self.changed:
            lines.append(f"updated in the Great Expectations context: {', '.join(self.changed)}")
        if self.docs_index:
            lines.append(f"data docs: {self.docs_index}")
        return "\n".join(lines)


# ---------------------------------------------------------------- the run


@contextmanager
def _connection_env(target: MySQLTarget):
    url = target.engine().url.render_as_string(hide_password=False)
    old = os.environ.get(URL_ENV)
    os.environ[URL_ENV] = url
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(URL_ENV, None)
        else:
            os.environ[URL_ENV] = old


def _check_target(target: MySQLTarget) -> None:
    wanted = {s.table for s in RULE_STORES} | {a.view for a in AGGREGATES}
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()")
        have = {r[0].lower() for r in cur.fetchall()}
    missing = sorted(wanted - have)
    if missing:
        raise ValidationError(f"{target} lacks {', '.join(missing)}: apply the schema and load first "
                              "(`etl schema apply`, `etl load`)")


def _observed(er) -> str:
    r = er.result or {}
    if er.exception_info and er.exception_info.get("raised_exception"):
        return "error: " + mask_uri(str(er.exception_info.get("exception_message", "")).splitlines()[0])[:300]
    for info in (er.exception_info or {}).values():  # per-metric errors
        if isinstance(info, dict) and info.get("raised_exception"):
            return "error: " + mask_uri(str(info.get("exception_message", "")).splitlines()[0])[:300]
    if "unexpected_count" in r:  # Great Expectations gives some counts as floats (1.0)
        text = f"{int(r['unexpected_count']):,} of {r.get('element_count', 0):,} record(s) unexpected"
        if er.expectation_config.type.endswith("in_set"):  # the values are what tells
            text += f", values {sorted(set(map(str, r.get('partial_unexpected_list', []))))[:EXAMPLES]}"
        return text
    if er.expectation_config.type == "unexpected_rows_expectation":
        n = r.get("observed_value")
        return f"{n:,} record(s) unexpected" if isinstance(n, int) else f"observed {n}"
    if er.expectation_config.type == "expect_table_row_count_to_equal":
        return f"{r.get('observed_value')} row(s), the source gives {er.expectation_config.kwargs.get('value')}"
    if "observed_value" in r:
        return f"observed {r['observed_value']}"
    return json.dumps(r, default=str)[:300]


def _mysql_breakers(target: MySQLTarget, rule: Rule, limit: int) -> tuple[list, list[str]]:
    """(keys, described rows) of the MySQL records breaking a rule, at most `limit`."""
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT * FROM ({rule.sql(MYSQL)}) AS breaking LIMIT {int(limit)}")
        cols = [c[0] for c in cur.description]
        rows = cur.fetchall()
    return [r[0] for r in rows], [_describe(dict(zip(cols, r))) for r in rows]


def _view_diff(target: MySQLTarget, view: str, expected: list[str]) -> str:
    """The rows a view returns that the source does not give, and the other way round."""
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute(mysql_query(BY_VIEW[view]))
        got = {r[0] for r in cur.fetchall()}
    extra, missing = sorted(got - set(expected)), sorted(set(expected) - got)
    return (f"{len(extra)} row(s) in MySQL not in the source: {extra[:EXAMPLES]}; "
            f"{len(missing)} row(s) of the source not in MySQL: {missing[:EXAMPLES]}")


def _classify(er, suite: str, target: MySQLTarget, breaches: dict[str, SourceBreach], strict: bool,
              params: dict, diffed: set) -> Check:
    meta = er.expectation_config.meta or {}
    name = meta.get("rule", er.expectation_config.type)
    desc = er.expectation_config.description or ""
    breach = breaches.get(name)
    source = dict(source_records=breach.records, source_examples=breach.examples) if breach else {}
    if er.success:
        return Check(suite, name, desc, "passed", "", **source)
    observed = _observed(er)
    view = meta.get("view")
    if view and view not in diffed and not observed.startswith("error:"):
        diffed.add(view)  # the row-by-row difference, once per view
        observed += f"\n      {_view_diff(target, view, params[BY_VIEW[view].parameter])}"
    rule = next((r for r in RULES if r.name == name), None)
    if rule is None or rule.query is None or observed.startswith("error:"):
        return Check(suite, name, desc, "failed", observed, **source)  # parity, value sets: the source defines them
    known = breach.keys if breach else frozenset()
    keys, rows = _mysql_breakers(target, rule, len(known) + EXAMPLES + 1)
    new = [(k, row) for k, row in zip(keys, rows) if k not in known]
    examples = tuple(row for _, row in new[:EXAMPLES]) or tuple(rows[:EXAMPLES])
    if not breach or new or not keys:
        why = ("the source keeps this rule" if not breach or not breach.records
               else f"{len(new)}{'+' if len(keys) > len(known) else ''} record(s) break it in MySQL but not in the source")
        return Check(suite, name, desc, "failed", observed, mysql_examples=examples, why=why, **source)
    why = "every record breaking it in MySQL already breaks it in the source export"
    return Check(suite, name, desc, "failed" if strict else "warning", observed,
                 why=why + ("; --strict" if strict else ""), **source)


ENGINES = ("sql", "gx")


def _import_gx() -> None:
    import great_expectations  # noqa: F401
    import great_expectations.expectations  # noqa: F401
    import great_expectations.render.renderer  # noqa: F401 - the data docs' renderers


def validate(target: MySQLTarget, stage_dir: Path | StageFolder, *, strict: bool = False, root: Path | None = None,
             docs: bool = True, engine: str = "sql", publish=None) -> ValidationResult:
    """Run every suite against `target`, with expected values from the stage at `stage_dir`.

    `engine` computes the expectations' results: "sql", one pass per table in MySQL (etl/check/figures.py),
    while the source side runs; "gx", Great Expectations' own checkpoint against MySQL (the
    reference the first is tested against, about 10x slower at 1M tickets). Both store the results
    in the context and build the same data docs.

    `publish(ctx, results, result, docs) -> result`, given by a caller above this wing
    (etl.report.datadocs.publish), stores the verdicts with the results and builds the docs instead."""
    from ..core.config import project_root

    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    t0 = time.perf_counter()
    stage_dir = stage_dir.dir if isinstance(stage_dir, StageFolder) else Path(stage_dir)
    root = Path(root) if root else gx_root(project_root())
    with ThreadPoolExecutor(2) as pool:
        # Importing Great Expectations takes seconds of one core (it builds parsers as it loads):
        # it is done beside the source side, as MySQL computes the figures.
        importing = pool.submit(_import_gx)
        computing = None
        try:
            StageFolder.open(stage_dir)  # refuse a stage the transform did not finish
            _check_target(target)
            frames = source_frames(stage_dir)
            params = value_sets(frames)
            if engine == "sql":  # MySQL computes while this process reads the source side
                computing = pool.submit(figures.compute, target, params)
            params.update(view_parameters(frames))
            breaches = source_breaches(stage_dir)
            notes = collation_notes(frames)
            t_source = time.perf_counter() - t0

            t1 = time.perf_counter()
            importing.result()
            ctx = open_context(root)
            changed = sync_suites(ctx)
            with _connection_env(target):
                try:
                    changed += sync_runner(ctx)
                    plain = docs and publish is None  # Great Expectations' own docs, without the verdicts
                    results = (_gx_results(ctx, params, plain) if computing is None
                               else _computed_results(ctx, *computing.result(), params, plain))
                except Exception as e:  # noqa: BLE001 - Great Expectations' or the server's errors: name them, mask the URI
                    who = "Great Expectations" if computing is None else "validation"
                    raise ValidationError(f"{who} could not run: {mask_uri(str(e)).splitlines()[0]}",
                                          store=str(target)) from None
        finally:
            if computing is not None:
                computing.cancel()
    t_gx = time.perf_counter() - t1

    checks, suites, diffed = [], [], set()
    by_suite = {r.suite_name: r for r in results}
    for name in suite_names():
        order = {e.id: i for i, e in enumerate(ctx.suites.get(name).expectations)}  # the suite's order
        these = [_classify(er, name, target, breaches, strict, params, diffed)
                 for er in sorted(by_suite[name].results, key=lambda er: order.get(er.expectation_config.id, 0))]
        checks += these
        suites.append(SuiteOutcome(name, len(these), sum(c.outcome == "failed" for c in these),
                                   sum(c.outcome == "warning" for c in these)))
    index = docs_index(root)
    result = ValidationResult(
        str(target), str(stage_dir), strict, tuple(suites), tuple(checks), tuple(notes),
        str(index) if docs and index.is_file() else None, time.perf_counter() - t0, t_source, t_gx, tuple(changed))
    return publish(ctx, results, result, docs) if publish else result


def _gx_results(ctx, params: dict, docs: bool) -> list:
    if docs:  # the checkpoint: every suite, then the data docs
        run = ctx.checkpoints.get(CHECKPOINT).run(expectation_parameters=params)
        return list(run.run_results.values())
    # the same validations, without rebuilding the HTML
    return [ctx.validation_definitions.get(n).run(expectation_parameters=params, result_format=RESULT_FORMAT)
            for n in suite_names()]


def _computed_results(ctx, figs: dict, views: dict, params: dict, docs: bool) -> list:
    """The suites' results from the computed figures, stored in the context as a checkpoint run
    stores them, and the data docs built for them."""
    import datetime

    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    run_id = RunIdentifier(run_time=datetime.datetime.now(datetime.timezone.utc))
    checkpoint = ctx.checkpoints.get(CHECKPOINT)
    assets = _assets()
    results, keys = [], []
    for vd in checkpoint.validation_definitions:
        name, batch = vd.suite.name, f"{DATASOURCE}-{vd.suite.name}"
        res = figures.suite_result(ctx.suites.get(name), batch, figs, views, params)
        kind, what = assets[name]
        res.meta.update({
            "active_batch_definition": {"batch_identifiers": {}, "data_asset_name": name,
                                        "data_connector_name": "fluent", "datasource_name": DATASOURCE},
            "batch_spec": {"batch_identifiers": {}, "data_asset_name": name, "type": kind,
                           **({"table_name": what, "schema_name": None} if kind == "table" else {"query": what})},
            "great_expectations_version": gx.__version__, "validation_id": vd.id, "checkpoint_id": checkpoint.id,
            "run_id": run_id, "validation_time": run_id.run_time, "batch_parameters": None,
            "computed_by": "etl/check/figures.py"})
        suite_id = ExpectationSuiteIdentifier(name=name)
        key = ValidationResultIdentifier(expectation_suite_identifier=suite_id, run_id=run_id, batch_identifier=batch)
        ctx.validation_results_store.store_validation_results(res, key, suite_id)
        results.append(res)
        keys.append(key)
    if docs:
        ctx.build_data_docs(resource_identifiers=keys)
    return results


def check(result: ValidationResult, echo=None) -> ValidationResult:
    """The result, or ValidationError when it failed (after showing it through `echo`)."""
    if not result.ok:
        if echo:
            echo(result)
        rules = ", ".join(sorted(result.failed_rules()))
        raise ValidationError(f"{len(result.failures)} expectation(s) failed against {result.target}: {rules}")
    return result


@dataclass(frozen=True)
class DocsResult(Result):
    index: str
    suites: tuple[str, ...]
    changed: tuple[str, ...]
    seconds: float

    def __str__(self) -> str:
        extra = f"; updated {', '.join(self.changed)}" if self.changed else ""
        return f"data docs for {len(self.suites)} suites at {self.index} in {self.seconds:.1f} s{extra}"


def build_docs(root: Path | None = None) -> DocsResult:
    """Rebuild the data docs HTML from the suites and the stored validation results."""
    from ..core.config import project_root

    t0 = time.perf_counter()
    root = Path(root) if root else gx_root(project_root())
    ctx = open_context(root)
    changed = sync_suites(ctx)
    ctx.build_data_docs()
    index = docs_index(root)
    if not index.is_file():
        raise ValidationError("Great Expectations wrote no data docs index", file=str(index))
    return DocsResult(str(index), suite_names(), tuple(changed), time.perf_counter() - t0)


def copy_context(src: Path, dest: Path) -> Path:
    """A copy of a file context without its generated results and docs (for tests and benchmarks)."""
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("uncommitted"), dirs_exist_ok=True)
    return dest
