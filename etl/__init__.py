"""IndexedDB -> MySQL migration toolkit: the names callers (notebooks, tests, benchmarks) use.

    import etl
    settings = etl.load_settings()
    staged = etl.transform(settings.export_dir, settings.stage_dir)

Every name is imported on first use (PEP 562, as sqlglot's optimizer package does), so
`import etl` costs nothing and `etl export` keeps its fast start: DuckDB, Polars, PyMySQL and
Great Expectations load only when a name that needs them is touched.

`PUBLIC` below is the one map of public name -> module (relative to this package). Moving a
module means editing its entries here, nothing else.
"""

from __future__ import annotations

from importlib import import_module

PUBLIC: dict[str, str] = {
    # settings
    "load_settings": ".core.config", "Settings": ".core.config", "project_root": ".core.config", "mask_uri": ".core.config",
    # errors
    "EtlError": ".core.errors", "ConfigError": ".core.errors", "ServerError": ".core.errors", "SchemaError": ".core.errors",
    "ExportError": ".core.errors", "TransformError": ".core.errors", "LoadError": ".core.errors", "ParityError": ".core.errors",
    "ValidationError": ".core.errors", "PlaybookError": ".core.errors", "CutoverError": ".core.errors",
    # the stores
    "STORES": ".core.stores", "Store": ".core.stores", "Column": ".core.stores", "store": ".core.stores",
    # MySQL
    "MySQLTarget": ".mysql.db", "apply_schema": ".mysql.db", "resolve_target": ".mysql.db", "SchemaResult": ".mysql.db",
    "LocalServer": ".mysql.server", "ServerInfo": ".mysql.server",
    # the stages
    "write_sample": ".source.sample", "SampleResult": ".source.sample",
    "export": ".source.export", "export_or_reuse": ".source.export", "ExportResult": ".source.export",
    "transform": ".stage.transform", "TransformResult": ".stage.transform", "StoreCounts": ".stage.transform",
    "ExportFolder": ".source.folder", "StageFolder": ".stage.folder", "read_stage": ".stage.folder",
    "Result": ".core.result",
    "connect": ".report.query", "run_sql": ".report.query", "QueryResult": ".report.query",
    "load": ".mysql.load", "LoadResult": ".mysql.load", "TableLoad": ".mysql.table_loader",
    "parity": ".check.parity", "ParityResult": ".check.parity", "TableParity": ".check.parity_table", "RowDiff": ".check.parity_table",
    "parity_with_report": ".report.parity", "write_report": ".report.parity",
    "validate": ".report.datadocs", "ValidationResult": ".check.validate", "SuiteOutcome": ".check.validate", "Check": ".check.validate",
    "build_docs": ".report.datadocs", "DocsResult": ".check.validate", "gx_root": ".check.suites", "docs_index": ".check.suites",
    "copy_context": ".check.suites",
    # what analysts look at (the notebooks)
    "tickets_per_day": ".stage.profile", "field_shares": ".stage.profile", "rejects_by_reason": ".stage.profile",
    "parity_cells": ".report.parity", "sla_shares": ".check.aggregates", "notebook_target": ".playbook",
    # the playbook: migrate and its verbs
    "migrate": ".playbook", "PlaybookOptions": ".run.context", "RunRecord": ".core.runs", "StepRecord": ".core.runs", "target": ".playbook",
    "db_up": ".playbook", "db_down": ".playbook", "db_status": ".playbook", "DbStatus": ".playbook",
    "schema_apply": ".playbook", "sample_export": ".playbook", "normalize_export": ".playbook",
    "transform_export": ".playbook", "load_stage": ".playbook", "parity_check": ".playbook",
    "validate_migration": ".playbook", "validate_target": ".playbook", "export_source": ".playbook",
    "merge_exports": ".playbook", "query": ".playbook",
    # the cutover: the flags, their history and the dual-read comparisons (notebook 06)
    "flags_list": ".playbook", "flags_history": ".playbook", "cutover_status": ".playbook",
    "FlagState": ".cutover", "FlagHistory": ".cutover", "CutoverStatus": ".cutover", "STAGE_NAMES": ".cutover",
}

__all__ = sorted([*PUBLIC, "__version__"])


def _version() -> str:
    from .core.resources import version

    return version()


def __getattr__(name: str):
    if name == "__version__":
        value = _version()
    elif name in PUBLIC:
        value = getattr(import_module(PUBLIC[name], __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
