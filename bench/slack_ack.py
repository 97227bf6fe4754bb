"""Time to acknowledge a signed ``/handoff status``: Handoff's /slack/events beside a bare slack_bolt app.

One aiohttp server (a child process) serves both: Handoff's Slack side (``mount_slack``: total signature
check, Bolt, listeners that ack and then hand the command to the core) at ``/slack/events``, and a bare
slack_bolt ``AsyncApp`` whose ``/handoff`` listener only acks, at ``/bare/slack/events``. The Slack
emulator (another child) is the Web API for both. This process sends signed requests, 50 at a time,
alternating between the two in rounds, and prints p50/p99 for each and their ratio.

    python bench/slack_ack.py [--requests 3000] [--concurrency 50] [--rounds 30] [--core quick|stalled|both]

``--core quick`` answers each command at once (privately, so Handoff also calls the Web API after each
ack); ``--core stalled`` never answers within the run, like a core whose Azure backends are stalled;
``--core both`` (the default) runs one, then the other. The server freezes its start-up objects out of
the garbage collector's way (``gc.freeze()``), as a long-running server would; without that, a full
collection now and then lands in one app's round or the other's and decides the p99.
Target: Handoff's p99 within 1.5 times bare Bolt's, and every ack under 3 s.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from adapters.emulators.slack import sign  # noqa: E402

# --- child: the Slack emulator -----------------------------------------------------------------------


async def run_emulator(minted: int) -> None:
    from adapters.emulators.slack import SlackEmulator

    slack = SlackEmulator()
    await slack.start()
    channel, user = slack.state.channel("ml-models"), slack.world.user("alice")
    urls = [
        f"{slack.base_url}/hooks/commands/{slack.state.new_response_url('commands', channel.id, user.id).token}"
        for _ in range(minted)
    ]
    print(
        json.dumps(
            {
                "url": slack.base_url,
                "api_url": slack.api_url,
                "token": slack.bot_token,
                "secret": slack.signing_secret,
                "team": slack.world.team_id,
                "channel": channel.id,
                "user": user.id,
                "response_urls": urls,
            }
        ),
        flush=True,
    )
    await _until_stdin_closes()
    await slack.stop()


# --- child: the server with both apps ----------------------------------------------------------------


async def run_server(api_url: str, token: str, secret: str, core: str) -> None:
    from aiohttp import web
    from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
    from slack_bolt.async_app import AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    from adapters.slack import mount_slack
    from adapters.web.errors import error_middleware
    from adapters.web.limits import BODY_LIMITS, body_limit_middleware
    from bot.config import Secret, SlackSettings
    from bot.interactions import ActionRequest, ActionResult, CommandRequest, Reply, Visibility

    class Core:
        async def on_command(self, request: CommandRequest) -> Reply:
            if core == "stalled":
                await asyncio.sleep(3600)
            return Reply(f"{request.text}: all green", None, Visibility.PRIVATE)

        async def on_action(self, request: ActionRequest) -> ActionResult:
            return ActionResult(False, "not in this bench")

        async def refuse_before_comment(self, request: ActionRequest) -> str | None:
            return None

    app = web.Application(middlewares=[error_middleware, body_limit_middleware], client_max_size=3 * 1024 * 1024)
    app[BODY_LIMITS] = {}
    settings = SlackSettings(
        signing_secret=Secret("SLACK_SIGNING_SECRET", secret),
        bot_token=Secret("SLACK_BOT_TOKEN", token),
        api_base_url=api_url,
    )
    integration = mount_slack(app, settings, Core())

    bare = AsyncApp(signing_secret=secret, client=AsyncWebClient(token=token, base_url=api_url))

    @bare.command("/handoff")
    async def handoff(ack: Any) -> None:
        await ack()

    async def bare_events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bare.async_dispatch(await to_bolt_request(request)))

    app.router.add_post("/bare/slack/events", bare_events)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    gc.collect()
    gc.freeze()  # start-up objects out of the collector's way, as a long-running server would do
    print(json.dumps({"url": f"http://127.0.0.1:{port}"}), flush=True)
    await _until_stdin_closes()
    await integration.close(timeout=0.5)
    await runner.cleanup()


async def _until_stdin_closes() -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)


# --- this process: the load ----------------------------------------------------------------------------


def command_body(env: dict[str, Any], response_url: str) -> bytes:
    return urlencode(
        {
            "token": "bench",
            "team_id": env["team"],
            "team_domain": "bench",
            "channel_id": env["channel"],
            "channel_name": "ml-models",
            "user_id": env["user"],
            "user_name": "alice",
            "command": "/handoff",
            "text": "status",
            "api_app_id": "A0HANDOFF01",
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": "1.2.3",
        }
    ).encode()


async def load(
    session: aiohttp.ClientSession, url: str, bodies: list[bytes], secret: str, concurrency: int
) -> tuple[list[float], int]:
    """Send ``bodies`` signed, ``concurrency`` at a time; seconds per ack, and how many were not 200."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    failures = 0

    async def worker() -> None:
        nonlocal failures
        while not queue.empty():
            body = queue.get_nowait()
            ts = str(int(time.time()))
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": ts,
                "X-Slack-Signature": sign(secret, ts, body),
            }
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                status = response.status
            latencies.append(time.perf_counter() - started)
            failures += status != 200

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, failures


