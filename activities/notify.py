"""Webhook delivery as an activity: durable, retried with backoff, signed.

Each request carries ``X-Countersign-Signature: sha256=<hex>``, the HMAC-SHA256
with ``COUNTERSIGN_WEBHOOK_SECRET`` over ``"{timestamp}.{body}"``, and the
timestamp in ``X-Countersign-Timestamp``, so a receiver can check both the
sender and the freshness. ``X-Countersign-Delivery`` is the same on every retry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from countersign.models import DELIVER_WEBHOOK_ACTIVITY, WebhookDelivery
from countersign.settings import Settings

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Countersign-Signature"
TIMESTAMP_HEADER = "X-Countersign-Timestamp"
EVENT_HEADER = "X-Countersign-Event"
DELIVERY_HEADER = "X-Countersign-Delivery"

# Statuses a receiver may recover from; any other 4xx will not change on retry.
_RETRYABLE_CLIENT_ERRORS = {408, 409, 425, 429}


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value for a body sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


class WebhookActivities:
    """The ``deliver_webhook`` activity, bound to the receivers in the settings."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None) -> None:
        self._urls = list(settings.webhook_urls)
        secret = settings.webhook_secret
        self._secret = secret.get_secret_value() if secret else None
        self._client = client or httpx.AsyncClient(timeout=settings.webhook_timeout.total_seconds())

    async def aclose(self) -> None:
        """Close the HTTP client's connections (the worker calls it when it stops)."""
        await self._client.aclose()

    @activity.defn(name=DELIVER_WEBHOOK_ACTIVITY)
    async def deliver_webhook(self, delivery: WebhookDelivery) -> int:
        """Send one event to every receiver that has not taken it yet.

        Returns:
            How many receivers took the event.

        Raises:
            ApplicationError: Retryable when a receiver is down or answers 5xx
                or 429; non-retryable when it answers another 4xx.
        """
        if not self._urls:
            logger.warning("webhook %s not sent: no COUNTERSIGN_WEBHOOK_URLS", delivery.event)
            return 0
        body = json.dumps(delivery.model_dump(mode="json"), separators=(",", ":")).encode()
        # Receivers that answered 2xx on an earlier attempt are not sent it again.
        details = activity.info().heartbeat_details
        done = set(_received(details[0])) if details else set()
        failures: list[str] = []
        permanent = True
        for url in self._urls:
            if url in done:
                continue
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                EVENT_HEADER: delivery.event.value,
                DELIVERY_HEADER: delivery.delivery_id,
                TIMESTAMP_HEADER: timestamp,
            }
            if self._secret:
                headers[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
            try:
                response = await self._client.post(url, content=body, headers=headers)
            except httpx.HTTPError as err:
                failures.append(f"{_host(url)}: {type(err).__name__}")
                permanent = False
                continue
            if response.is_success:
                done.add(url)
                activity.heartbeat(sorted(done))
                continue
            failures.append(f"{_host(url)}: HTTP {response.status_code}")
            if response.status_code >= 500 or response.status_code in _RETRYABLE_CLIENT_ERRORS:
                permanent = False
        if failures:
            raise ApplicationError(
                f"webhook {delivery.event.value} not delivered: {'; '.join(failures)}",
                type="WebhookRejected" if permanent else "WebhookUnavailable",
                non_retryable=permanent,
            )
        return len(done)


def _received(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _host(url: str) -> str:
    # Receiver URLs may hold tokens in their paths: errors name only the host.
    return httpx.URL(url).host
