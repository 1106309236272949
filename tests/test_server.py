"""The project-local server (etl.mysql.server.LocalServer) on a real mariadbd."""

from __future__ import annotations

from etl import LocalServer, MySQLTarget


def test_a_server_in_a_relative_folder_starts_and_stops(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # mariadbd resolves a relative datadir against its own working directory
    server = LocalServer("relative/mysql", buffer_pool="128M")
    try:
        info = server.up()
        with MySQLTarget.parse(info.uri).connect(database=False) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone()[0] == 1
        assert (tmp_path / "relative" / "mysql" / "server.json").is_file()
    finally:
        server.down()
    assert server.status() is None
