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
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from ..core.config import mask_uri
from ..core.errors import ValidationError
from ..core.result import Result
from ..mysql.db import MySQLTarget
from ..stage.folder import StageFolder
from . import figures
from .aggregates import AGGREGATES, BY_VIEW, mysql_query
from .expected import EXAMPLES, SourceBreach, collation_notes, describe_row, source_breaches, source_frames, value_sets, view_parameters
from .rules import MYSQL, RULE_STORES, RULES, Rule
from .suites import (CHECKPOINT, DATASOURCE, RESULT_FORMAT, asset_specs, connection_env, docs_index, gx_root, open_context, suite_names,
                     sync_runner, sync_suites)


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


def _mysql_breakers(target: MySQLTarget, rule: Rule, breach: SourceBreach | None) -> tuple[list, list[str]]:
    """(keys, described rows) of the MySQL records breaking a rule: as many as the source's breaking
    records and a few more, enough to tell whether MySQL breaks it anywhere else."""
    limit = len(breach.keys if breach else ()) + EXAMPLES + 1
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT * FROM ({rule.sql(MYSQL)}) AS breaking LIMIT {int(limit)}")
        cols = [c[0] for c in cur.description]
        rows = cur.fetchall()
    return [r[0] for r in rows], [describe_row(dict(zip(cols, r))) for r in rows]


def _view_diff(target: MySQLTarget, view: str, expected: list[str]) -> str:
    """The rows a view returns that the source does not give, and the other way round."""
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute(mysql_query(BY_VIEW[view]))
        got = {r[0] for r in cur.fetchall()}
    extra, missing = sorted(got - set(expected)), sorted(set(expected) - got)
    return (f"{len(extra)} row(s) in MySQL not in the source: {extra[:EXAMPLES]}; "
            f"{len(missing)} row(s) of the source not in MySQL: {missing[:EXAMPLES]}")


def _classify(er, suite: str, target: MySQLTarget, breaches: dict[str, SourceBreach], strict: bool,
              params: dict, diffed: set, fetched: dict) -> Check:
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
    keys, rows = fetched[name].result() if name in fetched else _mysql_breakers(target, rule, breach)
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


def import_gx() -> None:
    """Import what a validation run needs of Great Expectations (seconds of one core: it builds
    parsers and loads SciPy as it loads); a caller with time to spare calls it in a thread before
    validating. Two things it imports but a run never uses are left out or put off:

    * jsonschema, which Great Expectations imports through altair, builds an Earley parser of RFC 3987
      at import when rfc3987-syntax is installed (Jupyter brings it): about 2 s of the ~6 s of CPU this
      import takes, for the "iri" string format, which nothing here checks. When jsonschema is not
      imported yet, the import is made without it (jsonschema then knows no "iri" format, in this
      process); afterwards rfc3987-syntax imports normally.
    * scipy.stats, which one expectation module (KL divergence) imports at its top and only calls:
      about 2 s of CPU (it loads most of SciPy). It is put in place as a lazy module (importlib's
      LazyLoader), which loads on its first attribute access, so whoever does use it gets all of it."""
    import sys

    skip = "jsonschema" not in sys.modules and "rfc3987_syntax" not in sys.modules
    if skip:
        sys.modules["rfc3987_syntax"] = None  # an ImportError to jsonschema, which then leaves the format out
    if "scipy.stats" not in sys.modules:
        _import_lazily("scipy.stats")
    try:
        import great_expectations  # noqa: F401
        import great_expectations.expectations  # noqa: F401
        import great_expectations.render.renderer  # noqa: F401 - the data docs' renderers
    finally:
        if skip and sys.modules.get("rfc3987_syntax", 0) is None:
            del sys.modules["rfc3987_syntax"]


def _import_lazily(name: str) -> None:
    """sys.modules[name] as a module that executes on its first attribute access. It is also set as
    its parent's attribute: `from parent import child` then takes it as it is, where the import
    system would read its __spec__ (Python 3.11) and so load it at once."""
    import importlib
    import importlib.util
    import sys

    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    setattr(importlib.import_module(parent), child, module)


def validate(target: MySQLTarget, stage_dir: Path | StageFolder, *, strict: bool = False, root: Path | None = None,
             docs: bool = True, engine: str = "sql", publish=None, note=None) -> ValidationResult:
    """Run every suite against `target`, with expected values from the stage at `stage_dir`.

    `engine` computes the expectations' results: "sql", one pass per table in MySQL (etl/check/figures.py),
    while the source side runs; "gx", Great Expectations' own checkpoint against MySQL (the
    reference the first is tested against, about 10x slower at 1M tickets). Both store the results
    in the context and build the same data docs. `note(text)` hears of each phase as it ends (progress).

    `publish(ctx, results, result, docs) -> result`, given by a caller above this wing
    (etl.report.datadocs.publish), stores the verdicts with the results and builds the docs instead."""
    from ..core.config import project_root

    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    t0 = time.perf_counter()
    stage_dir = stage_dir.dir if isinstance(stage_dir, StageFolder) else Path(stage_dir)
    root = Path(root) if root else gx_root(project_root())
    with ThreadPoolExecutor(3) as pool:
        # Importing Great Expectations takes seconds of one core (it builds parsers as it loads):
        # it is done beside the source side, as MySQL computes the figures.
        importing = pool.submit(import_gx)
        computing = None
        try:
            StageFolder.open(stage_dir)  # refuse a stage the transform did not finish
            _check_target(target)
            frames = source_frames(stage_dir)
            params = value_sets(frames)
            if engine == "sql":  # MySQL computes while this process reads the source side
                computing = pool.submit(figures.compute, target, params)
            breaches = source_breaches(stage_dir)
            # A rule the source already breaks is a warning when MySQL breaks it only in the same
            # records: those are fetched now, beside the figures, rather than after them (2 s at 1M).
            fetched = {r.name: pool.submit(_mysql_breakers, target, r, breaches[r.name])
                       for r in RULES if r.name in breaches and breaches[r.name].records}
            params.update(view_parameters(frames))
            notes = collation_notes(frames)
            t_source = time.perf_counter() - t0
            if note is not None:
                note(f"validate: source side read ({len(suite_names())} suites' expected values); MySQL computing")

            t1 = time.perf_counter()
            importing.result()
            ctx = open_context(root)
            changed = sync_suites(ctx)
            with connection_env(target):
                try:
                    changed += sync_runner(ctx)
                    plain = docs and publish is None  # Great Expectations' own docs, without the verdicts
                    if computing is not None:
                        computed = computing.result()
                        if note is not None:
                            note("validate: MySQL's figures in; building the results and the data docs")
                    results = (_gx_results(ctx, params, plain) if computing is None
                               else _computed_results(ctx, *computed, params, plain, note))
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
        these = [_classify(er, name, target, breaches, strict, params, diffed, fetched)
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


def _computed_results(ctx, figs: dict, views: dict, params: dict, docs: bool, note=None) -> list:
    """The suites' results from the computed figures, stored in the context as a checkpoint run
    stores them, and the data docs built for them; `note(text)` hears of each suite."""
    note = note or (lambda _: None)
    import datetime

    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    run_id = RunIdentifier(run_time=datetime.datetime.now(datetime.timezone.utc))
    checkpoint = ctx.checkpoints.get(CHECKPOINT)
    assets = asset_specs()
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
        note(f"validate: suite {name} {'passed' if res.success else 'FAILED'} "
             f"({len(results)} of {len(checkpoint.validation_definitions)})")
    if docs:
        note("validate: building the data docs")
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
