"""Run the API with uvicorn on a loopback (or given) address until interrupted."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from ..core.config import Settings
from ..mysql.db import MySQLTarget
from ..core.errors import ConfigError


@dataclass(frozen=True)
class ServeResult:
    url: str
    target: str
    requests: int

    def __str__(self) -> str:
        return f"etl serve on {self.url} (database {self.target}) stopped after {self.requests:,} requests"


def listen_address(settings: Settings, host: str | None, port: int | None) -> tuple[str, int]:
    """--host/--port, else BASE_URL's host and port (default http://127.0.0.1:8700)."""
    parts = urlsplit(settings.base_url)
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"BASE_URL must be an http:// URL, got {settings.base_url!r}")
    return host or parts.hostname or "127.0.0.1", port or parts.port or 8700


def serve(settings: Settings, target: MySQLTarget, *, host: str | None = None, port: int | None = None,
          pool_size: int = 16, echo=print) -> ServeResult:
    import uvicorn

    from .app import config_from, create_app

    cfg = config_from(settings, target, pool_size=pool_size)
    app = create_app(cfg)
    host, port = listen_address(settings, host, port)
    url = f"http://{host}:{port}"
    echo(f"etl serve: {url} over {target} (pool {cfg.pool_size}+{cfg.max_overflow}; OpenAPI at {url}/openapi.json"
         + (f"; test hook ETL_SERVE_STALL={cfg.stall}" if cfg.stall else "") + ")")
    # access_log off: a log line per request costs more than the request; /metrics counts them.
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, server_header=False,
                timeout_keep_alive=30)
    app.state.pool.dispose()
    total = int(sum(app.state.metrics.requests.values()))
    return ServeResult(url, str(target), total)
