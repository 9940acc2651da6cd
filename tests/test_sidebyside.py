"""Side-by-side streaming isolates failures: a refused, a stalled and a healthy model answer together."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest

from arena.annotation.sidebyside import stream_sides
from backends.registry import build_registry
from tests.browser import free_port

HELLO = [{"role": "user", "content": "안녕하세요"}]


@pytest.fixture()
def stalling_server() -> Iterator[int]:
    """A real TCP server that accepts connections and reads requests but never answers."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield srv.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    srv.close()


def test_one_healthy_side_finishes_while_others_fail(tiny_models, stalling_server, tmp_path):
    closed = free_port()  # nothing listens here: connection refused
    config = tmp_path / "models.yaml"
    config.write_text(
        "models:\n"
        f"  - {{name: llama-tiny, kind: local, path: '{tiny_models['llama-tiny']}', options: {{max_tokens: 24}}}}\n"
        f"  - {{name: refused, kind: openai, base_url: 'http://127.0.0.1:{closed}/v1'}}\n"
        f"  - {{name: stalled, kind: openai, base_url: 'http://127.0.0.1:{stalling_server}/v1'}}\n",
        encoding="utf-8",
    )
    registry = build_registry(config)

    async def run() -> list:
        await registry["llama-tiny"].load()  # as `arena serve` does: the stall clock is not for loading weights
        snapshots = []
        async for sides in stream_sides([(n, registry[n]) for n in registry.names()], HELLO, stall_timeout=8):
            snapshots.append([(s.done, s.error) for s in sides])
            final = sides
        await registry.aclose()
        return final, snapshots

    final, snapshots = asyncio.run(run())
    healthy, refused, stalled = final
    assert healthy.error is None and healthy.finish is not None and healthy.finish.usage.completion_tokens > 0
    assert refused.error and "connection" in refused.error.lower()
    assert stalled.error and "timeout" in stalled.error.lower()
    # The refused side failed early, while the stalled one was still waiting: failures do not wait on each other.
    assert any(r[1][0] and not r[2][0] for r in snapshots)


def test_closing_the_stream_cancels_every_side(tiny_models, tmp_path):
    config = tmp_path / "models.yaml"
    config.write_text(
        "models:\n"
        f"  - {{name: a, kind: local, path: '{tiny_models['llama-tiny']}', options: {{max_tokens: 400}}}}\n"
        f"  - {{name: b, kind: local, path: '{tiny_models['polyglot-tiny']}', template: koalpaca,"
        " options: {max_tokens: 400}}\n",
        encoding="utf-8",
    )
    registry = build_registry(config)

    async def run() -> list:
        agen = stream_sides([(n, registry[n]) for n in registry.names()], HELLO, stall_timeout=60)
        async for sides in agen:
            if any(s.text for s in sides):
                break  # the annotator pressed stop
        await agen.aclose()
        # Give worker threads a moment to notice, then check nobody is still generating.
        await asyncio.sleep(1.0)
        alive = [t for t in threading.enumerate() if t.name.startswith("arena-local-")]
        await registry.aclose()
        return sides, alive

    sides, alive = asyncio.run(run())
    assert all(not s.done or s.finish is None or s.finish.finish_reason != "length" for s in sides)
    assert not alive, f"generation threads still running after stop: {alive}"
