"""The package's public surface: every name resolves, lazily, from the one map in etl/__init__.py."""

from __future__ import annotations

import json
import subprocess
import sys
from types import ModuleType

import pytest

import etl

HEAVY = ("duckdb", "polars", "pymysql", "great_expectations", "pyarrow", "connectorx")


def test_importing_etl_loads_no_heavy_library():
    code = f"import sys, etl; etl.__all__; dir(etl); print(__import__('json').dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_every_public_name_resolves():
    assert "__version__" in etl.__all__ and set(etl.PUBLIC) <= set(etl.__all__)
    for name in etl.__all__:
        value = getattr(etl, name)
        assert value is not None and not isinstance(value, ModuleType), name
    assert set(etl.__all__) <= set(dir(etl))
    assert etl.__version__.count(".") >= 1


def test_stage_functions_stay_functions_when_their_modules_load():
    """`etl.export` is the function even after the module that defines it (etl.source.export) is imported."""
    code = ("import etl, etl.source.export, etl.stage.transform, etl.mysql.load, etl.check.parity, etl.check.validate\n"
            "for n in ('export', 'transform', 'load', 'parity', 'validate'):\n"
            "    assert callable(getattr(etl, n)) and getattr(etl, n).__name__ == n, n\n"
            "from etl import transform\n"
            "assert transform.__module__ == 'etl.stage.transform'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_name_raises_attribute_error():
    with pytest.raises(AttributeError, match="no_such_thing"):
        etl.no_such_thing  # noqa: B018
    with pytest.raises(ImportError):
        exec("from etl import no_such_thing", {})


def test_errors_are_one_family():
    for name in ("ConfigError", "ServerError", "SchemaError", "ExportError", "TransformError", "LoadError",
                 "ParityError", "ValidationError"):
        assert issubclass(getattr(etl, name), etl.EtlError)
