"""Annotator accounts: bcrypt hashes from a users file or the environment, never plain text.

Users file (YAML or JSON): ``{users: {alice: {password_hash: "$2b$12$...", admin: true}}}``.
Environment: ``UDASA_APP_USERS="alice:$2b$12$...:admin,bob:$2b$12$..."`` (a bcrypt hash holds
no ``:`` or ``,``). An admin sees every annotator's ratings (Table 3, export); anyone else sees
only their own. Make a hash with ``udasa-app hash-password``.

Failed sign-ins are throttled per user name and per client address (`ThrottleConfig`: a
delay that doubles with each failure past the first few, logged), the same whether or not the
name exists, so a password cannot be guessed at the speed of bcrypt and the answers never tell
which names are real.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import bcrypt

from udasa.errors import ConfigError
from udasa.files import read_settings

log = logging.getLogger(__name__)

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


# --- throttling failed sign-ins ------------------------------------------------------------
ENV_THROTTLE = "UDASA_APP_THROTTLE"


@dataclass(frozen=True)
class ThrottleConfig:
    """Failed sign-ins are counted per user name and per client address. The first `free`
    failures of a name or address cost nothing; after n failures the next attempt on it is
    checked no sooner than `delay(n) = min(cap_s, base_s * 2 ** (n - free - 1))` seconds after
    the attempt before it was answered (with the defaults: 1 s, 2 s, 4 s, ... then 5 minutes
    per attempt), a right password included. A success clears its name's count; failures are
    forgotten `forget_s` after the last one."""

    free: int = 3
    base_s: float = 1.0
    cap_s: float = 300.0
    forget_s: float = 3600.0

    def delay(self, failures: int) -> float:
        """Seconds the next attempt waits after `failures` failures."""
        if failures <= self.free:
            return 0.0
        return min(self.cap_s, self.base_s * 2.0 ** (failures - self.free - 1))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ThrottleConfig:
        """Defaults, changed by ``UDASA_APP_THROTTLE="free=3,base_s=1,cap_s=300,forget_s=3600"``."""
        raw = (os.environ if env is None else env).get(ENV_THROTTLE, "")
        values: dict[str, float] = {}
        for item in filter(None, (s.strip() for s in raw.split(","))):
            key, _, value = item.partition("=")
            if key not in cls.__dataclass_fields__:
                raise ConfigError(f"{ENV_THROTTLE}: unknown setting {key!r} (settings: "
                                  f"{', '.join(cls.__dataclass_fields__)})")
            try:
                values[key] = float(value)
            except ValueError:
                raise ConfigError(f"{ENV_THROTTLE}: {key} must be a number, got {value!r}"
                                  ) from None
        cfg = cls(**{k: int(v) if k == "free" else v for k, v in values.items()})
        if cfg.free < 0 or min(cfg.base_s, cfg.cap_s, cfg.forget_s) < 0:
            raise ConfigError(f"{ENV_THROTTLE}: settings must be >= 0")
        return cfg


@dataclass
class _Count:
    failures: int = 0
    next_at: float = 0.0
    last: float = 0.0


class Throttle:
    """Failed sign-ins per key (``name:...``, ``addr:...``). `wait` says how long the next
    attempt on the keys must wait, `record` counts how one went. `make_auth` checks the
    attempts on a key one at a time (`turn`), so attempts sent all at once queue behind each
    other instead of being checked together, and sign-ins that succeed cost nothing."""

    MAX_KEYS = 100_000  # a flood of made-up names cannot grow the table without bound

    def __init__(self, cfg: ThrottleConfig | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.cfg = cfg or ThrottleConfig()
        self.clock = clock
        self._counts: dict[str, _Count] = {}
        self._turns: dict[str, tuple[asyncio.Lock, int]] = {}  # key -> (lock, attempts on it)

    def _count(self, key: str, now: float) -> _Count:
        c = self._counts.get(key)
        if c is None or now - c.last > self.cfg.forget_s:
            if len(self._counts) >= self.MAX_KEYS:
                self._counts.pop(next(iter(self._counts)))
            c = self._counts[key] = _Count(last=now)
        return c

    def wait(self, keys: Sequence[str]) -> float:
        """Seconds the next attempt on `keys` waits before it is checked (0: at once)."""
        now = self.clock()
        return max([0.0, *(self._count(k, now).next_at - now for k in keys)])

    def record(self, keys: Sequence[str], ok: bool) -> int:
        """Count an attempt: a success forgets its name's failures (`keys[0]`); a failure
        adds one to every key and sets when the next attempt on each may be checked. Returns
        the most failures now on a key."""
        now = self.clock()
        if ok:
            self._counts.pop(keys[0], None)
        else:
            for k in keys:
                c = self._count(k, now)
                c.failures, c.last = c.failures + 1, now
                c.next_at = now + self.cfg.delay(c.failures)
        return max((self._counts[k].failures for k in keys if k in self._counts), default=0)

    @contextlib.asynccontextmanager
    async def turn(self, keys: Sequence[str]):
        """Inside: no other attempt on any of `keys` is being checked."""
        order = sorted(set(keys))  # one order for every attempt: no two wait on each other
        for k in order:
            lock, users = self._turns.get(k) or (asyncio.Lock(), 0)
            self._turns[k] = (lock, users + 1)
        try:
            async with contextlib.AsyncExitStack() as stack:
                for k in order:
                    await stack.enter_async_context(self._turns[k][0])
                yield
        finally:
            for k in order:
                lock, users = self._turns[k]
                if users == 1:
                    del self._turns[k]
                else:
                    self._turns[k] = (lock, users - 1)


_CLIENT: contextvars.ContextVar[str] = contextvars.ContextVar("udasa_client", default="unknown")


class ClientAddress:
    """ASGI middleware: the client's address of a sign-in request, for the throttle (Gradio
    hands its `auth` callable only the name and password)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope.get("path", "").rstrip("/").endswith("/login"):
            return await self.app(scope, receive, send)
        token = _CLIENT.set((scope.get("client") or ("unknown",))[0])
        try:
            return await self.app(scope, receive, send)
        finally:
            _CLIENT.reset(token)


def sign_in_middleware() -> list:
    """`app_kwargs["middleware"]` for `gr.Blocks.launch`: the client address to `make_auth`."""
    from starlette.middleware import Middleware

    return [Middleware(ClientAddress)]


def make_auth(users: Mapping[str, User], throttle: Throttle | None = None
              ) -> Callable[[str, str], Awaitable[bool]]:
    """Gradio's `auth` callable: failed sign-ins throttled per user name and per client
    address (`Throttle`, logged), the same for a name that exists and one that does not;
    bcrypt runs in a worker thread, off the event loop."""
    throttle = throttle or Throttle(ThrottleConfig.from_env())

    async def check(name: str, password: str) -> bool:
        address = _CLIENT.get()
        keys = [f"name:{name}", f"addr:{address}"]
        async with throttle.turn(keys):
            wait = throttle.wait(keys)
            if wait > 0:
                log.warning("sign-in as %r from %s waits %.1f s (earlier failures)",
                            name[:64], address, wait)
                await asyncio.sleep(wait)
            ok = await asyncio.to_thread(verify, users, name, password)
            failures = throttle.record(keys, ok)
        if not ok:
            log.warning("sign-in failed as %r from %s (%d failure(s) on this name or address;"
                        " the next attempt waits %.1f s)", name[:64], address, failures,
                        throttle.cfg.delay(failures))
        return ok

    return check
