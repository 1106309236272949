"""Settings flow one way: flag > environment > .env > default. Paths are rooted at the project."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from dotenv import dotenv_values

from .errors import ConfigError

DEFAULT_CHUNK_SIZE = 200  # the seed's CHUNK_SIZE; the API path's batch size
DEFAULT_BASE_URL = "http://127.0.0.1:8700"  # where `etl serve` listens by default
ENV_NAMES = ("MYSQL_URI", "CHUNK_SIZE", "EXPORT_DIR", "STAGE_DIR", "RUNTIME_DIR", "BASE_URL", "API_TOKEN",
             "API_READ_TOKEN", "API_CORS_ORIGINS")
SECRET_FIELDS = ("api_token", "api_read_token")


def project_root(start: Path | None = None) -> Path:
    """The nearest folder holding pyproject.toml (the checkout), else the working directory."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "etl").is_dir():
            return folder
    return here


@dataclass(frozen=True)
class Settings:
    root: Path
    mysql_uri: str | None  # None: use the project-local server (etl db up)
    chunk_size: int
    export_dir: Path
    stage_dir: Path
    runtime_dir: Path
    base_url: str = DEFAULT_BASE_URL
    # Tokens never reach a repr, a report or a log: repr=False here, masked by public().
    api_token: str | None = field(default=None, repr=False)  # read + write
    api_read_token: str | None = field(default=None, repr=False)  # read only
    # Origins whose pages may call the API from a browser (the app's, for the cutover adapter).
    api_cors_origins: tuple[str, ...] = ()
    base_url_given: bool = False  # BASE_URL was set: the playbook uses that API instead of starting `etl serve`

    def __post_init__(self):
        if self.chunk_size < 1:
            raise ConfigError(f"CHUNK_SIZE must be a positive integer, got {self.chunk_size}")

    def with_(self, **changes) -> "Settings":
        """A copy with the given fields replaced (None values are ignored: an unset flag)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def public(self) -> dict:
        """For reports and logs: paths as text, the URI masked."""
        d = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}
        d["mysql_uri"] = mask_uri(self.mysql_uri) if self.mysql_uri else None
        for name in SECRET_FIELDS:
            d[name] = "***" if d[name] else None
        return d


def load_settings(root: Path | None = None, **flags) -> Settings:
    root = root or project_root()
    dotenv = {k: v for k, v in dotenv_values(root / ".env").items() if v is not None} if (root / ".env").is_file() else {}

    def pick(name: str):
        flag = flags.get(name.lower())
        if flag is not None:
            return flag
        return os.environ.get(name) or dotenv.get(name) or None

    def path(name: str, default: str) -> Path:
        p = Path(pick(name) or default).expanduser()
        return p if p.is_absolute() else (root / p)

    chunk = pick("CHUNK_SIZE")
    try:
        chunk_size = int(chunk) if chunk is not None else DEFAULT_CHUNK_SIZE
    except ValueError:
        raise ConfigError(f"CHUNK_SIZE must be an integer, got {chunk!r}") from None
    return Settings(
        root=root,
        mysql_uri=pick("MYSQL_URI"),
        chunk_size=chunk_size,
        export_dir=path("EXPORT_DIR", "data/export"),
        stage_dir=path("STAGE_DIR", "data/stage"),
        runtime_dir=path("RUNTIME_DIR", "runtime"),
        base_url=(pick("BASE_URL") or DEFAULT_BASE_URL).rstrip("/"),
        api_token=pick("API_TOKEN"),
        api_read_token=pick("API_READ_TOKEN"),
        api_cors_origins=cors_origins(pick("API_CORS_ORIGINS")),
        base_url_given=bool(pick("BASE_URL")),
    )


def cors_origins(text: str | None) -> tuple[str, ...]:
    """API_CORS_ORIGINS: origins separated by commas or spaces, each scheme://host[:port] (no path)."""
    out = []
    for origin in re.split(r"[,\s]+", text or ""):
        if not origin:
            continue
        if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin.rstrip("/")):
            raise ConfigError(f"API_CORS_ORIGINS: {origin!r} is not an origin (scheme://host[:port], no path)")
        out.append(origin.rstrip("/"))
    return tuple(out)


_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]*)(?P<at>@)", re.I)
_SECRET_PARAM = re.compile(r"(?P<k>(?:password|passwd|pwd|token|api_token|secret)=)(?P<v>[^&\s]+)", re.I)


_BEARER = re.compile(r"(?P<k>Bearer\s+)(?P<v>[^\s\"']+)", re.I)


def mask_uri(text: str) -> str:
    """Mask passwords in URIs (and password/token query parameters) anywhere in a text."""
    text = _PASSWORD.sub(lambda m: m["head"] + ("***" if m["pw"] else "") + m["at"], text)
    text = _SECRET_PARAM.sub(lambda m: m["k"] + "***", text)
    return _BEARER.sub(lambda m: m["k"] + "***", text)


def mask_secrets(text: str, *secrets: str | None) -> str:
    """mask_uri, and every occurrence of the given secret values (tokens) replaced by ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return mask_uri(text)
