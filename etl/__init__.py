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

import sys
from importlib import import_module
from types import ModuleType

PUBLIC: dict[str, str] = {
    # settings
    "load_settings": ".config", "Settings": ".config", "project_root": ".config", "mask_uri": ".config",
    # errors
    "EtlError": ".errors", "ConfigError": ".errors", "ServerError": ".errors", "SchemaError": ".errors",
    "ExportError": ".errors", "TransformError": ".errors", "LoadError": ".errors", "ParityError": ".errors",
    "ValidationError": ".errors",
    # the stores
    "STORES": ".stores", "Store": ".stores", "Column": ".stores",
    # MySQL
    "MySQLTarget": ".db", "apply_schema": ".db", "resolve_target": ".db", "SchemaResult": ".db",
    "LocalServer": ".server", "ServerInfo": ".server",
    # the stages
    "write_sample": ".sample", "SampleResult": ".sample",
    "export": ".export", "export_or_reuse": ".export", "ExportResult": ".export",
    "transform": ".transform", "TransformResult": ".transform", "StoreCounts": ".transform",
    "connect": ".query", "run_sql": ".query", "QueryResult": ".query",
    "load": ".load", "LoadResult": ".load", "TableLoad": ".load",
    "parity": ".parity", "ParityResult": ".parity", "TableParity": ".parity", "RowDiff": ".parity",
    "parity_with_report": ".parity_report", "write_report": ".parity_report",
    "validate": ".validate", "ValidationResult": ".validate", "SuiteOutcome": ".validate", "Check": ".validate",
    "build_docs": ".validate", "DocsResult": ".validate", "gx_root": ".validate", "docs_index": ".validate",
    "copy_context": ".validate",
    # what analysts look at (the notebooks)
    "tickets_per_day": ".profile", "field_shares": ".profile", "rejects_by_reason": ".profile",
    "parity_cells": ".parity_report", "sla_shares": ".aggregates", "notebook_target": ".playbook",
    # the playbook: migrate and its verbs
    "migrate": ".playbook", "RunRecord": ".playbook", "StepRecord": ".playbook", "target": ".playbook",
    "db_up": ".playbook", "db_down": ".playbook", "db_status": ".playbook", "DbStatus": ".playbook",
    "schema_apply": ".playbook", "sample_export": ".playbook", "normalize_export": ".playbook",
    "transform_export": ".playbook", "load_stage": ".playbook", "parity_check": ".playbook",
    "validate_migration": ".playbook",
}

__all__ = sorted([*PUBLIC, "__version__"])


def _version() -> str:
    """The installed distribution's version; in a checkout that was never installed, pyproject's."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("idb2mysql")
    except PackageNotFoundError:
        import tomllib
        from pathlib import Path

        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        return tomllib.loads(pyproject.read_text())["project"]["version"]


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


class _Package(ModuleType):
    """Keeps a public name bound to its function when a submodule of the same name loads.

    Importing `etl.export` (the module) makes Python set the package attribute `export` to
    that module, which would hide the function `export`. Here that attribute is refused for
    public names, so `etl.export` stays the function; the module is still in sys.modules."""

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, ModuleType) and name in PUBLIC and value.__name__ == f"{__name__}.{name}":
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
