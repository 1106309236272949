"""etl migrate (etl/playbook.py): every step on the committed sample, validation run beside parity."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from etl.core.config import Settings
from etl.playbook import migrate
from etl.check.suites import GX_DIR, copy_context, docs_index
from etl.check.validate import ValidationResult

ROOT = Path(__file__).resolve().parent.parent
STEPS = ["preflight: mysql server", "apply schema", "export", "transform", "load", "parity", "validate + data docs"]


def test_migrate_runs_every_step_in_order_and_records_each_one(mysql_target, tmp_path, monkeypatch):
    proj = tmp_path / "proj"
    (proj / "etl").mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", proj / "pyproject.toml")
    copy_context(ROOT / GX_DIR, proj / GX_DIR)  # runs here never touch the checkout's context
    settings = Settings(proj, mysql_target.uri, 200, proj / "export", proj / "stage", proj / "runtime")
    shown = []
    import etl.mysql.db as db

    resolved = []  # every resolution of the target is a server check: the run makes one

    def counted(*args, **kwargs):
        resolved.append(1)
        return real(*args, **kwargs)

    real = db.resolve_target
    monkeypatch.setattr(db, "resolve_target", counted)

    run = migrate(settings, source=ROOT / "data" / "sample-export", echo=shown.append)

    assert len(resolved) == 1, f"the target was resolved {len(resolved)} times"

    assert run.status == "ok", str(run)
    assert [s.name for s in run.steps] == STEPS and all(s.status == "ok" for s in run.steps)
    parity, validated = run.steps[-2].result, run.steps[-1].result
    assert parity.ok
    assert isinstance(validated, ValidationResult) and validated.ok and validated.warnings  # the sample's findings
    assert docs_index(proj / GX_DIR).is_file()
    # Validation ran beside parity, yet it is reported after it, with its own time.
    assert [str(x) for x in shown if str(x).startswith("==> ")][-2:] == ["==> parity", "==> validate + data docs"]
    assert 0 < run.steps[-1].seconds
    record = json.loads(run.path.read_text())
    assert record["status"] == "ok" and [s["name"] for s in record["steps"]] == STEPS
