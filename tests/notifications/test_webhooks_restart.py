"""The API process killed after an event committed and while its delivery was in flight, then
started again: the event still arrives, with the same webhook-id (issue 17).

The API runs in a process of its own (plain uvicorn, as tests/test_faults_invoicing_payments.py
does) over a database of its own, so the session's replicas cannot deliver in its place."""

from __future__ import annotations

import asyncio

from infra.database import create_engine
from notifications import endpoints
from notifications.context import NotificationContext
from notifications.records import Caller
from tests.api_process import ApiProcess
from tests.notifications.support import HANG, Receiver, record_events


def test_the_api_killed_mid_delivery_and_restarted_still_delivers_the_event(stack, settings, own_database, tmp_path):
    receiver = Receiver(answers=[HANG]).start()
    api_settings = settings.with_(
        database_url=own_database,
        redis_prefix=f"{settings.redis_prefix}-restart",
        webhook_lease_s=2.0,
        notifications_interval_s=0.2,
    )

    async def make_endpoint() -> str:
        from infra.keyring_store import field_cipher

        engine = create_engine(own_database)
        try:
            ctx = NotificationContext(engine, field_cipher(api_settings), True, 60.0, 3600.0)
            made = await endpoints.create_endpoint(ctx, Caller(None), {"url": receiver.url, "event_types": ["*"]})
            return made.secret
        finally:
            await engine.dispose()

    try:
        receiver.secrets.append(asyncio.run(make_endpoint()))
        [event_id] = record_events(api_settings, [("invoice.finalized", None, {"invoice_id": "restart"})])
        first = ApiProcess(api_settings, tmp_path)
        try:
            [in_flight] = receiver.wait_for(1, timeout_s=30)  # its worker POSTs; the receiver keeps it waiting
        finally:
            first.kill()  # mid-delivery: the attempt's outcome was never recorded
        assert in_flight.headers["webhook-id"] == event_id and in_flight.error is None

        second = ApiProcess(api_settings, tmp_path)  # the API again; the dead one's lease runs out
        try:
            again = receiver.wait_for(2, timeout_s=30)[1]
        finally:
            second.kill()
        assert again.headers["webhook-id"] == event_id and again.error is None
        assert again.answered == 200
    finally:
        receiver.stop()
