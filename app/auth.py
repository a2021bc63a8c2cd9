"""Annotator accounts: bcrypt hashes from a users file or the environment, never plain text.

Users file (YAML or JSON): ``{users: {alice: {password_hash: "$2b$12$...", admin: true}}}``.
Environment: ``UDASA_APP_USERS="alice:$2b$12$...:admin,bob:$2b$12$..."`` (a bcrypt hash holds
no ``:`` or ``,``). An admin sees every annotator's ratings (Table 3, export); anyone else sees
only their own. Make a hash with ``udasa-app hash-password``.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import bcrypt

from udasa.errors import ConfigError
from udasa.files import read_settings

ENV_USERS = "UDASA_APP_USERS"
BCRYPT_MAX_BYTES = 72  # bcrypt ignores (bcrypt>=5: rejects) longer passwords
_HASH = re.compile(r"^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$")
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
# Checked against for unknown names, so a wrong name costs as long as a wrong password.
_DUMMY = bcrypt.hashpw(b"udasa-app: no such user", bcrypt.gensalt(rounds=12))


@dataclass(frozen=True)
class User:
    name: str
    password_hash: str
    admin: bool = False


def hash_password(password: str, rounds: int = 12) -> str:
    """A bcrypt hash of `password` (the string to put in the users file)."""
    raw = password.encode("utf-8")
    if not raw:
        raise ConfigError("password: must not be empty")
    if len(raw) > BCRYPT_MAX_BYTES:
        raise ConfigError(f"password: at most {BCRYPT_MAX_BYTES} bytes (a bcrypt limit)")
    return bcrypt.hashpw(raw, bcrypt.gensalt(rounds=rounds)).decode("ascii")


def _user(name: str, password_hash: object, admin: object, where: str) -> User:
    if not _NAME.match(str(name)):
        raise ConfigError(f"{where}: user name {name!r} must be 1-64 of A-Z a-z 0-9 _ . @ -")
    if not isinstance(password_hash, str) or not _HASH.match(password_hash):
        raise ConfigError(f"{where}: password_hash of {name!r} is not a bcrypt hash "
                          "($2b$...); make one with `udasa-app hash-password`")
    if not isinstance(admin, bool):
        raise ConfigError(f"{where}: admin of {name!r} must be true or false")
    return User(str(name), password_hash, admin)


def users_from_file(path: str | Path) -> dict[str, User]:
    path = Path(path)
    data = read_settings(path, "users file")
    users = data.get("users") if isinstance(data, dict) else None
    if not isinstance(users, dict) or not users:
        raise ConfigError(f"{path}: expected `users: {{NAME: {{password_hash: ...}}}}`")
    out = {}
    for name, entry in users.items():
        where = f"{path}: users.{name}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a mapping with password_hash")
        if "password" in entry:
            raise ConfigError(f"{where}: plain-text `password` is not accepted; store "
                              "`password_hash` from `udasa-app hash-password`")
        unknown = set(entry) - {"password_hash", "admin"}
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
        out[str(name)] = _user(name, entry.get("password_hash"), entry.get("admin", False),
                               where)
    return out


def users_from_env(value: str) -> dict[str, User]:
    """``name:hash[:admin]`` items, comma-separated."""
    out = {}
    for i, item in enumerate(filter(None, (s.strip() for s in value.split(","))), start=1):
        parts = item.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "admin"):
            raise ConfigError(f"{ENV_USERS}: item {i} must be NAME:BCRYPT_HASH[:admin]")
        out[parts[0]] = _user(parts[0], parts[1], len(parts) == 3, f"{ENV_USERS} item {i}")
    return out


def load_users(path: str | Path | None = None,
               env: Mapping[str, str] | None = None) -> dict[str, User]:
    """Users from `path` (when given) and from $UDASA_APP_USERS (the file wins on clashes)."""
    env = os.environ if env is None else env
    users = users_from_env(env.get(ENV_USERS, ""))
    if path is not None:
        users |= users_from_file(path)
    return users


def verify(users: Mapping[str, User], name: str, password: str) -> bool:
    """True when `password` matches `name`'s hash; an unknown name costs as long as a match."""
    raw = password.encode("utf-8")
    user = users.get(name)
    stored = user.password_hash.encode("ascii") if user else _DUMMY
    if len(raw) > BCRYPT_MAX_BYTES:
        raw = b""  # never matches a hash made by hash_password (which rejects empty)
    ok = bcrypt.checkpw(raw, stored)
    return ok and user is not None


def make_auth(users: Mapping[str, User]) -> Callable[[str, str], Awaitable[bool]]:
    """Gradio's `auth` callable; bcrypt runs in a worker thread, off the event loop."""

    async def check(name: str, password: str) -> bool:
        return await asyncio.to_thread(verify, users, name, password)

    return check
