"""Helpers for browser tests: a real `arena serve` subprocess and Debian's headless Chromium."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def chromium_path() -> str:
    """Debian's Chromium (Playwright's own browser download cannot work here)."""
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        raise RuntimeError(
            "Chromium not found: `make test` installs Debian's chromium package (apt-get install chromium)"
        )
    return path


def login(page, url: str, user: str, password: str) -> None:
    """Open the arena and log in through its login form (arena/web/security.py: one text and one password
    field; Enter posts it and lands on the app of the URL's language)."""
    page.goto(url)
    page.fill("input[type=text]", user)
    page.fill("input[type=password]", password)
    page.keyboard.press("Enter")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_models_yaml(path: Path, tiny_models: dict[str, Path], max_tokens: int = 48) -> Path:
    """A models file for the tiny test models, greedy so runs are reproducible."""
    path.write_text(
        "models:\n"
        f"  - {{name: polyglot-tiny, kind: local, path: '{tiny_models['polyglot-tiny']}', template: koalpaca,"
        f" options: {{max_tokens: {max_tokens}, temperature: 0}}}}\n"
        f"  - {{name: llama-tiny, kind: local, path: '{tiny_models['llama-tiny']}',"
        f" options: {{max_tokens: {max_tokens}, temperature: 0}}}}\n",
        encoding="utf-8",
    )
    return path


@contextmanager
def serve(
    config: Path,
    db: str,
    log: Path,
    extra: list[str] | None = None,
    timeout: float = 180,
    checkout: Path = ROOT,
) -> Iterator[str]:
    """Run `arena serve` on a free loopback port until the page answers; yield its URL; stop it.
    ``checkout``: the arena's code to run (another worktree, for a before/after measurement)."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "arena.cli",
        "serve",
        "--config",
        str(config),
        "--db",
        db,
        "--port",
        str(port),
        *(extra or []),
    ]
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=checkout,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(checkout)},
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"arena serve exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"arena serve did not answer within {timeout} s:\n{log.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
