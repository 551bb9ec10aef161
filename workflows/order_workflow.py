"""``SupervisionOrderWorkflow``: a city or district supervision order (督办单) over many items.

Starts its items' workflows a page at a time (the ``start_order_page`` activity), keeps each item's
progress from the ``item_progress`` signals its items send, and continues as new whenever its history
grows long, carrying the cursor and the progress codes. It completes when every item has started and
reached a terminal stage, returning the roll-up (also available any time through the ``summary``
query). Issue 3, "Supervision orders".
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import search_attributes as sa
    from workflows.activity_contracts import start_order_page
    from workflows.order_model import (
        ORDER_LEVELS,
        ItemProgress,
        OrderInput,
        OrderPage,
        OrderPageInput,
        OrderSummary,
        is_open,
        summarise,
    )

START_PAGE_TIMEOUT = timedelta(minutes=5)


@workflow.defn
class SupervisionOrderWorkflow:
    """A supervision order as a durable workflow (id ``order-<order id>``)."""

    @workflow.init
    def __init__(self, input: OrderInput) -> None:
        self._input = input
        self._open = sum(is_open(code) for code in input.items.values())  # kept current per signal

    @workflow.run
    async def run(self, input: OrderInput) -> OrderSummary:
        if input.level not in ORDER_LEVELS:
            raise ApplicationError(
                f"level must be one of {', '.join(ORDER_LEVELS)}", type="InvalidOrder", non_retryable=True
            )
        if input.search_attributes:
            workflow.upsert_search_attributes([sa.ORDER.value_set(input.order_id)])
        while not input.pages_done:
            page: OrderPage = await workflow.execute_activity(
                start_order_page,
                OrderPageInput(
                    input.order_id,
                    input.cursor,
                    input.page_size,
                    input.search_attributes,
                    input.clock_offset_s,
                ),
                start_to_close_timeout=START_PAGE_TIMEOUT,
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
            )
            for item_id in page.item_ids:
                if item_id not in input.items:  # its first progress signal may have come first
                    input.items[item_id] = "registered|||0"
                    self._open += 1
            input.cursor, input.pages_done = page.cursor, page.last
            self._maybe_continue_as_new()
        while not self._all_done():
            await workflow.wait_condition(lambda: self._all_done() or self._history_is_long())
            self._maybe_continue_as_new()
        return summarise(input)

    def _all_done(self) -> bool:
        """O(1): wait conditions are evaluated after every signal, and an order holds 10,000s of items."""
        return self._open == 0

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return info.get_current_history_length() >= self._input.continue_as_new_after or (
            info.is_continue_as_new_suggested()
        )

    def _maybe_continue_as_new(self) -> None:
        if self._history_is_long() and not self._all_done():
            workflow.continue_as_new(dataclasses.replace(self._input, runs=self._input.runs + 1))

    @workflow.signal
    def item_progress(self, raw: RawValue) -> None:
        """An item's new summary, ``[item id, ItemProgress.code]`` (sent by the item on every change;
        two strings decode far faster than a dataclass, and an order gets one signal per item step).
        Any client can signal: the payload arrives raw, and a malformed one is dropped with a log
        line, never fatal to the order."""
        try:
            progress = workflow.payload_converter().from_payload(raw.payload)
            item_id, code = progress
            if not isinstance(item_id, str) or not isinstance(code, str) or len(item_id) > 128:
                raise ValueError("not [item id, progress code]")
            ItemProgress.parse(item_id, code)
        except Exception as exc:
            workflow.logger.warning("item_progress refused: %s", str(exc)[:200])
            return
        previous = self._input.items.get(item_id)
        self._input.items[item_id] = code
        self._open += is_open(code) - (is_open(previous) if previous is not None else 0)

    @workflow.query
    def summary(self) -> OrderSummary:
        """The roll-up so far."""
        return summarise(self._input)
