"""Azure ML as the core's ``MLService``: jobs and models through the real ``MLClient``.

``azure.ai.ml`` is imported on first use (it costs seconds and ~100 MB), and every SDK call runs on the
service's own threads (:mod:`adapters.worker_pool`): a stalled workspace holds up its own calls, never
the chat platforms' DNS lookups or the store's checkpoints. Service errors become ``ServiceRefused`` or
``ServiceUnavailable``; a ``Retry-After`` too long to wait out on one of those threads
(:mod:`adapters.azure_ml.throttle`) fails the call at once, saying when to try again, and ends the wait for a
job's cancel, which Azure ML goes on with (:mod:`adapters.azure_ml.lro`).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from adapters.azure_ml.client_factory import AzureMLConnection, as_connection, build_ml_client
from adapters.azure_ml.lro import POLLING_INTERVAL, CappedPolling, StillWorking
from adapters.azure_ml.throttle import AzureMLThrottled
from adapters.worker_pool import WorkerPool
from bot.config import AzureMLSettings
from bot.ports import ModelVersion, RunStatus, ServiceRefused, ServiceUnavailable, StartedRun

log = logging.getLogger("handoff.azure_ml")
_CODE = re.compile(r"^\(\w+\)\s*")  # the "(UserError) " azure-core puts before the service's message
T = TypeVar("T")

STATES = {
    "NotStarted": "queued",
    "Queued": "queued",
    "Preparing": "queued",
    "Starting": "queued",
    "Provisioning": "queued",
    "Running": "running",
    "Finalizing": "running",
    "CancelRequested": "canceling",  # (a cancel Azure ML goes on with: the card reads canceled, not running)
    "Completed": "completed",
    "Failed": "completed",
    "Canceled": "completed",
    "NotResponding": "running",
    "Paused": "running",
}
RESULTS = {"Completed": "succeeded", "Failed": "failed", "Canceled": "canceled"}
# Threads for the workspace's calls: submissions, the status polls of running jobs, model reads.
WORKERS = 4


def said(error: Any) -> str:
    """What Azure ML said, once and on one line.

    azure-core's message of a service error repeats the service's own: ``(UserError) <text>`` then
    ``Code: UserError`` and ``Message: <text>`` on lines of their own (and more for inner errors).
    """
    odata = getattr(error, "error", None)
    text = str(getattr(odata, "message", None) or "")
    if not text:
        text = str(getattr(error, "message", None) or error).strip().split("\n", 1)[0]
        text = _CODE.sub("", text)
    return " ".join(text.split())


def _status(job: Any) -> str:
    """A job's status as the service spells it: the SDK may hand a ``JobStatus`` enum (``str()`` of which is
    ``"JobStatus.COMPLETED"``) or a plain string."""
    status = getattr(job, "status", None)
    return str(getattr(status, "value", status))


def _latest_model(ml: Any, name: str) -> Any:
    """The SDK's latest version of model ``name`` (read on a service thread); ServiceRefused when Azure ML has
    no such model."""
    from azure.ai.ml.exceptions import ValidationErrorType, ValidationException

    try:
        return ml.models.get(name, label="latest")
    except ValidationException as error:  # the SDK's answer to an empty list of versions: no such model
        if error.error_type != ValidationErrorType.RESOURCE_NOT_FOUND:
            raise
        raise ServiceRefused(f"Azure ML has no model {name}.") from None


def _model_version(ml: Any, name: str, version: str) -> Any:
    """The SDK's version ``version`` of model ``name`` (read on a service thread); ServiceRefused when Azure ML
    has no such model or version, naming the latest version where Azure ML says which that is."""
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    try:
        return ml.models.get(name, version=version)
    except ResourceNotFoundError:
        pass
    try:  # one more read, only when the version is missing: the answer names one there is
        latest = f"; its latest is {_latest_model(ml, name).version}"
    except (AzureError, OSError) as error:
        log.info("model %s has no version %s; its latest is not known (%s)", name, version, type(error).__name__)
        latest = ""
    raise ServiceRefused(f"Azure ML has no version {version} of model {name}{latest}.")


class _Unloadable(Exception):
    """The SDK could not load a job file with its overrides (said in its words)."""


class AzureMLService:
    """Implements :class:`bot.ports.MLService` on one workspace.

    Args:
        settings: the ``azure_ml`` section (or a connection for the emulator).
        base_dir: where relative job files are found (the configuration file's folder).
        workers: how many calls may be out at once; more wait their turn.
        client_kwargs: for :func:`~adapters.azure_ml.client_factory.build_ml_client` (``read_timeout``...).
    """

    def __init__(
        self,
        settings: AzureMLSettings | AzureMLConnection,
        base_dir: Path | None = None,
        workers: int = WORKERS,
        **client_kwargs: Any,
    ) -> None:
        self.connection = as_connection(settings)
        self.base_dir = base_dir or Path.cwd()
        self._client_kwargs = client_kwargs
        self._client: Any = None
        self._lock = threading.Lock()
        self._pool = WorkerPool("azure-ml", workers)

    def _ml(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = build_ml_client(self.connection, **self._client_kwargs)
            return self._client

    async def _call(
        self, what: str, function: Callable[..., T], *args: Any, sent: Callable[[], bool] | None = None
    ) -> T:
        """``function(*args)`` on a service thread, its errors as ``ServiceRefused`` or ``ServiceUnavailable``.

        ``sent`` says whether ``function`` had sent its change (a job's PUT) when it failed: an answer lost
        after that (the connection dropped, a read timeout, a 5xx, which a gateway gives for a request the
        service may have carried out) is ``may_have_acted``.
        """
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
            ServiceRequestError,
            ServiceResponseError,
            ServiceResponseTimeoutError,
        )

        try:
            return await self._pool.run(function, *args)
        except AzureMLThrottled as error:  # not sent again; a 429 turned it away, a 5xx's request may have acted
            log.warning("azure ml asked to wait %.0f s (HTTP %s) on a %s call", error.retry_after, error.status, what)
            acted = sent is not None and sent() and error.status != 429
            raise ServiceUnavailable(error.reason, may_have_acted=acted) from None
        except ResourceNotFoundError as error:
            raise ServiceRefused(f"Azure ML has no such {what}: {said(error)}") from None
        except ClientAuthenticationError:
            raise ServiceRefused("Azure ML did not accept Handoff's credentials.") from None
        except HttpResponseError as error:
            if error.status_code is not None and 400 <= error.status_code < 500 and error.status_code != 429:
                raise ServiceRefused(f"Azure ML refused the {what}: {said(error)}") from None
            acted = sent is not None and sent() and error.status_code != 429  # (a 429 turned it away)
            raise ServiceUnavailable(f"Azure ML failed ({error.status_code})", may_have_acted=acted) from None
        except ServiceResponseError as error:  # sent, and its answer lost
            if sent is None or not sent():
                raise ServiceUnavailable(f"Azure ML is unreachable ({type(error).__name__})") from None
            if isinstance(error, ServiceResponseTimeoutError):
                raise ServiceUnavailable("Azure ML did not answer in time", may_have_acted=True) from None
            lost = "The connection to Azure ML dropped before it answered"
            raise ServiceUnavailable(lost, may_have_acted=True) from None
        except (ServiceRequestError, OSError) as error:
            raise ServiceUnavailable(f"Azure ML is unreachable ({type(error).__name__})") from None

    async def submit_job(self, job_file: str, params: dict[str, str], name: str) -> StartedRun:
        """Submit the job ``name`` once: if a job of that name exists, it is returned, nothing is started.

        Azure ML answers a PUT of an existing job name by updating its tags (200), not by starting it
        again; asking first also keeps the existing job's tags as they are. So a submission whose answer
        was lost (``ServiceUnavailable`` with ``may_have_acted``) can be made again: it finds the job.
        A job file the SDK cannot load (or whose ``params`` it cannot apply) is refused; nothing is sent.
        """
        path = Path(job_file)
        if not path.is_absolute():
            path = self.base_dir / path
        # set as the job goes to create_or_update: a lost answer from then on may have started it (the SDK's own
        # lookups before its PUT count too; that errs on the safe side, since submitting again finds the job)
        sending = threading.Event()

        def submit() -> Any:
            from azure.ai.ml import load_job
            from azure.core.exceptions import ResourceNotFoundError

            ml = self._ml()
            try:  # submitted before (a retry, or a restart before the run was recorded): that job it is
                return ml.jobs.get(name)
            except ResourceNotFoundError:
                pass
            try:
                job = load_job(source=path, params_override=[{key: value} for key, value in params.items()])
            except Exception as error:  # the SDK's validation errors have no common base; nothing was sent
                log.info("job file %s could not be loaded: %s", path, error)
                raise _Unloadable(said(error)) from error
            job.name = name
            sending.set()
            return ml.jobs.create_or_update(job)

        if not path.is_file():
            looked = "" if str(path) == job_file else f" (looked for it at {path.absolute()})"
            raise ServiceRefused(f"The job file {job_file} does not exist{looked}.")
        try:
            job = await self._call("job", submit, sent=sending.is_set)
        except _Unloadable as error:
            raise ServiceRefused(f"The job file {job_file} cannot be submitted: {error}") from None
        studio = getattr(job, "studio_url", None)
        return StartedRun(str(job.name), str(job.display_name or job.name), studio, STATES.get(_status(job), "queued"))

    async def job_status(self, name: str) -> RunStatus:
        job = await self._call("job", lambda: self._ml().jobs.get(name))
        status = _status(job)
        return RunStatus(
            str(job.name), STATES.get(status, "running"), RESULTS.get(status), getattr(job, "studio_url", None)
        )

    async def cancel_job(self, name: str) -> None:
        """Ask Azure ML to cancel job ``name``, and wait for it to be canceled while Azure ML asks to look again
        within :data:`~adapters.azure_ml.throttle.MAX_RETRY_AFTER_SECONDS`; a longer wait is not taken: the
        cancel was accepted, Azure ML goes on with it, and the job's own polls tell when it ends."""
        interval = float(self._client_kwargs.get("polling_interval", POLLING_INTERVAL))

        def cancel() -> None:
            try:
                self._ml().jobs.begin_cancel(name, polling=CappedPolling(interval)).result()
            except StillWorking as still:
                log.info("azure ml accepted the cancel of %s and is still canceling it (%s)", name, still)

        await self._call("job", cancel)

    async def model_version(self, name: str, version: str | None = None) -> ModelVersion:
        from adapters.azure_ml.signatures import model_signature, read_mlmodel

        def read() -> ModelVersion:
            ml = self._ml()
            model = _model_version(ml, name, version) if version else _latest_model(ml, name)
            try:
                signature = model_signature(read_mlmodel(ml, name, model.version))
            except Exception as error:  # a model without an MLmodel file has no signature to compare
                log.info("model %s:%s has no readable signature (%s)", name, model.version, type(error).__name__)
                signature = None
            return ModelVersion(name, str(model.version), dict(model.tags or {}), signature)

        return await self._call("model", read)

    async def model_versions(self, name: str) -> list[ModelVersion]:
        def read() -> list[ModelVersion]:
            found = [ModelVersion(name, str(m.version), dict(m.tags or {})) for m in self._ml().models.list(name=name)]
            return sorted(found, key=lambda m: (0, int(m.version), "") if m.version.isdigit() else (1, 0, m.version))

        return await self._call("model", read)

    async def latest_model_version(self, name: str) -> str:
        """The latest created version of model ``name``: the registry's list of its versions, newest first, one
        long (what ``models.get(name, label="latest")`` reads); its MLmodel file is not fetched."""

        return await self._call("model", lambda: str(_latest_model(self._ml(), name).version))

    async def has_model_version(self, name: str, version: str) -> bool:
        def read() -> bool:
            from azure.core.exceptions import ResourceNotFoundError

            try:
                self._ml().models.get(name, version=version)
            except ResourceNotFoundError:
                return False
            return True

        return await self._call("model", read)

    async def tag_model(self, name: str, version: str, tags: dict[str, str]) -> None:
        def tag() -> None:
            ml = self._ml()
            model = ml.models.get(name, version=version)
            model.tags = {**(model.tags or {}), **tags}
            ml.models.create_or_update(model)

        await self._call("model", tag)

    async def close(self) -> None:
        """Let the service's threads end (a call still out finishes on its own)."""
        self._pool.close()