def spawn(*args: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    process = subprocess.Popen(
        [sys.executable, __file__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.kill()
        raise RuntimeError(f"{args[:2]} did not start")
    return process, json.loads(line)


def stop(process: subprocess.Popen[str]) -> None:
    try:
        if process.stdin is not None:
            process.stdin.close()
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bench(args: argparse.Namespace) -> int:
    cores = ["quick", "stalled"] if args.core == "both" else [args.core]
    per_mode = args.requests // 4 + 2 * args.concurrency
    emulator, env = spawn("--role", "emulator", "--mint", str(per_mode * len(cores)))
    met = True
    try:
        for i, core in enumerate(cores):
            response_urls = env["response_urls"][i * per_mode : (i + 1) * per_mode]
            met &= await measure(args, core, env, response_urls)
    finally:
        stop(emulator)
    return 0 if met else 1


async def measure(args: argparse.Namespace, core: str, env: dict[str, Any], response_urls: list[str]) -> bool:
    """One server with both apps and the given core; prints the table; True if the target is met."""
    server, info = spawn(
        "--role", "server", "--api-url", env["api_url"], "--token", env["token"], "--secret", env["secret"],
        "--core", core,
    )  # fmt: skip
    try:
        urls = {"bare slack_bolt": f"{info['url']}/bare/slack/events", "Handoff": f"{info['url']}/slack/events"}
        bodies = [command_body(env, response_urls[i // 4]) for i in range(args.requests)]  # 4 uses of 5 per URL
        warm = [command_body(env, url) for url in response_urls[-(args.concurrency // 4 + 1) :] for _ in range(4)]
        results: dict[str, list[float]] = {name: [] for name in urls}
        failures = dict.fromkeys(urls, 0)
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            for url in urls.values():  # auth.test, the user cache, connections
                await load(session, url, warm[: args.concurrency], env["secret"], args.concurrency)
            size = args.requests // args.rounds
            for r in range(args.rounds):
                order = list(urls.items()) if r % 2 == 0 else list(reversed(urls.items()))
                for name, url in order:
                    chunk = bodies[r * size : (r + 1) * size]
                    latencies, failed = await load(session, url, chunk, env["secret"], args.concurrency)
                    results[name] += latencies
                    failures[name] += failed
                    await asyncio.sleep(0.2)  # let the round's follow-up work drain before the next
    finally:
        stop(server)

    print(
        f"Slack ack latency: signed `/handoff status`, {args.concurrency} concurrent, "
        f"{len(results['Handoff'])} requests each in {args.rounds} interleaved rounds, core={core}"
    )
    print(f"{'':18}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'mean ms':>9}{'non-200':>9}")
    stats = {}
    for name, values in results.items():
        p50, p99 = percentile(values, 0.50) * 1000, percentile(values, 0.99) * 1000
        stats[name] = (p50, p99, max(values) * 1000)
        print(
            f"{name:18}{p50:>9.1f}{p99:>9.1f}{max(values) * 1000:>9.1f}"
            f"{statistics.fmean(values) * 1000:>9.1f}{failures[name]:>9}"
        )
    (h50, h99, hmax), (b50, b99, _) = stats["Handoff"], stats["bare slack_bolt"]
    print(f"{'ratio':18}{h50 / b50:>9.2f}{h99 / b99:>9.2f}")
    ok = h99 <= 1.5 * b99 and hmax < 3000 and failures["Handoff"] == 0
    print(f"target: Handoff p99 <= 1.5 x bare Bolt's and every ack < 3 s: {'met' if ok else 'missed'}\n")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="requests per target")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--core", choices=["quick", "stalled", "both"], default="both")
    parser.add_argument("--role", choices=["emulator", "server"], help=argparse.SUPPRESS)
    parser.add_argument("--mint", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--api-url", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--secret", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "emulator":
        # it stands in for Slack's own servers: let it take only the CPU the apps measured leave
        os.nice(10)
        asyncio.run(run_emulator(args.mint))
        return 0
    if args.role == "server":
        asyncio.run(run_server(args.api_url, args.token, args.secret, args.core))
        return 0
    return asyncio.run(bench(args))


if __name__ == "__main__":
    sys.exit(main())
