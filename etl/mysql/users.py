"""The first admin of the app's backend, created safely: `etl users add NAME --role "super admin"`.

The backend owns `users` (sql/schema.mysql.sql) and logs a user in by comparing the password
with a bcrypt hash. The browsers' users are not migrated, so after the cutover an operator
needs one account to start with. The password never passes through argv (visible in `ps` and
shell history): it comes from an interactive prompt, asked twice, or from ETL_USER_PASSWORD
(for scripts). It is never printed, logged or written anywhere but as its hash: `$2b$`, the
prefix Node's bcrypt and bcryptjs verify, at cost 12 (the backend needs at least 10).

An existing username is refused unless `update` is asked: then its hash and role are replaced
and the account is made active again (the one way back in for a locked-out admin).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..core.result import Result
from ..core.errors import EtlError

ROLES = ("super admin", "admin", "user")  # what the backend checks a role against
PASSWORD_ENV = "ETL_USER_PASSWORD"
COST = 12
MAX_PASSWORD_BYTES = 72  # bcrypt reads no further: a longer password would be silently cut


class UserError(EtlError):
    stage = "users"


@dataclass(frozen=True)
class UserResult(Result):
    target: str
    username: str
    role: str
    created: bool  # False: an existing user was updated

    def __str__(self) -> str:
        verb = "created" if self.created else "updated (password, role, active again)"
        return (f"user {self.username!r} ({self.role}) {verb} in {self.target}; the password is stored only as a "
                f"bcrypt hash ($2b$, cost {COST})")


def read_password(prompt=None, env=os.environ) -> str:
    """The password from ETL_USER_PASSWORD, else asked twice at the terminal (never echoed)."""
    if env.get(PASSWORD_ENV):
        return env[PASSWORD_ENV]
    if prompt is None:
        import getpass

        prompt = getpass.getpass
    first = prompt("Password: ")
    if prompt("Password again: ") != first:
        raise UserError("the two passwords differ; nothing was written")
    return first


def hash_password(password: str) -> str:
    import bcrypt

    raw = password.encode("utf-8")
    if not raw:
        raise UserError("the password is empty; nothing was written")
    if len(raw) > MAX_PASSWORD_BYTES:
        raise UserError(f"the password is longer than bcrypt reads ({len(raw)} > {MAX_PASSWORD_BYTES} bytes); "
                        "nothing was written")
    return bcrypt.hashpw(raw, bcrypt.gensalt(rounds=COST, prefix=b"2b")).decode("ascii")


def check(username: str, role: str) -> None:
    """Refuse what the backend could not use, before anyone types a password."""
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; the backend knows {', '.join(repr(r) for r in ROLES)}")
    if not username or username != username.strip():
        raise UserError(f"the username {username!r} is empty or has surrounding spaces")


def add_user(target, username: str, role: str, password: str, *, update: bool = False) -> UserResult:
    """Insert (or with `update`, replace the hash and role of) one backend user; one transaction."""
    check(username, role)
    hashed = hash_password(password)
    with target.connect(autocommit=False) as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM users WHERE username = %s FOR UPDATE", (username,))
        found = cur.fetchone()
        if found and not update:
            conn.rollback()
            raise UserError(f"user {username!r} already exists; --update replaces its password and role")
        if found:
            cur.execute("UPDATE users SET password = %s, role = %s, is_active = TRUE WHERE id = %s",
                        (hashed, role, found[0]))
        else:
            cur.execute("INSERT INTO users (username, password, role, is_active) VALUES (%s, %s, %s, TRUE)",
                        (username, hashed, role))
        conn.commit()
    return UserResult(str(target), username, role, created=not found)
