"""Every notebook runs top to bottom, against the test server, with its work files in a temp folder."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom_beside_a_migration(path, mysql_target, tmp_path, monkeypatch):
    """After a migration, the notebook runs in a database and folders of its own: parity of the
    migrated database still passes afterwards."""
    from etl.config import load_settings
    from etl.parity import parity
    from etl.playbook import migrate

    monkeypatch.setenv("MYSQL_URI", mysql_target.uri)  # the kernel inherits the environment
    monkeypatch.setenv("RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("EXPORT_DIR", str(tmp_path / "export"))
    monkeypatch.setenv("STAGE_DIR", str(tmp_path / "stage"))
    settings = load_settings()
    migrate(settings, sample_tickets=400, echo=lambda _: None)
    notebook_db = mysql_target.with_database(f"{mysql_target.database}_notebook")
    try:
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
        assert not errors
        printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
        assert "staged" in printed and "parity" in printed.lower()
        assert notebook_db.database in printed  # it loaded into its own database
        after = parity(settings.stage_dir, mysql_target, report_dir=tmp_path / "parity-after")
        assert after.ok, str(after)
        assert (tmp_path / "runtime" / "notebook" / "stage" / "transform-summary.json").is_file()  # its own folders
    finally:
        with mysql_target.connect(database=False) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{notebook_db.database}`")


def test_notebooks_hold_no_logic():
    """Notebooks call etl: no function or class definitions of their own."""
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert "def " not in cell.source and "class " not in cell.source, path.name
