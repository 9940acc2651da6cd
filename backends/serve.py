"""Start a local OpenAI-compatible server (``transformers serve``) for tests, benchmarks and demos."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """A running server: its OpenAI base URL, the model name it serves, and its process."""

    base_url: str
    model: str
    process: subprocess.Popen
    log: Path

    def kill(self) -> None:
        """SIGKILL the server (a crash, as far as its clients can tell)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


def _transformers_cli() -> list[str]:
    script = Path(sys.executable).with_name("transformers")
    return [str(script)] if script.exists() else [shutil.which("transformers") or "transformers"]


@contextlib.contextmanager
def transformers_serve(model_dir: str | Path, *, startup_timeout: float = 180.0) -> Iterator[Server]:
    """Run ``transformers serve MODEL_DIR`` on a free loopback port; stop it (and its children) on exit."""
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="arena-tfserve-"))
    log = workdir / "server.log"
    hub = workdir / "hub"
    hub.mkdir()
    # Offline and with an empty hub cache: nothing is fetched, /v1/models answers with an empty list.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub), "TOKENIZERS_PARALLELISM": "false"}
    cmd = [*_transformers_cli(), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = Server(base_url=f"http://127.0.0.1:{port}/v1", model=str(model_dir), process=process, log=log)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"transformers serve not up after {startup_timeout:g} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.25)
        yield server
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(workdir, ignore_errors=True)
