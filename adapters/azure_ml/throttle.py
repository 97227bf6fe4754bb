"""A cap on how long Handoff waits when Azure ML asks it to (``Retry-After``).

azure-core's ``RetryPolicy`` sleeps the whole ``Retry-After`` of an error answer (a 429, a 503) before it
tries again, on the thread that made the call: a throttle of fifteen minutes would hold one of the Azure ML
service's few threads for fifteen minutes, and every other command and poll would wait behind it.
:class:`RetryAfterCap` sits right after the retry policy (``per_retry_policies``, azure-core's hook for a
policy that sees every try) and turns an error answer asking for more than :data:`MAX_RETRY_AFTER_SECONDS`
into :class:`AzureMLThrottled` at once: the request is not sent again, so nothing it asked for happens later
behind the person's back. A shorter ``Retry-After`` is still honoured by the retry policy.
"""

from __future__ import annotations

from typing import Any

from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import RetryPolicy, SansIOHTTPPolicy

from adapters.waits import wait_text

MAX_RETRY_AFTER_SECONDS = 30.0
"""The longest ``Retry-After`` a call waits out before trying again; a longer one fails the call."""


class AzureMLThrottled(Exception):
    """Azure ML answered a request with an error (``status``: a 429 turned it away) and asked Handoff to wait
    ``retry_after`` seconds, longer than :data:`MAX_RETRY_AFTER_SECONDS`; the request was not sent again.

    Not an ``AzureError`` on purpose: azure-core's retry policy would try an ``AzureError`` again.
    """

    def __init__(self, status: int, retry_after: float) -> None:
        super().__init__(f"Azure ML answered {status} with Retry-After {retry_after:g} s")
        self.status = status
        self.retry_after = retry_after

    @property
    def reason(self) -> str:
        """What to tell a person: who is holding Handoff back, and when to try again."""
        when = f"try again in {wait_text(self.retry_after)}"
        if self.status == 429:
            return f"Azure ML is throttling Handoff's requests; {when}"
        return f"Azure ML failed ({self.status}); {when}"


class RetryAfterCap(SansIOHTTPPolicy[Any, Any]):
    """Fails an error answer whose ``Retry-After`` is over ``limit`` seconds with :class:`AzureMLThrottled`.

    Put it in ``per_retry_policies`` (it must see each try's answer before the retry policy does). A
    ``SansIOHTTPPolicy`` holds no link to its pipeline, so one instance may serve every client of an
    ``MLClient``.
    """

    def __init__(self, limit: float = MAX_RETRY_AFTER_SECONDS) -> None:
        self.limit = limit
        self._reader = RetryPolicy.no_retries()  # (reads the header as the retry policy does: seconds, ms, dates)

    def on_response(self, request: PipelineRequest[Any], response: PipelineResponse[Any, Any]) -> None:
        status = response.http_response.status_code
        if status < 400:
            return
        retry_after = self._reader.get_retry_after(response)
        if retry_after is not None and retry_after > self.limit:
            raise AzureMLThrottled(status, retry_after)
