"""Azure DevOps runs of one pipeline, as the core's tests send them."""

from __future__ import annotations

from datetime import datetime

from bot.events import PipelineRef, RunStateChanged


def run(run_id: str = "77") -> PipelineRef:
    """Run ``run_id`` of the release-app-y pipeline in contoso/mlops."""
    return PipelineRef(
        organization="contoso",
        project="mlops",
        pipeline_id="3",
        pipeline_name="release-app-y",
        run_id=run_id,
        run_name=f"2026.{run_id}",
    )


def run_state(state: str, at: datetime, result: str | None = None, run_id: str = "77") -> RunStateChanged:
    """The run now in ``state`` (with ``result`` once completed), sent at ``at``."""
    return RunStateChanged(
        source="azure-devops",
        event_id=f"run-{run_id}-{state}",
        occurred_at=at,
        scope="contoso",
        run=run(run_id),
        state=state,
        result=result,
    )
