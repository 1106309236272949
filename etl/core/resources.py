"""The project's data files (sql/, the expectation suites): the copy packed inside the wheel when
etl is installed, else the checkout's own (an editable install, the tests)."""

from __future__ import annotations

from importlib import metadata
from importlib.resources import files
from pathlib import Path

DIST = "idb2mysql"  # the distribution's name in pyproject.toml


def data_path(*parts: str) -> Path:
    """`data_path("sql", "schema.mysql.sql")`: where that file or folder of the project is."""
    packed = files("etl").joinpath("_data", *parts)  # pyproject's force-include puts them there
    if packed.is_file() or packed.is_dir():
        return Path(str(packed))
    return Path(__file__).resolve().parents[2].joinpath(*parts)


def version() -> str:
    try:
        return metadata.version(DIST)
    except metadata.PackageNotFoundError:  # a checkout that was never installed
        import tomllib

        return tomllib.loads(data_path("pyproject.toml").read_text())["project"]["version"]
