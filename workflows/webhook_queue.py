"""The run's ordered webhook deliveries, each a durable activity.

Deliveries go one after the other, so receivers get a run's events in the
order they happened even when an earlier one needed retries; the run never
waits for them except before it ends or continues as new.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, FailureError

with workflow.unsafe.imports_passed_through():
    from countersign.models import (
        DELIVER_WEBHOOK_ACTIVITY,
        JsonObject,
        RunInput,
        RunState,
        WebhookDelivery,
        WebhookEvent,
    )


def error_message(err: BaseException) -> str:
    """The innermost message of an activity failure, without the wrappers' prefixes."""
    cause: BaseException | None = err
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, FailureError):
        # The message alone: str() prefixes the failure type, which readers
        # of the run do not need.
        return cause.message
    return str(cause) if cause is not None else str(err)


class WebhookQueue:
    """Webhook deliveries of one run, in order, from workflow code."""

    def __init__(self, run: RunInput, state: RunState) -> None:
        self._run = run
        # The count of deliveries lives in the state, so delivery ids stay
        # unique across continue-as-new.
        self._state = state
        self._deliveries: list[asyncio.Task[int]] = []

    @property
    def idle(self) -> bool:
        """Whether no delivery is in flight."""
        return all(delivery.done() for delivery in self._deliveries)

    def push(self, event: WebhookEvent, data: JsonObject) -> None:
        """Send an event to every receiver after the ones before it, if the run has receivers.

        Its ``delivery_id`` (run id and running count) stays stable across
        retries, so receivers drop duplicates.
        """
        options = self._run.options
        if not options.webhooks:
            return
        self._state.webhooks_sent += 1
        delivery = WebhookDelivery(
            delivery_id=f"{self._run.run_id}:{self._state.webhooks_sent}",
            event=event,
            run_id=self._run.run_id,
            agent_id=self._run.agent_id,
            occurred_at=workflow.now(),
            data=data,
        )
        previous = self._deliveries[-1] if self._deliveries else None

        async def deliver() -> int:
            if previous is not None:
                await workflow.wait([previous])
            sent: int = await workflow.execute_activity(
                DELIVER_WEBHOOK_ACTIVITY,
                delivery,
                result_type=int,
                start_to_close_timeout=timedelta(seconds=60),
                schedule_to_close_timeout=options.webhook_retry_for,
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=1),
                    backoff_coefficient=2.0,
                    maximum_interval=timedelta(minutes=10),
                ),
                summary=event.value,
            )
            return sent

        self._deliveries.append(asyncio.create_task(deliver()))

    async def drain(self) -> None:
        """Wait for every delivery; one that gives up is logged, not fatal."""
        for outcome in await asyncio.gather(*self._deliveries, return_exceptions=True):
            if isinstance(outcome, BaseException):
                workflow.logger.warning("webhook delivery gave up: %s", error_message(outcome))
        self._deliveries.clear()
