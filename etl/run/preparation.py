"""Steps 1-3, preparation: the pre-flight checks (every missing prerequisite named at once), the
schema, and the smoke test of the API the later steps talk to."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import PlaybookError, ServerError
from ..core.result import Result
from .context import Context

MIN_PACKET = 4 * 1024 * 1024  # the bulk writer sizes its INSERTs to the packet; below this a large record cannot pass
DISK_FACTOR = 3  # stage Parquet + the load's temporary files + slack, per byte of export
SAMPLE_BYTES_PER_TICKET = 2_000  # a generated sample's export size per ticket, other stores included
# Privileges the schema, the load, the triggers and the flags need on the target database.
PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "INDEX", "CREATE VIEW", "TRIGGER")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"  {'ok' if self.ok else 'MISSING':<8} {self.name:<18} {self.detail}"


@dataclass(frozen=True)
class PreflightResult(Result):
    checks: tuple[Check, ...]
    target: dict | None = None  # MySQLTarget.public(): the password masked

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def __str__(self) -> str:
        return "\n".join(["pre-flight checks:", *map(str, self.checks)])


def _grants_cover(grants: list[str], database: str) -> tuple[set[str], bool]:
    """(privileges granted on the database or globally, whether the grants could be read at all)."""
    import re

    have: set[str] = set()
    for g in grants:
        m = re.match(r"GRANT (.+?) ON (\S+) TO ", g)
        if not m:
            continue
        scope = m.group(2).replace("`", "").replace("\\_", "_")
        if scope in ("*.*", f"{database}.*"):
            privs = {p.strip().upper() for p in m.group(1).split(",")}
            have |= set(PRIVILEGES) if "ALL PRIVILEGES" in privs or "ALL" in privs else privs
    return have, bool(grants)


def _server_checks(ctx: Context) -> list[Check]:
    from ..mysql.db import server_facts

    try:
        target = ctx.target()
        with target.connect(database=False) as conn, conn.cursor() as cur:
            version, infile, packet = server_facts(cur)
            ctx.read_uptime(cur)
            cur.execute("SHOW GRANTS FOR CURRENT_USER()")
            grants = [r[0] for r in cur.fetchall()]
    except ServerError as e:
        return [Check("mysql server", False, str(e).removeprefix("[db] "))]
    checks = [Check("mysql server", True, f"{target} answers, version {version}"),
              Check("local_infile", infile, "ON" if infile else
                    "OFF on the server: the bulk load needs LOAD DATA LOCAL (SET GLOBAL local_infile = 1)"),
              Check("max_allowed_packet", packet >= MIN_PACKET, f"{packet / 1048576:.0f} MB"
                    + ("" if packet >= MIN_PACKET else f", below the {MIN_PACKET // 1048576} MB a large record needs"))]
    have, readable = _grants_cover(grants, target.database)
    missing = [p for p in PRIVILEGES if p not in have]
    checks.append(Check("privileges", not missing or not readable,
                        f"{target.user} lacks {', '.join(missing)} on {target.database}" if missing and readable
                        else "every privilege the run needs" if readable else "could not be read (granted through a role?)"))
    return checks


def _cutover_check(ctx: Context) -> Check | None:
    """A new run may not reload a database the app already writes to (the flags past `off`)."""
    from ..cutover.flags import read_state

    try:
        state = read_state(ctx.target())
    except Exception:  # noqa: BLE001 - no schema yet: no cutover began
        return None
    if state.stage in (None, "off") or ctx.resuming:
        return None
    if ctx.options.restart:
        return Check("cutover", True, f"at stage {state.stage}: rolled back first (--restart)")
    if not ctx.settings.mysql_uri and ctx.source is None:  # `make migrate` again: the tool made all of it
        return Check("cutover", True, f"at stage {state.stage}: rolled back first (the project-local server and "
                     "the generated sample: no app writes there)")
    return Check("cutover", False, f"at stage {state.stage}: the app already writes to this database, and a new migration "
                 "would overwrite what users wrote since. Continue that run (etl migrate --resume), or start over with "
                 "--restart (rolls the flags back to IndexedDB first, recorded)")


def _source_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def preflight(ctx: Context) -> PreflightResult:
    """Every prerequisite, all named at once when any is missing."""
    s = ctx.settings
    checks = _server_checks(ctx)
    if ctx.source is not None:
        src = Path(ctx.source)
        present = src.exists()
        checks.append(Check("export", present, f"{src}" + ("" if present else ": no such file or folder (--from)")))
        need = DISK_FACTOR * _source_bytes(src) if present else 0
    else:
        checks.append(Check("export", True, f"a generated sample of {ctx.sample_tickets:,} tickets"))
        need = DISK_FACTOR * SAMPLE_BYTES_PER_TICKET * ctx.sample_tickets
    where = next(p for p in (Path(s.stage_dir).resolve(), *Path(s.stage_dir).resolve().parents) if p.exists())
    free = shutil.disk_usage(where).free
    checks.append(Check("disk", free >= need, f"{free / 1e9:.1f} GB free at {where}, about {need / 1e9:.2f} GB needed"))
    if s.base_url_given:
        import httpx

        try:
            code = httpx.get(s.base_url.rstrip("/") + "/health", timeout=10).status_code
            checks.append(Check("api", code < 500, f"{s.base_url} /health answered {code}"))
        except httpx.HTTPError as e:
            checks.append(Check("api", False, f"{s.base_url} is not reachable: {type(e).__name__}"))
    if checks[0].ok:
        cut = _cutover_check(ctx)
        if cut is not None:
            checks.append(cut)
    result = PreflightResult(tuple(checks), ctx.target().public() if checks[0].ok else None)
    if not result.ok:
        bad = [c for c in checks if not c.ok]
        raise PlaybookError(f"pre-flight: {len(bad)} prerequisite(s) missing: "
                            + "; ".join(f"{c.name}: {c.detail}" for c in bad))
    again = next((c for c in checks if c.name == "cutover"), None)  # allowed: --restart, or the embedded default
    if again is not None:
        from ..cutover.flags import rollback

        reason = f"etl migrate starts over: {again.detail}"
        ctx.echo(rollback(ctx.target(), reason=reason, runtime_dir=s.runtime_dir))
    return result


def schema(ctx: Context):
    from ..mysql.db import apply_schema

    return apply_schema(ctx.target())


def api_smoke(ctx: Context):
    from ..api.smoke import smoke_test

    result = smoke_test(*ctx.api())
    if not result.ok:
        raise PlaybookError(f"API smoke test failed:\n{result}")
    return result

