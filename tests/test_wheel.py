"""The package as users install it: the wheel in an empty venv, run from a folder outside the checkout.

The schema and the expectation suites travel inside the wheel (etl/core/resources.py), so `etl
schema apply` and `etl migrate` work with no checkout anywhere near."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _uv() -> str:
    uv = ROOT / ".tools" / "bin" / "uv"  # what `make venv` installs
    found = str(uv) if uv.is_file() else shutil.which("uv")
    if not found:
        pytest.fail("uv is needed to build the wheel: run `make venv` (it installs .tools/bin/uv)", pytrace=False)
    return found


@pytest.mark.slow
def test_the_wheel_installed_elsewhere_applies_the_schema_and_migrates(mysql_target, tmp_path):
    uv = _uv()
    dist = tmp_path / "dist"
    subprocess.run([uv, "build", "--wheel", "-o", str(dist), str(ROOT)], check=True, capture_output=True)
    (wheel,) = dist.glob("idb2mysql-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "-q", str(venv)], check=True, capture_output=True)
    subprocess.run([uv, "pip", "install", "-q", str(wheel)], check=True, capture_output=True,
                   env={**os.environ, "VIRTUAL_ENV": str(venv)})
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("EXPORT_DIR", "STAGE_DIR", "RUNTIME_DIR", "VIRTUAL_ENV")}
    env["MYSQL_URI"] = mysql_target.uri
    etl = str(venv / "bin" / "etl")

    def run(*args):
        done = subprocess.run([etl, *args], cwd=work, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"etl {' '.join(args)}: {done.stderr[-2000:]}"
        return done.stdout

    assert "idb2mysql" in run("--version")
    assert "15 tables" in run("schema", "apply")
    out = run("migrate", "--sample-tickets", "300")
    assert "migration run ok" in out
    # it used the packed copies, and wrote only under the folder it was run in
    assert (work / "runtime" / "runs").is_dir() and (work / "expectations" / "gx").is_dir()
    assert not (ROOT / "runtime" / "runs").exists() or all(p.stat().st_mtime < dist.stat().st_mtime
                                                             for p in (ROOT / "runtime" / "runs").iterdir())
