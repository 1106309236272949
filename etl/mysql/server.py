"""A project-local MySQL-compatible server: its own data directory, socket and loopback port.

Used by `etl db up/down/status` when no MYSQL_URI is given, and by the tests for a
private, throwaway server. It never touches any other server on the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pymysql

from ..core.result import Result
from ..core.errors import ServerError
from ..core.process import alive
from .driver import connect

DATABASE = "helpdesk"  # the database `etl db up` creates and serves
# Settings fit for bulk loads (../shared/limits.md): a buffer pool far above the 128 MB
# default, a large redo log, relaxed flushing (a throwaway migration server), LOCAL INFILE on.
BULK_SETTINGS = (
    "--innodb-buffer-pool-size={pool}",
    "--innodb-log-file-size=512M",
    "--innodb-flush-log-at-trx-commit=2",
    "--max-allowed-packet=256M",
    "--local-infile=1",
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_unicode_ci",
    "--skip-name-resolve",
    "--max-connections=200",
)
INSTALL_HINT = (
    "Install a MySQL-compatible server (Debian: `apt-get install mariadb-server`), "
    "or point MYSQL_URI (tests: ETL_TEST_MYSQL_URI) at a server you have."
)


@dataclass(frozen=True)
class ServerInfo(Result):
    pid: int
    port: int
    socket: str
    datadir: str
    binary: str
    version: str

    @property
    def uri(self) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{DATABASE}"

    def __str__(self) -> str:
        return f"{self.version} (pid {self.pid}) at 127.0.0.1:{self.port}, socket {self.socket}, data {self.datadir}\nURI: {self.uri}"


def _find_binary(install: bool) -> str:
    for name in ("mariadbd", "mysqld"):
        found = shutil.which(name) or (f"/usr/sbin/{name}" if os.access(f"/usr/sbin/{name}", os.X_OK) else None)
        if found:
            return found
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        print("No MySQL-compatible server on this machine: installing mariadb-server with apt-get ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "mariadb-server"]):
            if subprocess.run(cmd, env=env).returncode != 0:
                raise ServerError(f"`{' '.join(cmd)}` failed. {INSTALL_HINT}")
        return _find_binary(install=False)
    raise ServerError(f"no mariadbd or mysqld on the PATH. {INSTALL_HINT}")


def _version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
    return out.split(" for ")[0].replace(binary, "").strip() or out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _connectable(port: int) -> bool:
    try:
        connect(host="127.0.0.1", port=port, user="root", connect_timeout=2).close()
        return True
    except pymysql.err.OperationalError:
        return False


def _initialize(binary: str, version: str, datadir: Path, log) -> None:
    datadir.mkdir(parents=True)
    if "mariadb" in version.lower():
        installer = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        if not installer:
            raise ServerError(f"mariadb-install-db not found next to {binary}. {INSTALL_HINT}")
        cmd = [installer, "--no-defaults", f"--datadir={datadir}", "--user=root",
               "--auth-root-authentication-method=normal", "--skip-test-db"]
    else:  # Oracle MySQL 8
        cmd = [binary, "--no-defaults", "--initialize-insecure", f"--datadir={datadir}", "--user=root"]
    done = subprocess.run(cmd, stdout=log, stderr=log)
    if done.returncode != 0:
        shutil.rmtree(datadir, ignore_errors=True)  # a half-initialized datadir would poison the next try
        raise ServerError(f"initializing {datadir} failed (exit {done.returncode}); see {log.name}")


class LocalServer:
    """The server whose files live under `home` (RUNTIME_DIR/mysql for the project)."""

    def __init__(self, home: Path, *, buffer_pool: str | None = None):
        self.home = Path(home).absolute()  # mariadbd resolves a relative datadir against its own cwd
        self.buffer_pool = buffer_pool or os.environ.get("ETL_MYSQL_BUFFER_POOL", "1G")
        self.state_file = self.home / "server.json"
        self.log_file = self.home / "server.log"

    def status(self) -> ServerInfo | None:
        """The running server, or None (a stale state file is removed)."""
        if not self.state_file.is_file():
            return None
        info = ServerInfo(**json.loads(self.state_file.read_text()))
        if alive(info.pid) and _connectable(info.port):
            return info
        if not alive(info.pid):
            self.state_file.unlink(missing_ok=True)
        return None

    def up(self, *, install: bool = True, timeout: float = 60, port: int | None = None) -> ServerInfo:
        """Start the server (on `port`, or a free one), or return the one already running."""
        running = self.status()
        if running:
            return running
        binary = _find_binary(install)
        version = _version(binary)
        datadir = self.home / "data"
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            if not (datadir / "mysql").is_dir():
                shutil.rmtree(datadir, ignore_errors=True)
                _initialize(binary, version, datadir, log)
            port = port or _free_port()
            sock = self.home / "mysqld.sock"
            cmd = [binary, "--no-defaults", f"--datadir={datadir}", f"--socket={sock}", f"--port={port}",
                   "--bind-address=127.0.0.1", "--user=root", f"--pid-file={self.home / 'mysqld.pid'}",
                   f"--log-error={self.log_file}",
                   *(s.format(pool=self.buffer_pool) for s in BULK_SETTINGS)]
            proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        info = ServerInfo(pid=proc.pid, port=port, socket=str(sock), datadir=str(datadir), binary=binary, version=version)
        deadline = time.monotonic() + timeout
        while not _connectable(port):
            if proc.poll() is not None:
                raise ServerError(f"{binary} exited with {proc.returncode} while starting; see {self.log_file}")
            if time.monotonic() > deadline:
                proc.terminate()
                raise ServerError(f"{binary} did not accept connections within {timeout:.0f} s; see {self.log_file}")
            time.sleep(0.1)
        with connect(host="127.0.0.1", port=port, user="root") as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{DATABASE}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        self.state_file.write_text(json.dumps(asdict(info), indent=2))
        return info

    def down(self, timeout: float = 60) -> ServerInfo | None:
        """Stop the server cleanly (SIGTERM); returns what was stopped, or None."""
        if not self.state_file.is_file():
            return None
        info = ServerInfo(**json.loads(self.state_file.read_text()))
        if alive(info.pid):
            os.kill(info.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while alive(info.pid):
                try:  # reap it when it is our own child
                    os.waitpid(info.pid, os.WNOHANG)
                except ChildProcessError:
                    pass
                if time.monotonic() > deadline:
                    raise ServerError(f"server pid {info.pid} did not stop within {timeout:.0f} s")
                time.sleep(0.1)
        self.state_file.unlink(missing_ok=True)
        return info

    def restart(self) -> ServerInfo:
        """Stop and start again on the same port (fault tests: a server restart mid-load)."""
        info = self.down()
        if info is None:
            return self.up()
        return self.up(port=info.port)
