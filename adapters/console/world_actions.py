"""The world panel's buttons: make things happen in the emulated Azure ML and Azure DevOps.

Each action takes the suite, the person the console acts as and the request's fields, does one thing
through the emulators' own methods (which emit the Event Grid deliveries and service hooks a real
service would) and returns a sentence saying what happened.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from adapters.console import inputs
from adapters.console.errors import BadRequest
from adapters.console.people import ConsoleUser
from adapters.emulators.suite import EmulatorSuite

INTEGRATION_PIPELINE = "integrate-app-y"
RELEASE_PIPELINE = "release-app-y"
APP_REPOSITORY = "app-y"
DEFAULT_MODEL = "model-x"
DEFAULT_FAILING_STAGE = "Integration tests"
SAMPLE_ROWS = (
    b"customer_id,age,income,segment\n1001,34,58000.0,retail\n1002,51,91000.0,premium\n1003,27,31000.0,retail\n"
)

Perform = Callable[[EmulatorSuite, ConsoleUser, Mapping[str, Any]], str]


@dataclass(frozen=True)
class WorldAction:
    """A button of the world panel."""

    name: str
    label: str
    help: str
    perform: Perform

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "label": self.label, "help": self.help}


def land_data(suite: EmulatorSuite, user: ConsoleUser, body: Mapping[str, Any]) -> str:
    lake = suite.aml.world.lake
    if lake is None:
        raise BadRequest("The Azure ML world has no data lake.")
    path = inputs.optional_text(body, "path", max_length=500)
    if path is None:
        base = lake.paths[0] if lake.paths else ""
        count = sum(1 for key in suite.aml.state.blobs if key[0] == lake.account) + 1
        path = f"{base}{suite.clock.now():%Y-%m}/batch-{count:04d}.csv"
    path = path.strip().lstrip("/")
    if not path or ".." in path.split("/"):
        raise BadRequest("'path' must be a relative path in the lake.")
    suite.aml.land_blob(path, data=SAMPLE_ROWS, content_type="text/csv")
    return f"Landed {lake.filesystem}/{path} ({len(SAMPLE_ROWS)} bytes) in {lake.account}."


def register_model(suite: EmulatorSuite, user: ConsoleUser, body: Mapping[str, Any]) -> str:
    name = (inputs.optional_text(body, "model", max_length=200) or DEFAULT_MODEL).strip()
    if not name:
        raise BadRequest("'model' must name a model.")
    model = suite.aml.register_model(name, tags={"registered_by": user.key}, description="registered from the console")
    return f"Registered {model.name}:{model.version} in the Azure ML registry."


def detect_drift(suite: EmulatorSuite, user: ConsoleUser, body: Mapping[str, Any]) -> str:
    suite.aml.detect_drift()
    return "A data drift monitor reported drift."


def fail_next_training(suite: EmulatorSuite, user: ConsoleUser, body: Mapping[str, Any]) -> str:
    suite.aml.script_next_job(fail=True)
    return "The next Azure ML job will fail."


def fail_next_integration(suite: EmulatorSuite, user: ConsoleUser, body: Mapping[str, Any]) -> str:
    stage = (inputs.optional_text(body, "stage", max_length=200) or DEFAULT_FAILING_STAGE).strip()
    try:
        suite.ado.script_next_run(INTEGRATION_PIPELINE, fail_stage=stage)
    except KeyError as error:
        raise BadRequest(str(error.args[0])) from None
    return f"The next {INTEGRATION_PIPELINE} run will fail at {stage!r}."


def start_integration(suite: EmulatorSuite, user: ConsoleUser, body: Mapping[str, Any]) -> str:
    run = suite.ado.start_run(
        INTEGRATION_PIPELINE, requested_by=_identity(suite, user), parameters=_model_parameters(suite, body)
    )
    return f"Started {INTEGRATION_PIPELINE} run {run.name} (#{run.id})."


def start_release(suite: EmulatorSuite, user: ConsoleUser, body: Mapping[str, Any]) -> str:
    run = suite.ado.start_run(
        RELEASE_PIPELINE, requested_by=_identity(suite, user), parameters=_model_parameters(suite, body)
    )
    return f"Started {RELEASE_PIPELINE} run {run.name} (#{run.id}); production waits for an approval."


def push_app(suite: EmulatorSuite, user: ConsoleUser, body: Mapping[str, Any]) -> str:
    message = (inputs.optional_text(body, "message", max_length=500) or "Adapt app-y to the new model").strip()
    suite.ado.push(APP_REPOSITORY, "main", [message or "Update"], pushed_by=_identity(suite, user))
    return f"Pushed a commit to {APP_REPOSITORY} main (its CI starts {INTEGRATION_PIPELINE})."


ACTIONS: tuple[WorldAction, ...] = (
    WorldAction("land-data", "Land new data", "A CSV file arrives in the data lake (BlobCreated).", land_data),
    WorldAction("register-model", "Register a model version", "model-x gets a new version.", register_model),
    WorldAction("detect-drift", "Detect data drift", "The drift monitor fires.", detect_drift),
    WorldAction("fail-next-training", "Fail next training job", "The next Azure ML job fails.", fail_next_training),
    WorldAction(
        "start-integration",
        "Start integration run",
        "integrate-app-y runs against the latest model version.",
        start_integration,
    ),
    WorldAction(
        "fail-next-integration",
        "Fail next integration run",
        "The next integrate-app-y run fails its integration tests.",
        fail_next_integration,
    ),
    WorldAction("push-app", "Push to app-y", "A commit to app-y main triggers its CI.", push_app),
    WorldAction(
        "start-release",
        "Start release (with gate)",
        "release-app-y runs; production waits for an approval.",
        start_release,
    ),
)
BY_NAME = {action.name: action for action in ACTIONS}


def _identity(suite: EmulatorSuite, user: ConsoleUser) -> str | None:
    """The person's Azure DevOps identity (None: the bot's), so that runs say who started them."""
    return user.email if user.email and suite.ado.world.identity(user.email) is not None else None


def _model_parameters(suite: EmulatorSuite, body: Mapping[str, Any]) -> dict[str, str]:
    name = (inputs.optional_text(body, "model", max_length=200) or DEFAULT_MODEL).strip()
    version = inputs.optional_text(body, "version", max_length=50)
    if version is None:
        latest = suite.aml.state.latest_model(name)
        version = latest.version if latest else "latest"
    return {"modelName": name, "modelVersion": version.strip() or "latest"}
