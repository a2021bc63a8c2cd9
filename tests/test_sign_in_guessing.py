"""Sign-in guessing: failed sign-ins are throttled per user name and per client address.

The real app (`udasa-app`, tests/hostile_app.serve) with the delays scaled down through
$UDASA_APP_THROTTLE, signed into over HTTP from several loopback addresses (127.0.0.2, ...:
each its own client address). 20 wrong guesses take at least the documented sum of delays,
whether they target one name or a different name each time; a right password after them waits
its delay and then gets in; the answers and the log lines for a real name and a made-up one
are the same. The delay schedule itself is checked on the `Throttle` with a clock of its own.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from hostile_app import serve

from app.auth import Throttle, ThrottleConfig, User, hash_password, make_auth
from udasa.errors import ConfigError

USERS = {"alice": ("alice-pw-1", True), "bob": ("bob-pw-2", False)}
SMALL = ThrottleConfig(free=3, base_s=0.05, cap_s=0.4)
ENV = "free=3,base_s=0.05,cap_s=0.4"


def intended(cfg: ThrottleConfig, guesses: int) -> float:
    """The documented least time of `guesses` attempts in a row that all fail: attempt k
    waits delay(k - 1) = min(cap, base * 2 ** (k - 2 - free)) once k - 1 > free."""
    return sum(min(cfg.cap_s, cfg.base_s * 2 ** (n - cfg.free - 1))
               for n in range(cfg.free + 1, guesses))


def test_delays_double_after_the_free_failures_up_to_the_cap():
    cfg = ThrottleConfig(free=2, base_s=1, cap_s=10)
    assert [cfg.delay(n) for n in range(8)] == [0, 0, 0, 1, 2, 4, 8, 10]
    assert ThrottleConfig().delay(3) == 0 and ThrottleConfig().delay(4) == 1.0
    assert ThrottleConfig.from_env({"UDASA_APP_THROTTLE": ENV}) == SMALL
    with pytest.raises(ConfigError, match="unknown setting 'limit'"):
        ThrottleConfig.from_env({"UDASA_APP_THROTTLE": "limit=3"})


def test_failures_set_the_next_wait_per_name_and_per_address_and_are_forgotten():
    now = [100.0]
    t = Throttle(ThrottleConfig(free=1, base_s=1, cap_s=60), clock=lambda: now[0])
    keys = ["name:alice", "addr:10.0.0.1"]
    assert [t.record(keys, ok=False) for _ in range(3)] == [1, 2, 3]
    assert t.wait(keys) == 2  # delay(3)
    assert t.wait(["name:carol", "addr:10.0.0.1"]) == 2  # the address alone holds it
    assert t.wait(["name:alice", "addr:10.0.0.2"]) == 2  # and the name alone
    t.record(keys, ok=True)  # a success clears its name, not the address
    assert t.wait(["name:alice", "addr:10.0.0.2"]) == 0 and t.wait(keys) == 2
    now[0] += 3601  # forgotten an hour after the last failure
    assert t.wait(keys) == 0


def test_guesses_sent_at_once_are_checked_one_after_another():
    users = {"alice": User("alice", hash_password("pw", rounds=4))}
    cfg = ThrottleConfig(free=1, base_s=0.05, cap_s=1)
    check = make_auth(users, Throttle(cfg))

    async def at_once():
        start = time.monotonic()
        oks = await asyncio.gather(*(check("alice", f"wrong-{i}") for i in range(5)))
        return oks, time.monotonic() - start
    oks, took = asyncio.run(at_once())
    assert oks == [False] * 5 and took >= intended(cfg, 5)


def test_sign_ins_at_once_from_one_address_cost_nothing_when_they_succeed(caplog):
    digest = hash_password("pw", rounds=4)
    users = {f"user{i}": User(f"user{i}", digest) for i in range(20)}
    t = Throttle(ThrottleConfig(free=0, base_s=60, cap_s=60))  # a failure would cost a minute
    check = make_auth(users, t)

    async def at_once():
        return await asyncio.gather(*(check(name, "pw") for name in users))
    with caplog.at_level("WARNING", logger="app.auth"):
        assert all(asyncio.run(at_once()))
    assert "waits" not in caplog.text and t.wait(["name:x", "addr:unknown"]) == 0


def test_make_auth_checks_the_password_after_the_wait():
    users = {"alice": User("alice", hash_password("pw", rounds=4))}
    t = Throttle(ThrottleConfig(free=0, base_s=0.01, cap_s=0.02))
    check = make_auth(users, t)
    assert asyncio.run(check("alice", "pw"))
    assert not asyncio.run(check("alice", "nope"))
    assert not asyncio.run(check("mallory", "pw"))
    assert asyncio.run(check("alice", "pw"))  # after its wait, the right password gets in


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    import os

    log = tmp_path_factory.mktemp("log") / "app.log"
    old = os.environ.get("UDASA_APP_THROTTLE")
    os.environ["UDASA_APP_THROTTLE"] = ENV
    try:
        with serve(tmp_path_factory.mktemp("ws"), USERS, log) as url:
            yield url, log
    finally:
        os.environ.pop("UDASA_APP_THROTTLE")
        if old is not None:
            os.environ["UDASA_APP_THROTTLE"] = old


def client(url: str, address: str) -> httpx.Client:
    """A client whose requests come from `address` (a loopback address of its own)."""
    return httpx.Client(base_url=url, timeout=60,
                        transport=httpx.HTTPTransport(local_address=address))


def guess(c: httpx.Client, name: str, password: str) -> httpx.Response:
    return c.post("/login", data={"username": name, "password": password})


def test_20_wrong_guesses_at_one_name_take_the_intended_time(app_url):
    url, log = app_url
    with client(url, "127.0.0.2") as c:
        start = time.monotonic()
        answers = [guess(c, "alice", f"wrong-{i}") for i in range(19)]
        last = time.monotonic()
        answers.append(guess(c, "alice", "wrong-19"))
        took = time.monotonic() - start
        assert {(r.status_code, r.text) for r in answers} == {(400, answers[0].text)}
        assert took >= intended(SMALL, 20), took
        # the right password is checked no sooner than delay(20) after the 20th guess was
        assert guess(c, "alice", USERS["alice"][0]).status_code == 200
        assert time.monotonic() - last >= SMALL.delay(20)
    lines = [x for x in log.read_text().splitlines() if "'alice' from 127.0.0.2" in x]
    assert sum("sign-in failed" in x for x in lines) == 20
    assert any("waits 0.4 s" in x for x in lines)


def test_20_wrong_guesses_at_20_names_from_one_address_take_the_intended_time(app_url):
    url, _ = app_url
    with client(url, "127.0.0.3") as c:
        start = time.monotonic()
        answers = [guess(c, f"user{i}", "password1") for i in range(20)]
        assert time.monotonic() - start >= intended(SMALL, 20)
    assert {(r.status_code, r.text) for r in answers} == {(400, answers[0].text)}


def test_a_real_name_and_a_made_up_one_answer_and_log_alike(app_url):
    url, log = app_url
    with client(url, "127.0.0.4") as c:
        real = [guess(c, "bob", "wrong") for _ in range(5)]
    with client(url, "127.0.0.5") as c:
        made_up = [guess(c, "bobby", "wrong") for _ in range(5)]
    assert [(r.status_code, r.text) for r in real] == [(r.status_code, r.text) for r in made_up]

    def shape(name: str, address: str) -> list[str]:  # (whether an attempt had to wait
        # depends on how long the one before took: the test's hashes are cheaper than real ones)
        return [x.split(": ", 1)[-1].replace(name, "NAME").replace(address, "ADDR")
                for x in log.read_text().splitlines()
                if f"sign-in failed as '{name}' from {address}" in x]
    assert shape("bob", "127.0.0.4") == shape("bobby", "127.0.0.5") != []
