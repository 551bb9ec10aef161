"""``WebhookDeliveryWorkflow``: one event pushed to one subscriber, durably.

One workflow per (subscription, event), id ``webhook-<subscription id>-<event id>``, started by the
gateway's dispatcher (``duban.gateway.webhooks``); the id makes a second start of the same delivery
a no-op. The ``deliver_webhook`` activity POSTs the event and fails on anything but a 2xx answer;
Temporal retries it with the subscription's backoff (doubling from ``initial_s`` up to
``max_interval_s``), across worker and server restarts, until ``give_up_after_s`` has passed since
the first attempt. Then ``park_webhook_delivery`` marks it parked, with the last error, where
``duban webhooks deliveries --parked`` shows it and ``duban webhooks redeliver`` starts it again:
nothing is dropped silently.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from workflows.activity_contracts import deliver_webhook, park_webhook_delivery
    from workflows.webhook_model import DeliveryInput, DeliveryResult, ParkInput

ATTEMPT_TIMEOUT = timedelta(seconds=30)
"""One attempt: the activity's HTTP timeout is 10 s; the rest is room for reading the database."""


@workflow.defn
class WebhookDeliveryWorkflow:
    """Deliver one event to one subscription (see the module docstring)."""

    @workflow.run
    async def run(self, input: DeliveryInput) -> DeliveryResult:
        retry = input.retry
        try:
            attempt = await workflow.execute_activity(
                deliver_webhook,
                input,
                start_to_close_timeout=ATTEMPT_TIMEOUT,
                schedule_to_close_timeout=timedelta(seconds=retry.give_up_after_s),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=retry.initial_s),
                    backoff_coefficient=2.0,
                    maximum_interval=timedelta(seconds=retry.max_interval_s),
                ),
            )
        except ActivityError as exc:
            cause = exc.cause
            error = str(getattr(cause, "message", "") or cause or exc)[:500]
            await workflow.execute_activity(
                park_webhook_delivery,
                ParkInput(input.subscription_id, input.event_id, error),
                start_to_close_timeout=ATTEMPT_TIMEOUT,
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
            )
            return DeliveryResult("parked", error)
        return DeliveryResult(attempt.outcome)
