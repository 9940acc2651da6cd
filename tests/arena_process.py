"""A real `arena serve` process the reliability tests can also kill -9 and start again on the same store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.browser import ROOT, free_port


class ArenaProcess:
    """`arena serve --config CONFIG --db DB` on a free loopback port (default host: no --host given)."""

    def __init__(self, config: Path, db: str, log: Path, extra: list[str] | None = None) -> None:
        self.config, self.db, self.log, self.extra = config, db, log, extra or []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180) -> ArenaProcess:
        """Start the server and wait until its page answers."""
        cmd = [
            sys.executable,
            "-m",
            "arena.cli",
            "serve",
            "--config",
            str(self.config),
            "--db",
            self.db,
            "--port",
            str(self.port),
            *self.extra,
        ]
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"arena serve exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"arena serve did not answer within {timeout} s:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.3)

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, no transaction is finished (the worst crash there is)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop it politely, then by force."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> ArenaProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
