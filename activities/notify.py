"""Webhook delivery as an activity: durable, retried with backoff, signed.

Deliveries follow the Standard Webhooks specification (standardwebhooks.com),
so receivers verify them with any of its libraries
(``Webhook(secret).verify(body, headers)``) instead of hand-written code:

- ``webhook-id``: the delivery id, the same on every retry (receivers drop
  duplicates by it) and covered by the signature, so a replayed body under a
  fresh id does not verify;
- ``webhook-timestamp``: seconds since the epoch of this attempt;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256>`` over
  ``"{id}.{timestamp}.{body}"``, one per secret in
  ``COUNTERSIGN_WEBHOOK_SECRETS``, space-separated, so a receiver holding the
  old or the new secret verifies during a rotation.

``X-Countersign-Event`` names the event for routing before the body is parsed
(the body, which is signed, names it too).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook
from temporalio import activity
from temporalio.exceptions import ApplicationError

from countersign.models import DELIVER_WEBHOOK_ACTIVITY, WebhookDelivery
from countersign.settings import Settings

logger = logging.getLogger(__name__)

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
EVENT_HEADER = "X-Countersign-Event"

# Statuses a receiver may recover from; any other 4xx will not change on retry.
_RETRYABLE_CLIENT_ERRORS = {408, 409, 425, 429}


class WebhookConfigError(Exception):
    """Webhook settings that must stop the worker from starting."""


def signature(signers: list[Webhook], msg_id: str, timestamp: datetime, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,`` signature per secret, space-separated."""
    text = body.decode()
    return " ".join(
        signer.sign(msg_id=msg_id, timestamp=timestamp, data=text) for signer in signers
    )


def signers_from(settings: Settings) -> list[Webhook]:
    """One signer per configured secret, after checking that deliveries may go out.

    Raises:
        WebhookConfigError: When receivers are configured without any secret and
            unsigned deliveries were not explicitly allowed.
    """
    signers = [Webhook(secret.get_secret_value()) for secret in settings.webhook_secrets]
    if settings.webhook_urls and not signers:
        if not settings.webhook_allow_unsigned:
            raise WebhookConfigError(
                "COUNTERSIGN_WEBHOOK_URLS is set but COUNTERSIGN_WEBHOOK_SECRETS is not: "
                "receivers could not tell our deliveries from forged ones. Set "
                "COUNTERSIGN_WEBHOOK_SECRETS to one or more whsec_<base64> secrets, or "
                "COUNTERSIGN_WEBHOOK_ALLOW_UNSIGNED=true to send them unsigned anyway."
            )
        logger.warning(
            "webhooks go out UNSIGNED (COUNTERSIGN_WEBHOOK_ALLOW_UNSIGNED=true): "
            "receivers cannot check who sent them"
        )
    return signers


class WebhookActivities:
    """The ``deliver_webhook`` activity, bound to the receivers in the settings.

    Args:
        settings: Receivers, secrets and timeout.
        client: HTTP client to send with (one is made when ``None``).

    Raises:
        WebhookConfigError: See :func:`signers_from`.
    """

    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None) -> None:
        self._urls = list(settings.webhook_urls)
        self._signers = signers_from(settings)
        self._client = client or httpx.AsyncClient(timeout=settings.webhook_timeout.total_seconds())

    async def aclose(self) -> None:
        """Close the HTTP client's connections (the worker calls it when it stops)."""
        await self._client.aclose()

    def headers(self, delivery: WebhookDelivery, body: bytes) -> dict[str, str]:
        """The headers of one attempt: fresh timestamp, same id, signed when secrets exist."""
        now = datetime.now(UTC)
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: delivery.event.value,
            ID_HEADER: delivery.delivery_id,
            TIMESTAMP_HEADER: str(int(now.timestamp())),
        }
        if self._signers:
            headers[SIGNATURE_HEADER] = signature(self._signers, delivery.delivery_id, now, body)
        return headers

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
        # Heartbeats hold their positions in the list, never URLs: heartbeat
        # details reach workflow history, and URLs may carry tokens.
        details = activity.info().heartbeat_details
        done = set(_received(details[0], len(self._urls))) if details else set()
        failures: list[str] = []
        permanent = True
        for index, url in enumerate(self._urls):
            if index in done:
                continue
            try:
                response = await self._client.post(
                    url, content=body, headers=self.headers(delivery, body)
                )
            except httpx.HTTPError as err:
                failures.append(f"receiver {index} ({_host(url)}): {type(err).__name__}")
                permanent = False
                continue
            if response.is_success:
                done.add(index)
                activity.heartbeat(sorted(done))
                continue
            failures.append(f"receiver {index} ({_host(url)}): HTTP {response.status_code}")
            if response.status_code >= 500 or response.status_code in _RETRYABLE_CLIENT_ERRORS:
                permanent = False
        if failures:
            raise ApplicationError(
                f"webhook {delivery.event.value} not delivered: {'; '.join(failures)}",
                type="WebhookRejected" if permanent else "WebhookUnavailable",
                non_retryable=permanent,
            )
        return len(done)


def _received(value: object, receivers: int) -> list[int]:
    # Anything but a list of in-range indexes (an older worker's URL list, a
    # receiver list that shrank) counts as not received: a receiver may get a
    # duplicate, which it drops by webhook-id, but never misses an event.
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, int) and 0 <= v < receivers]


def _host(url: str) -> str:
    # Receiver URLs may hold tokens in their paths: errors name only the host.
    return httpx.URL(url).host
