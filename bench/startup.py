"""Start-up cost: time to a 200 from /readyz and RSS once ready, Handoff beside a bare aiohttp app.

Both are started the same way, as a fresh Python process on a free loopback port, and polled until
``/readyz`` answers 200. Handoff runs ``handoff serve`` with ``handoff.example.yaml`` (a new SQLite
file each time, so the figure includes creating and migrating the store).

    python bench/startup.py [--runs 5]

Targets: Handoff ready within 2 s and under 150 MB RSS.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
BARE_APP = """
import sys
from aiohttp import web
async def readyz(request):
    return web.json_response({"status": "ready"})
app = web.Application()
app.router.add_get("/readyz", readyz)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def measure(command: list[str], port: int, cwd: Path) -> tuple[float, float]:
    """Seconds from spawn to the first 200 on /readyz, and the process's RSS in MB at that moment."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/readyz"
        deadline = started + 30
        while not ready(url):
            if process.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError(f"{command[:4]} did not become ready")
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        rss = psutil.Process(process.pid).memory_info().rss / 1e6
        return elapsed, rss
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {"handoff": [], "bare aiohttp": []}
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            command = [sys.executable, "-m", "bot", "serve", "--config", str(REPO / "handoff.example.yaml")]
            results["handoff"].append(measure([*command, "--port", str(port)], port, Path(tmp)))
            port = free_port()
            results["bare aiohttp"].append(measure([sys.executable, "-c", BARE_APP, str(port)], port, Path(tmp)))
    medians = {
        name: (statistics.median(t for t, _ in runs), statistics.median(r for _, r in runs))
        for name, runs in results.items()
    }
    print(f"start-up to /readyz 200, median of {args.runs} runs")
    print(f"{'':14}{'ready (s)':>10}{'RSS (MB)':>10}")
    for name, (seconds, rss) in medians.items():
        print(f"{name:14}{seconds:>10.3f}{rss:>10.1f}")
    (h_s, h_rss), (b_s, b_rss) = medians["handoff"], medians["bare aiohttp"]
    print(f"{'ratio':14}{h_s / b_s:>10.2f}{h_rss / b_rss:>10.2f}")
    verdict = "meets" if h_s <= 2.0 and h_rss <= 150 else "misses"
    print(f"target: ready <= 2 s and RSS <= 150 MB: Handoff {verdict} it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
