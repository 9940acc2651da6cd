"""Many annotators at once against a running `arena serve`: replay ratings and blind votes over HTTP.

    .venv/bin/python benchmarks/load_annotators.py [--annotators 100] [--duration 300] [--db sqlite|postgresql|both]

Each simulated annotator logs in and works like a browser tab of the Korean UI (the same Gradio
queue calls the page makes): in the replay tab it opens the next unrated turn (two models answer),
reads for a while (``--think`` seconds), scores both sides and submits; in the blind tab it takes the
next item of a running round, reads, votes with scores, submits. Which of the two it does next is
drawn at random (``--vote-share``). The models are a loopback server that answers at once
(tests/fake_model_servers.py) and the round's answers are stored before the run, so the numbers are
the arena's, not a model's. Only the submit calls count as submissions; the rest is reported apart.

Afterwards the store is compared with what the annotators were told: every submission answered with
a success message must be there exactly once (none lost, none duplicated), and none that failed.
Every run is bounded: it stops after ``--duration`` seconds (plus at most one call timeout) and
stops every server it started. The server runs with the store in a temp directory (SQLite in WAL
mode) or in a throwaway PostgreSQL (pgserver, a Unix socket, default durability settings).

``--login-storm --annotators 61``: instead, 60 annotators log in at once while one keeps working;
reports how that one's calls fared (a login costs a deliberate ~70 ms of scrypt).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser import free_port, serve  # noqa: E402
from tests.gradio_http import CallResult, GradioSession  # noqa: E402

PASSWORD = "load-pw-1234"
# Two models: each stored answer is then in exactly one blind pair. With three, an annotator meets the same
# answer in two pairs and the second 1-5 score replaces the first (one rating per answer and annotator),
# which the exact lost/duplicated check below would count as lost (see docs/reliability.md).
MODELS = ("load-a", "load-b")
# Replayed by name: a round's judges may not use its own models in Replay (arena.web.policies).
REPLAY_MODELS = ("load-c", "load-d")
ROUND = "부하-라운드"
SAVED = "✅"  # both success messages (ratings saved, vote saved) start with it
ALL_RATED = "🎉"


# ------------------------------------------------------------------------------------------- set-up


@contextmanager
def fake_model_server() -> Iterator[str]:
    """The instant model server, in its own process (it must not share the load generator's GIL)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_model_servers", "instant", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("ready"), "fake model server failed"
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def postgres(root: Path) -> Iterator[str]:
    """A throwaway PostgreSQL (as tests/fixtures_pg.py starts it, durability left on); yields its URL."""
    import warnings

    import sqlalchemy as sa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    server = pgserver.get_server(root / "pgdata", cleanup_mode="stop")
    try:
        url = sa.make_url(server.get_uri()).set(drivername="postgresql+psycopg")
        admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql('CREATE DATABASE "arena_load"')
        admin.dispose()
        yield url.set(database="arena_load").render_as_string(hide_password=False)
    finally:
        server.cleanup()


def models_yaml(path: Path, base_url: str) -> Path:
    """The round models and the replay models, all served by the instant server."""
    lines = ["models:"] + [
        f"  - {{name: {m}, kind: openai, base_url: '{base_url}', options: {{max_tokens: 16}},"
        f" timeouts: {{connect: 5, first_token: 30, read: 30}}}}"
        for m in (*MODELS, *REPLAY_MODELS)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def annotator_names(n: int) -> list[str]:
    return [f"평가자{i:03d}" for i in range(n)]


def prepare(url: str, models: Path, names: list[str]) -> int:
    """Annotators, and a running blind round over every shipped turn with all its answers stored."""
    from arena import rounds
    from arena.core.dialogs import eval_set_files, load_dialogs
    from arena.store import Store
    from backends.registry import build_registry

    dialogs = load_dialogs(eval_set_files(ROOT / "eval_sets"))
    registry = build_registry(models)
    with Store.open(url) as store:
        for name in names:
            store.add_annotator(name, PASSWORD)
        config = rounds.RoundConfig(
            eval_sets=sorted({d.eval_set for d in dialogs}),
            models=list(MODELS),
            annotators=names,
            judgements=len(names),
        )
        rid = rounds.create_round(store, ROUND, config, dialogs=dialogs, registry=registry)
        rounds.start_round(store, rid, dialogs=dialogs)
        ids = {m.name: m.id for m in store.list_models()}
        # Stored directly, as pre-generation would: the run measures judging, not generating.
        for key in sorted(
            {(*it.step_key, m) for it in rounds.load_items(store, rid) for m in (it.model_a, it.model_b)}
        ):
            eval_set, dialog_id, turn, model = key
            store.record_generation(
                model_id=ids[model],
                eval_set=eval_set,
                dialog_id=dialog_id,
                turn_index=turn,
                round_id=rid,
                text=f"{model} 답변: {dialog_id} {turn}턴",
                total_ms=1.0,
            )
    return rid


# ------------------------------------------------------------------------------------------- annotators


@dataclass
class Submission:
    """One submit: what it was, how it ended, and the comments that identify its rows in the store."""

    annotator: str
    kind: str  # "rating" | "vote"
    comments: list[str]
    acked: bool
    seconds: float
    error: str = ""
    at: float = field(default_factory=time.monotonic)  # when the answer came


@dataclass
class Tally:
    """Everything the annotators saw."""

    started: float = field(default_factory=time.monotonic)
    submissions: list[Submission] = field(default_factory=list)
    other: dict[str, list[float]] = field(default_factory=dict)  # latency of the non-submit calls, by kind
    errors: Counter[str] = field(default_factory=Counter)
    logins: list[float] = field(default_factory=list)


class Annotator:
    """One simulated annotator: one logged-in tab that rates replay turns and votes in the blind round."""

    def __init__(
        self,
        base_url: str,
        name: str,
        index: int,
        config: dict[str, Any],
        args: argparse.Namespace,
        tally: Tally,
        sets: list[str],
    ) -> None:
        self.name, self.args, self.tally = name, args, tally
        self.rng = random.Random(index)
        self.session = GradioSession(base_url, timeout=args.call_timeout)
        self.config = config
        self.sets = sets[:]
        self.rng.shuffle(self.sets)
        self.replay_at: tuple[str, int] | None = None  # (dialog, turn) the server offered next
        self.round_ready = False
        self.seq = 0

    def _other(self, kind: str, result: CallResult) -> bool:
        self.tally.other.setdefault(kind, []).append(result.seconds)
        if not result.ok:
            self.tally.errors[f"{kind}: {str(result.output)[:80]}"] += 1
        return result.ok

    async def run(self, stop_at: float) -> None:
        s = self.session
        async with s:
            started = time.perf_counter()
            if not await s.login(self.name, PASSWORD):
                self.tally.errors["login refused"] += 1
                return
            self.tally.logins.append(time.perf_counter() - started)
            await s.load_config(self.config)
            await s.page_loaded()  # fills this account's model and round pickers, as the page's load does
            while time.monotonic() < stop_at:
                vote = self.rng.random() < self.args.vote_share
                done = await (self.vote(stop_at) if vote else self.rate(stop_at))
                if not done and not await (self.rate(stop_at) if vote else self.vote(stop_at)):
                    return  # nothing left to do in either tab

    async def _think(self, stop_at: float) -> bool:
        await asyncio.sleep(self.rng.uniform(*self.args.think))
        return time.monotonic() < stop_at

    async def _next_replay_set(self) -> bool:
        """Open the next eval set and its first unrated turn, as picking a set and pressing "next" does."""
        s = self.session
        while self.sets:
            eval_set = self.sets.pop()
            # The models picked, as on the page: they answer the turn opened, in the event chained after it.
            picked = {"replay_models": list(REPLAY_MODELS)}
            r = await s.call(
                s.dependency(target=("replay-eval-set", "input")), chained=True, replay_eval_set=eval_set, **picked
            )
            if not self._other("choose set", r):
                continue
            r = await s.call(s.dependency(target=("replay-next", "click")), chained=True, **picked)
            if self._other("next turn", r) and r.value("replay-dialog") and r.value("replay-turn") is not None:
                self.replay_at = (r.value("replay-dialog"), r.value("replay-turn"))
                return True
        return False

    async def rate(self, stop_at: float) -> bool:
        """Generate the offered replay turn, read, score both sides, submit; False when nothing is left."""
        s = self.session
        if self.replay_at is None and not await self._next_replay_set():
            return False
        dialog, turn = self.replay_at
        gen = await s.call(
            s.dependency(target=("replay-turn", "input")),
            chained=True,
            replay_dialog=dialog,
            replay_turn=turn,
            replay_models=list(REPLAY_MODELS),
        )
        if not self._other("generate (2 sides)", gen):
            self.replay_at = None
            return True
        if not await self._think(stop_at):
            return True
        self.seq += 1
        comments = [f"load {self.name} r{self.seq} {side}" for side in "AB"]
        values = {f"replay_score_{i}": self.rng.randint(1, 5) for i in range(2)}
        values |= {f"replay_comment_{i}": c for i, c in enumerate(comments)} | {"replay_criteria_0": ["fluency"]}
        # The turn on screen, as the page sends it: the server refuses a rating for any other turn.
        values |= {
            "replay_dialog": self.replay_at[0],
            "replay_turn": self.replay_at[1],
            "replay_models": list(REPLAY_MODELS),
        }
        r = await s.call(s.dependency(target=("replay-submit", "click")), chained=True, **values)
        self._submitted("rating", comments, r)
        self.replay_at = None
        if r.value("replay-dialog") and r.value("replay-turn") is not None:
            self.replay_at = (r.value("replay-dialog"), r.value("replay-turn"))  # the next unrated turn of this set
        return True

    async def vote(self, stop_at: float) -> bool:
        """Take the next blind item, read, score and vote, submit; False when the round has nothing left."""
        s = self.session
        if not self.round_ready:
            self.round_ready = self._other("blind rounds", await s.call(s.dependency("blind_rounds"), []))
        r = await s.call(s.dependency("blind_next"), blind_round=ROUND)
        if not self._other("blind next", r):
            return True
        if not any("답변:" in json.dumps(v, ensure_ascii=False) for v in r.output):
            return False  # no item served: this annotator has judged everything open to them
        if not await self._think(stop_at):
            return True
        self.seq += 1
        comments = [f"load {self.name} v{self.seq} {side}" for side in "LR"]
        values = {
            "blind_vote": self.rng.choice(["left", "right", "tie", "both_bad"]),
            "blind_score_0": self.rng.randint(1, 5),
            "blind_score_1": self.rng.randint(1, 5),
            "blind_comment_0": comments[0],
            "blind_comment_1": comments[1],
        }
        r = await s.call(s.dependency("blind_submit"), **values)
        self._submitted("vote", comments, r)
        return True

    def _submitted(self, kind: str, comments: list[str], r: CallResult) -> None:
        text = r.text() if r.ok else ""
        acked = r.ok and (SAVED in text or ALL_RATED in text)
        error = "" if acked else (str(r.output)[:120] if not r.ok else "no success message")
        self.tally.submissions.append(Submission(self.name, kind, comments, acked, r.seconds, error))
        if error:
            self.tally.errors[f"submit {kind}: {error}"] += 1


async def drive(base_url: str, names: list[str], args: argparse.Namespace) -> tuple[Tally, float]:
    """Run every annotator until the duration is over; returns the tally and the seconds it took."""
    from arena.core.dialogs import eval_set_files, load_dialogs

    sets = sorted({d.eval_set for d in load_dialogs(eval_set_files(ROOT / "eval_sets"))})
    async with GradioSession(base_url) as probe:
        assert await probe.login(names[0], PASSWORD), "login failed"
        config = await probe.load_config()
    tally = Tally()
    started = time.monotonic()
    stop_at = started + args.duration
    annotators = [Annotator(base_url, n, i, config, args, tally, sets) for i, n in enumerate(names)]

    # Start them over the first few seconds, as people do; every one stops by itself at stop_at.
    async def staggered(a: Annotator, delay: float) -> None:
        await asyncio.sleep(delay)
        await a.run(stop_at)

    tasks = [staggered(a, args.ramp * i / len(annotators)) for i, a in enumerate(annotators)]
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=args.duration + args.ramp + 3 * args.call_timeout)
    return tally, time.monotonic() - started


async def login_storm(base_url: str, names: list[str]) -> dict[str, Any]:
    """One annotator keeps working (a cheap call, over and over) while all the others log in at once."""
    async with GradioSession(base_url) as worker:
        assert await worker.login(names[0], PASSWORD), "login failed"
        await worker.load_config()
        await worker.page_loaded()
        dep = worker.dependency(target=("replay-eval-set", "input"))
        for _ in range(5):  # the session exists and is warm before the storm
            await worker.call(dep, replay_eval_set="emotion")
        calls: list[float] = []
        done = asyncio.Event()

        async def work() -> None:
            while not done.is_set():
                calls.append((await worker.call(dep, replay_eval_set="emotion")).seconds)

        async def login(name: str) -> float:
            async with GradioSession(base_url) as s:
                started = time.perf_counter()
                assert await s.login(name, PASSWORD), name
                return time.perf_counter() - started

        task = asyncio.create_task(work())
        logins = await asyncio.gather(*(login(n) for n in names[1:]))
        done.set()
        await task
    return {
        "logins": len(logins),
        "slowest_login_s": round(max(logins), 2),
        "calls_during_storm": len(calls),
        "call_p50_ms": round(1000 * _pct(calls, 0.5), 1),
        "call_max_ms": round(1000 * max(calls), 1),
    }


# ------------------------------------------------------------------------------------------- checking


def verify(url: str, tally: Tally) -> dict[str, int]:
    """Compare the store with the answers the annotators got."""
    from arena.store import Store

    with Store.open(url, upgrade=False) as store:
        ratings = store.ratings_frame()
        votes = store.votes_frame()
    stored = Counter(c for c in ratings["comment"] if isinstance(c, str) and c.startswith("load "))
    acked = [s for s in tally.submissions if s.acked]
    failed = [s for s in tally.submissions if not s.acked]
    votes_by = Counter(votes["annotator"])
    acked_votes = Counter(s.annotator for s in acked if s.kind == "vote")
    lost = [s for s in acked if any(stored[c] == 0 for c in s.comments)]
    if lost:
        print("lost:", *(f"{s.kind} {s.comments}" for s in lost[:10]), sep="\n  ", flush=True)
    return {
        "acked_submissions": len(acked),
        "lost": len(lost),
        "duplicated": sum(1 for c, n in stored.items() if n > 1),
        "failed_but_stored": sum(1 for s in failed if any(stored[c] for c in s.comments)),
        "vote_count_mismatch": sum(1 for a in set(votes_by) | set(acked_votes) if votes_by[a] != acked_votes[a]),
        "rows_stored": int(sum(stored.values())),
    }


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summarize(
    db: str, tally: Tally, seconds: float, check: dict[str, int], cpu: float, args: argparse.Namespace
) -> dict[str, Any]:
    """One result row (latencies in ms)."""
    subs = tally.submissions
    ok = [s.seconds for s in subs if s.acked]
    # After the first minute, once everyone has logged in and opened a page: that minute carries every
    # login (scrypt) and every new Gradio session (each builds its own copy of the page config).
    settled = [s.seconds for s in subs if s.acked and s.at - tally.started > args.ramp + 50]
    by_kind = {k: [s.seconds for s in subs if s.kind == k and s.acked] for k in ("rating", "vote")}
    return {
        "db": db,
        "annotators": args.annotators,
        "duration_s": round(seconds, 1),
        "think_s": list(args.think),
        "submissions": len(subs),
        "per_s": round(len(ok) / seconds, 2),
        "p50_ms": round(1000 * _pct(ok, 0.5), 1),
        "p99_ms": round(1000 * _pct(ok, 0.99), 1),
        "max_ms": round(1000 * max(ok, default=float("nan")), 1),
        "settled_p50_ms": round(1000 * _pct(settled, 0.5), 1),
        "settled_p99_ms": round(1000 * _pct(settled, 0.99), 1),
        "rating_p50_ms": round(1000 * _pct(by_kind["rating"], 0.5), 1),
        "rating_p99_ms": round(1000 * _pct(by_kind["rating"], 0.99), 1),
        "vote_p50_ms": round(1000 * _pct(by_kind["vote"], 0.5), 1),
        "vote_p99_ms": round(1000 * _pct(by_kind["vote"], 0.99), 1),
        # Where in the run the slow ones were: p50/p99 of the submissions answered in each minute.
        "by_minute_p50_p99_ms": [
            [round(1000 * _pct(m, 0.5)), round(1000 * _pct(m, 0.99))]
            for m in (
                [s.seconds for s in subs if s.acked and 60 * k <= s.at - tally.started < 60 * (k + 1)]
                for k in range(int(seconds // 60) + 1)
            )
            if m
        ],
        "errors": sum(tally.errors.values()),
        "error_kinds": dict(tally.errors.most_common(5)),
        "other_calls": {
            k: {"n": len(v), "p50_ms": round(1000 * _pct(v, 0.5), 1), "p99_ms": round(1000 * _pct(v, 0.99), 1)}
            for k, v in sorted(tally.other.items())
        },
        "login_p50_ms": round(1000 * _pct(tally.logins, 0.5), 1),
        "login_max_ms": round(1000 * max(tally.logins, default=0), 1),
        "server_cpu_s": round(cpu, 1),
        **check,
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _server_pid(port: int) -> int | None:
    """The pid of the `arena serve` listening on ``port`` (the serve() helper does not expose it)."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"serve" in cmd and str(port).encode() in cmd:
                return int(proc.name)
    return None


def run_one(db: str, args: argparse.Namespace) -> dict[str, Any]:
    """Set up a store of kind ``db``, serve it, drive it, check it; every server stopped afterwards."""
    work = Path(tempfile.mkdtemp(prefix=f"arena-load-{db}-"))
    names = annotator_names(args.annotators)
    with fake_model_server() as model_url, postgres(work) if db == "postgresql" else _sqlite(work) as url:
        models = models_yaml(work / "models.yaml", model_url)
        t0 = time.perf_counter()
        prepare(url, models, names)
        print(f"[{db}] prepared {len(names)} annotators and the round in {time.perf_counter() - t0:.0f} s", flush=True)
        with serve(models, url, work / "serve.log") as base:
            if args.login_storm:
                return {"db": db, **asyncio.run(login_storm(base, names))}
            pid = _server_pid(int(base.rstrip("/").rsplit(":", 1)[1]))
            cpu0, client0 = (_cpu_seconds(pid) if pid else 0.0), _cpu_seconds(os.getpid())
            tally, seconds = asyncio.run(drive(base, names, args))
            cpu = (_cpu_seconds(pid) - cpu0) if pid else float("nan")
            client_cpu = _cpu_seconds(os.getpid()) - client0
        check = verify(url, tally)
    row = summarize(db, tally, seconds, check, cpu, args)
    row["client_cpu_s"] = round(client_cpu, 1)  # the simulated annotators share the machine with the server
    row["log"] = str(work / "serve.log")
    return row


@contextmanager
def _sqlite(work: Path) -> Iterator[str]:
    yield f"sqlite:///{work / 'ratings.db'}"


def table(rows: list[dict[str, Any]]) -> str:
    """The markdown table docs/reliability.md shows."""
    cols = (
        "store",
        "annotators",
        "duration",
        "submissions",
        "per s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "p50 / p99 ms after 1st min",
        "errors",
        "lost",
        "duplicated",
        "failed but stored",
        "server CPU s",
    )
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append(
            f"| {r['db']} | {r['annotators']} | {r['duration_s']} s | {r['submissions']} | {r['per_s']} "
            f"| {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} | {r['settled_p50_ms']} / {r['settled_p99_ms']} "
            f"| {r['errors']} | {r['lost']} | {r['duplicated']} | {r['failed_but_stored']} | {r['server_cpu_s']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--annotators", type=int, default=100)
    p.add_argument("--duration", type=float, default=300.0, help="seconds of load (default 300)")
    p.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    # A person reads a dialog and two answers, then scores both: 10 s on average is already quick.
    p.add_argument(
        "--think",
        type=float,
        nargs=2,
        default=(5.0, 15.0),
        metavar=("MIN", "MAX"),
        help="seconds an annotator reads before submitting, drawn uniformly (default 5 15)",
    )
    p.add_argument("--vote-share", type=float, default=0.5, help="share of blind votes among submissions")
    p.add_argument("--ramp", type=float, default=10.0, help="seconds over which the annotators arrive")
    p.add_argument("--call-timeout", type=float, default=30.0, help="seconds before a call counts as failed")
    p.add_argument(
        "--login-storm",
        action="store_true",
        help="instead: all annotators but one log in at once while that one keeps working",
    )
    p.add_argument("--json", type=Path, help="also write the result rows here")
    args = p.parse_args(argv)
    rows = []
    for db in ["sqlite", "postgresql"] if args.db == "both" else [args.db]:
        rows.append(run_one(db, args))
        print(json.dumps(rows[-1], ensure_ascii=False, indent=1), flush=True)
    if args.login_storm:
        return 0
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    bad = any(r["lost"] or r["duplicated"] or r["failed_but_stored"] or r["vote_count_mismatch"] for r in rows)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
