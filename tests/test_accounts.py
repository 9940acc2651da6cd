"""Accounts that can be revoked, on SQLite and PostgreSQL: sessions in the store, password changes and
disabled accounts ending them, idle expiry, the per-account login throttle, and `arena annotators
passwd | disable | enable` as a researcher types them."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from arena.store import NotFound, Store
from arena.store.models import LoginSession
from arena.store.store import LOGIN_FAILURE_LIMIT, LOGIN_LOCK_BASE_S, LOGIN_LOCK_MAX_S
from tests.browser import ROOT

IDLE = dt.timedelta(hours=12)


@pytest.fixture
def store(db_url: str):
    with Store.open(db_url) as s:
        s.add_annotator("ann", "pw-1234")
        s.add_annotator("bob", "pw-5678")
        yield s


def test_a_session_resolves_to_its_account_and_only_its_hash_is_stored(store: Store) -> None:
    token = store.create_session("ann")
    assert store.session_user(token, idle=IDLE) == "ann"
    assert store.session_user(token + "x", idle=IDLE) is None
    with store.engine.connect() as c:
        hashes = c.execute(sa.select(LoginSession.token_hash)).scalars().all()
    assert len(hashes) == 1 and token not in hashes[0] and len(hashes[0]) == 64


def test_a_password_change_ends_every_session_of_that_account_only(store: Store) -> None:
    ann = [store.create_session("ann") for _ in range(2)]
    bob = store.create_session("bob")
    store.set_password("ann", "new-pw")
    assert [store.session_user(t, idle=IDLE) for t in ann] == [None, None]
    assert store.session_user(bob, idle=IDLE) == "bob"
    assert store.login("ann", "pw-1234").reason == "wrong" and store.login("ann", "new-pw").ok


def test_a_disabled_account_cannot_log_in_and_its_sessions_end(store: Store) -> None:
    token = store.create_session("ann")
    store.set_disabled("ann", True)
    assert store.session_user(token, idle=IDLE) is None
    assert store.login("ann", "pw-1234") == (False, "disabled", 0.0, False, 0)
    assert not store.verify_password("ann", "pw-1234")
    store.set_disabled("ann", False)
    assert store.login("ann", "pw-1234").ok and store.verify_password("ann", "pw-1234")
    with pytest.raises(NotFound):
        store.set_disabled("nobody", True)
    with pytest.raises(NotFound):
        store.set_password("nobody", "x")


def test_sessions_expire_after_the_idle_time_and_use_keeps_them(store: Store) -> None:
    token = store.create_session("ann")
    now = dt.datetime.now(dt.UTC)
    idle = dt.timedelta(minutes=30)
    # Used every 20 minutes for two hours: still logged in (each use moves last_seen_at on).
    for minutes in range(20, 140, 20):
        assert store.session_user(token, idle=idle, now=now + dt.timedelta(minutes=minutes)) == "ann", minutes
    # Then 31 minutes without a request: gone, and its row with it.
    assert store.session_user(token, idle=idle, now=now + dt.timedelta(minutes=120 + 31)) is None
    with store.engine.connect() as c:
        assert c.scalar(sa.select(sa.func.count()).select_from(LoginSession)) == 0


def test_last_seen_is_written_at_most_once_a_minute(store: Store) -> None:
    token = store.create_session("ann")
    with store.engine.connect() as c:
        first = c.scalar(sa.select(LoginSession.last_seen_at))
    for seconds in (5, 30, 59):
        store.session_user(token, idle=IDLE, now=first + dt.timedelta(seconds=seconds))
    with store.engine.connect() as c:
        assert c.scalar(sa.select(LoginSession.last_seen_at)) == first
    store.session_user(token, idle=IDLE, now=first + dt.timedelta(seconds=61))
    with store.engine.connect() as c:
        assert c.scalar(sa.select(LoginSession.last_seen_at)) == first + dt.timedelta(seconds=61)


def test_end_session_and_end_sessions(store: Store) -> None:
    one, two = store.create_session("ann"), store.create_session("ann")
    assert store.end_session(one) and not store.end_session(one)
    assert store.session_user(two, idle=IDLE) == "ann"
    assert store.end_sessions("ann") == 1 and store.session_user(two, idle=IDLE) is None


def test_wrong_passwords_lock_the_account_for_a_doubling_time(store: Store) -> None:
    now = dt.datetime.now(dt.UTC)
    for i in range(LOGIN_FAILURE_LIMIT - 1):
        assert store.login("ann", f"guess-{i}", now=now) == (False, "wrong", 0.0, False, i + 1)
    locking = store.login("ann", "guess-last", now=now)
    assert locking == (False, "wrong", LOGIN_LOCK_BASE_S, True, LOGIN_FAILURE_LIMIT)
    # While locked even the right password is refused, unchecked; another account is untouched.
    assert store.login("ann", "pw-1234", now=now).reason == "locked"
    assert store.login("bob", "pw-5678", now=now).ok
    # After the lock one more try is checked; wrong again, the lock doubles.
    later = now + dt.timedelta(seconds=LOGIN_LOCK_BASE_S + 1)
    again = store.login("ann", "guess-again", now=later)
    assert again.locked_now and again.retry_after_s == 2 * LOGIN_LOCK_BASE_S
    much_later = later + dt.timedelta(seconds=2 * LOGIN_LOCK_BASE_S + 1)
    assert store.login("ann", "pw-1234", now=much_later).ok  # the right one resets the count
    assert store.get_annotator("ann").failed_logins == 0 and store.get_annotator("ann").locked_until is None
    # The lock never grows past its cap.
    for i in range(40):
        result = store.login("bob", "x", now=now + dt.timedelta(days=i))
    assert result.retry_after_s == LOGIN_LOCK_MAX_S


def test_a_password_change_or_enable_lifts_the_lock(store: Store) -> None:
    for i in range(LOGIN_FAILURE_LIMIT):
        store.login("ann", f"guess-{i}")
    assert store.login("ann", "pw-1234").reason == "locked"
    store.set_disabled("ann", False)
    assert store.login("ann", "pw-1234").ok
    for i in range(LOGIN_FAILURE_LIMIT):
        store.login("ann", f"guess-{i}")
    store.set_password("ann", "fresh")
    assert store.login("ann", "fresh").ok


def test_a_burst_of_parallel_guesses_gets_only_the_limit_checked(store: Store) -> None:
    """Counted before the check: 40 guesses at once, from threads (or processes), get 5 checks."""
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: store.login("ann", f"guess-{i}"), range(40)))
    reasons = [r.reason for r in results]
    assert reasons.count("wrong") == LOGIN_FAILURE_LIMIT and reasons.count("locked") == 40 - LOGIN_FAILURE_LIMIT


def test_unknown_names_are_wrong_and_count_nowhere(store: Store) -> None:
    assert store.login("nobody", "x") == (False, "wrong", 0.0, False, 0)


# ------------------------------------------------------------------------------------------ the commands


def arena(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arena.cli", *args], cwd=ROOT, input=stdin, capture_output=True, text=True, timeout=120
    )


def test_annotators_passwd_disable_enable_commands(tmp_path) -> None:
    db = str(tmp_path / "r.db")
    assert arena("annotators", "add", "지혜", "--password", "old-pw", "--db", db).returncode == 0
    with Store.open(db) as store:
        token = store.create_session("지혜")

    generated = arena("annotators", "passwd", "지혜", "--db", db)
    assert generated.returncode == 0, generated.stderr
    password = generated.stdout.split("password: ", 1)[1].strip()
    with Store.open(db) as store:
        assert store.session_user(token, idle=IDLE) is None
        assert store.login("지혜", password).ok and not store.verify_password("지혜", "old-pw")

    typed = arena("annotators", "passwd", "지혜", "--stdin", "--db", db, stdin="typed pw 한글\n")
    assert typed.returncode == 0 and "password:" not in typed.stdout
    with Store.open(db) as store:
        assert store.login("지혜", "typed pw 한글").ok
        token = store.create_session("지혜")

    assert arena("annotators", "disable", "지혜", "--db", db).returncode == 0
    listed = arena("annotators", "list", "--db", db).stdout
    assert "지혜\tannotator\tdisabled" in listed
    with Store.open(db) as store:
        assert (
            store.session_user(token, idle=IDLE) is None and store.login("지혜", "typed pw 한글").reason == "disabled"
        )
    assert arena("annotators", "enable", "지혜", "--db", db).returncode == 0
    with Store.open(db) as store:
        assert store.login("지혜", "typed pw 한글").ok

    for args, stdin, message in (
        (("passwd", "nobody"), None, "no annotator 'nobody'"),
        (("disable", "nobody"), None, "no annotator 'nobody'"),
        (("enable", "nobody"), None, "no annotator 'nobody'"),
        (("passwd", "지혜", "--stdin"), "\n", "standard input is empty"),
    ):
        failed = arena("annotators", *args, "--db", db, stdin=stdin)
        assert failed.returncode == 2 and message in failed.stderr and "Traceback" not in failed.stderr, args
    with Store.open(db) as store:  # the failed --stdin changed nothing
        assert store.login("지혜", "typed pw 한글").ok
