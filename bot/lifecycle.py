"""Process lifecycle helpers shared by the commands that serve until stopped."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("handoff.lifecycle")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def until_signalled() -> None:
    """Wait for SIGTERM or SIGINT (Ctrl-C)."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stopping.set)
    try:
        await stopping.wait()
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)


WORKER_PREFIX = "handoff-worker"


class WorkerThreads(ThreadPoolExecutor):
    """A thread pool whose threads are named as Handoff's workers (``handoff-worker-<service>``), and whose calls
    still running hold the process's exit for its grace period only (:func:`run_server`).

    Only a call still running counts, not an idle thread: one that has not yet seen the pool shut down is not
    waiting on any service."""

    def __init__(self, max_workers: int | None = None, service: str = "") -> None:
        super().__init__(max_workers, thread_name_prefix=f"{WORKER_PREFIX}-{service}" if service else WORKER_PREFIX)

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return super().submit(_counted, fn, *args, **kwargs)


_calls = threading.Condition()
_running = 0  # calls running on WorkerThreads, guarded by _calls


def _counted(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    global _running
    with _calls:
        _running += 1
    try:
        return fn(*args, **kwargs)
    finally:
        with _calls:
            _running -= 1
            _calls.notify_all()


def _still_running(within: float) -> int:
    """How many calls on WorkerThreads are still running after waiting at most ``within`` seconds for them."""
    with _calls:
        _calls.wait_for(lambda: _running == 0, timeout=within)
        return _running


def run_server(main: Coroutine[Any, Any, T], grace: float) -> T:
    """Run ``main`` as :func:`asyncio.run` does, but never let the exit wait long on a worker thread.

    The Azure SDKs are synchronous and run in worker threads; one still waiting on a stalled service
    when the server has stopped would hold the process until the SDK's own timeout (100 s for Azure
    DevOps), past any orchestrator's grace period. Such calls get ``grace`` seconds to finish; then the
    process exits without them (what they would have done is retried by the senders or the sweep).
    """
    runner = asyncio.Runner()
    workers = WorkerThreads()
    runner.get_loop().set_default_executor(workers)
    status = 1  # what the process exits with if it must leave worker threads behind
    try:
        result = runner.run(main)
        status = result if isinstance(result, int) else 0
        return result
    finally:
        _leave(runner, workers, grace, status)


def run_command(main: Coroutine[Any, Any, int], interrupted: Callable[[signal.Signals], None]) -> int:
    """Run a command's ``main`` to its exit status, or until SIGINT (Ctrl-C) or SIGTERM, whichever comes first.

    A signal cancels ``main`` at once, however long the service it waits on takes: ``interrupted`` is called
    with the signal (to say so), and the status is 128 + its number, as a shell reports a process it stopped.
    Worker threads still waiting on a service do not hold the exit.
    """
    runner = asyncio.Runner()
    workers = WorkerThreads()
    runner.get_loop().set_default_executor(workers)
    status = 1
    try:
        status = runner.run(_until_done_or_signalled(main, interrupted))
        return status
    finally:
        _leave(runner, workers, 0.0, status)


async def _until_done_or_signalled(
    main: Coroutine[Any, Any, int], interrupted: Callable[[signal.Signals], None]
) -> int:
    task = asyncio.ensure_future(main)
    received: list[signal.Signals] = []
    loop = asyncio.get_running_loop()

    def stop(signum: signal.Signals) -> None:
        received.append(signum)
        task.cancel()

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop, signum)
    try:
        return await task
    except asyncio.CancelledError:
        if not received:
            raise
        interrupted(received[0])
        return 128 + received[0]
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)


def _leave(runner: asyncio.Runner, workers: ThreadPoolExecutor, grace: float, status: int) -> None:
    """Close ``runner``, giving the calls still running on worker threads ``grace`` seconds; then exit without
    them."""
    workers.shutdown(wait=False, cancel_futures=True)
    if unanswered := _still_running(grace):
        log.warning("exiting without waiting for %d call(s) to a service still unanswered", unanswered)
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(status)  # a worker thread cannot be stopped, and the interpreter would wait for it
    runner.close()
