"""Ingest throughput and acknowledgement latency: Handoff's /hooks/azure-devops beside a bare aiohttp handler.

Both servers are fresh processes on loopback. The same generator (a separate process, aiohttp client)
sends a fixed number of Azure DevOps run-state-changed deliveries, each with its own event id, for 100
runs, with basic auth:

- closed loop: 16 connections send as fast as answers come back → durable events per second;
- open loop: requests started on a fixed schedule of 1,000 per second for 3 seconds → p50/p99 latency
  from the scheduled start to the answer (so a slow server cannot hide its queueing).

Handoff runs ``handoff serve`` with SQLite, a subscription that routes every run to a channel (so each
event stores its card state and a delivery), and the outbox running; the server runs this checkout's
code, whatever copy of Handoff is installed. The bare handler only reads the body.

    python bench/ingest.py [--events 3000]

Targets: Handoff's rate at least 0.5 of the bare handler's; p99 acknowledgement under 25 ms at 1,000/s.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = json.loads(
    (REPO.parent / "shared/samples/ado/ms.vss-pipelines.run-state-changed-event.json").read_text()
    if (REPO.parent / "shared/samples/ado/ms.vss-pipelines.run-state-changed-event.json").exists()
    else "{}"
)
SECRET = "bench-hook-password"
AUTH = "Basic " + base64.b64encode(f"handoff:{SECRET}".encode()).decode()

BARE_APP = """
import sys
from aiohttp import web
async def hook(request):
    await request.read()
    return web.json_response({"accepted": 1})
async def ready(request):
    return web.json_response({"status": "ready"})
app = web.Application(client_max_size=3 * 1024 * 1024)
app.router.add_post("/hooks/azure-devops", hook)
app.router.add_get("/readyz", ready)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

CONFIG = """
server: {{host: 127.0.0.1, port: {port}, log_level: WARNING}}
store: {{url: "sqlite:///{db}"}}
azure_devops:
  organization_url: https://dev.azure.com/contoso
  projects: [mlops]
  pat: "${{BENCH_PAT}}"
  service_hooks:
    basic:
      username: handoff
      password: "${{BENCH_HOOK_PASSWORD}}"
channels:
  releases: {{slack: C0BENCH}}
subscriptions:
  - channel: releases
    events: [run]
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("server exited during start-up")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    raise RuntimeError(f"{url} never became ready")


def payload(i: int) -> bytes:
    body = json.loads(json.dumps(SAMPLE))
    body["id"] = str(uuid.uuid4())
    run = body.get("resource", {}).get("run", {})
    run["id"] = 1000 + i % 100
    run["state"] = "inProgress" if i < 100 else "completed"
    run["result"] = None if i < 100 else "succeeded"
    body.setdefault("resourceContainers", {})["account"] = {"baseUrl": "https://dev.azure.com/contoso/"}
    return json.dumps(body).encode()


# --- the generator (runs in its own process) ------------------------------------------------------------


async def generate(url: str, events: int, offset: int) -> dict[str, float]:
    import aiohttp

    headers = {"Authorization": AUTH, "Content-Type": "application/json"}
    bodies = [payload(offset + i) for i in range(events)]
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send(body: bytes) -> int:
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                return resp.status

        # closed loop: 16 workers
        queue = list(bodies[: events // 2])
        statuses: list[int] = []

        async def worker() -> None:
            while queue:
                statuses.append(await send(queue.pop()))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(16)))
        closed_rate = len(statuses) / (time.perf_counter() - started)

        # open loop: 1,000 per second for up to 3 s
        open_bodies = bodies[events // 2 :][:3000]
        latencies: list[float] = []
        begin = time.perf_counter() + 0.05

        async def timed(i: int, body: bytes) -> None:
            at = begin + i / 1000
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            status = await send(body)
            statuses.append(status)
            latencies.append((time.perf_counter() - at) * 1000)

        await asyncio.gather(*(timed(i, b) for i, b in enumerate(open_bodies)))
    ok = sum(1 for s in statuses if s == 200)
    latencies.sort()
    return {
        "closed_rate": closed_rate,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "ok": ok,
        "sent": len(statuses),
    }


def run_generator(url: str, events: int, offset: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--generate", url, "--events", str(events), "--offset", str(offset)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout))


def measure(name: str, command: list[str], port: int, events: int, env: dict[str, str], cwd: Path) -> dict[str, float]:
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", process)
        return run_generator(f"http://127.0.0.1:{port}/hooks/azure-devops", events, 0)
    finally:
        process.terminate()
        process.wait(timeout=15)


def durable_events(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM received_events").fetchone()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--generate", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--offset", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        print(json.dumps(asyncio.run(generate(args.generate, args.events, args.offset))))
        return 0
    if not SAMPLE:
        print("the documented sample payload (../shared/samples/ado) is needed", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        port = free_port()
        db = folder / "handoff.db"
        config = folder / "handoff.yaml"
        config.write_text(CONFIG.format(port=port, db=db))
        # the servers run this checkout's code, whatever copy of Handoff is installed
        path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "BENCH_PAT": "bench-pat", "BENCH_HOOK_PASSWORD": SECRET, "PYTHONPATH": path}
        handoff = measure(
            "handoff", [sys.executable, "-m", "bot", "serve", "--config", str(config)], port, args.events, env, folder
        )
        stored = durable_events(db)
        port = free_port()
        bare = measure("bare", [sys.executable, "-c", BARE_APP, str(port)], port, args.events, env, folder)
    print(f"{args.events} Azure DevOps run-state deliveries for 100 runs, loopback")
    print(f"{'':18}{'events/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'ok':>7}")
    for name, result in (("handoff (SQLite)", handoff), ("bare aiohttp", bare)):
        print(
            f"{name:18}{result['closed_rate']:>10.0f}{result['p50_ms']:>9.1f}{result['p99_ms']:>9.1f}"
            f"{int(result['ok']):>7}"
        )
    ratio = handoff["closed_rate"] / bare["closed_rate"]
    print(f"{'ratio':18}{ratio:>10.2f}")
    print(f"durable events stored by handoff: {stored} of {int(handoff['sent'])} sent")
    print(
        f"targets: rate ratio >= 0.5 ({'met' if ratio >= 0.5 else 'missed'}); "
        f"p99 < 25 ms at 1,000/s ({'met' if handoff['p99_ms'] < 25 else 'missed'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
