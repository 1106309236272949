"""Schemathesis against `etl serve`'s OpenAPI document: generated requests, valid and not, never a 5xx.

It runs the real `st` command against a real uvicorn server over a real database (the sample loaded),
with the read+write token so the generated requests reach the handlers rather than stop at 401.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from api_helpers import TOKEN, running_api
from etl import export, load, transform

ROOT = Path(__file__).resolve().parent.parent
ST = Path(sys.executable).parent / "st"


def test_no_server_error_for_any_generated_request(schema_target, tmp_path):
    export(ROOT / "data" / "sample-export", tmp_path / "export")
    transform(tmp_path / "export", tmp_path / "stage")
    load(tmp_path / "stage", schema_target)
    with running_api(schema_target, runtime_dir=tmp_path / "runtime") as (url, _):
        done = subprocess.run(
            [str(ST), "run", f"{url}/openapi.json", "--checks", "not_a_server_error", "-H", f"Authorization: Bearer {TOKEN}",
             "--max-examples", "25", "--seed", "16", "--request-timeout", "60", "--generation-deterministic",
             "--report", "junit", "--report-junit-path", str(tmp_path / "junit.xml")],
            capture_output=True, text=True, timeout=1200, cwd=tmp_path,
        )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", out)
    assert counts and counts[1] == counts[2] and int(counts[1]) > 300, out[-2000:]  # every generated case passed
    junit = (tmp_path / "junit.xml").read_text()
    assert 'tests="' in junit and "/api/tickets" in junit and "/api/migration/mismatches" in junit
