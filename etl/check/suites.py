"""The expectation suites and the Great Expectations file context they live in (etl.check.validate):
the suites built from etl/check/rules.py and etl/check/aggregates.py, the context under
``expectations/gx/`` (created on first use; a packed copy for an installed etl), and `sync_suites` /
`sync_runner`, which rewrite a stored object only when the code describes it differently, so an
unchanged checkout is left byte for byte as committed. The connection string reaches Great
Expectations only through the environment variable URL_ENV (`connection_env`), so no password is
written into its config."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from ..core.resources import data_path
from ..mysql.db import MySQLTarget
from .aggregates import AGGREGATES, ROW_COLUMN, mysql_query
from .rules import RULE_STORES, RULES

GX_DIR = "expectations"  # the file context's project root, under the project root
DATASOURCE = "mysql"
BATCH = "all"
CHECKPOINT = "etl_validate"
URL_ENV = "ETL_GX_MYSQL_URL"  # the only way the connection string reaches Great Expectations
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 10}


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


def asset_specs() -> dict[str, tuple[str, str]]:
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
    assets = asset_specs()
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


@contextmanager
def connection_env(target: MySQLTarget):
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


def copy_context(src: Path, dest: Path) -> Path:
    """A copy of a file context without its generated results and docs (for tests and benchmarks)."""
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("uncommitted"), dirs_exist_ok=True)
    return dest
