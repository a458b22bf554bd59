"""Proof that a decision was authorised by the API (or a decision link it redeemed).

Anything that reaches the Temporal frontend can send the ``decide`` update
with any principal in its payload. So the API, after authenticating the caller
and applying :mod:`api.policy`, attaches a proof to the request: an
HMAC-SHA256, with a key from ``COUNTERSIGN_DECISION_PROOF_KEYS``, over the run
id, the whole request (every call id with its echoed digest, arguments and
approve/reject; the principal's id and roles; the source) and an expiry. The
workflow's ``decide`` validator checks it with the worker's copy of the keys.

The key never enters workflow history: only the proof does. The check runs in
the update *validator*, which Temporal does not run on replay, so rotating or
removing a key never changes how a recorded history replays. Several keys may
be listed while rotating: the first signs, every listed one verifies.

The worker hands its keys to the workflow through :func:`configure`, by task
queue (this module is passed through the workflow sandbox, so the workflow sees
the same module state as the worker that configured it).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime, timedelta

from countersign.digest import canonical_json
from countersign.models import DecideRequest

VERSION = "p1"
MIN_KEY_BYTES = 32
#: How long a proof stays valid: the decision is sent at once, but Temporal may
#: hold an admitted update until a worker takes the run.
LIFETIME = timedelta(minutes=15)


class DecisionProofKeys:
    """The keys that sign and verify proofs: the first signs, all verify.

    Args:
        keys: The configured keys, newest first.

    Raises:
        ValueError: When there is no key or a key is shorter than 32 bytes.
    """

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one decision proof key is required")
        if any(len(k.encode()) < MIN_KEY_BYTES for k in keys):
            raise ValueError(
                f"each COUNTERSIGN_DECISION_PROOF_KEYS entry must be at least {MIN_KEY_BYTES} bytes"
            )
        self._keys = [k.encode() for k in keys]

    def sign(self, run_id: str, request: DecideRequest, now: datetime) -> DecideRequest:
        """``request`` with a proof for ``run_id``, valid for :data:`LIFETIME` from ``now``."""
        expires = int((now + LIFETIME).timestamp())
        mac = _mac(self._keys[0], run_id, request, expires)
        return request.model_copy(update={"proof": f"{VERSION}.{expires}.{mac}"})

    def problem(self, run_id: str, request: DecideRequest, now: datetime) -> str | None:
        """Why ``request`` carries no valid proof for ``run_id`` at ``now``, or ``None``."""
        if not request.proof:
            return "the decision carries no proof that the API authorised it"
        version, _, rest = request.proof.partition(".")
        expires_text, _, given = rest.partition(".")
        if version != VERSION or not expires_text.isdigit() or not given:
            return "the decision's proof is malformed"
        expires = int(expires_text)
        # Every key is tried, so the time taken does not tell which one matched.
        valid = [
            hmac.compare_digest(given, _mac(key, run_id, request, expires)) for key in self._keys
        ]
        if not any(valid):
            return "the decision's proof is not valid for this run, principal and decisions"
        if now.timestamp() >= expires:
            return "the decision's proof has expired"
        return None


def _mac(key: bytes, run_id: str, request: DecideRequest, expires: int) -> str:
    # Fields added later are left out while unset, so the body is what it was
    # before them and proofs of an API and a worker of either version agree
    # during a rolling upgrade.
    body = request.model_dump(mode="json", exclude={"proof"} | _unset_later_fields(request))
    signed = canonical_json({"v": VERSION, "run_id": run_id, "expires": expires, "request": body})
    return hmac.new(key, signed.encode(), hashlib.sha256).hexdigest()


#: Fields of ``DecideRequest`` added after proofs were first issued.
_LATER_FIELDS = ("scope", "not_after")


def _unset_later_fields(request: DecideRequest) -> set[str]:
    return {name for name in _LATER_FIELDS if getattr(request, name) is None}


#: Keys per task queue: several workers (tests, or one process serving two
#: queues) may run side by side with different keys.
_verifiers: dict[str, DecisionProofKeys | None] = {}


def configure(task_queue: str, keys: DecisionProofKeys | None) -> None:
    """Set the keys the workflows of ``task_queue`` verify decisions with (the worker calls it)."""
    _verifiers[task_queue] = keys


def verifier(task_queue: str) -> DecisionProofKeys | None:
    """The keys set by :func:`configure` for ``task_queue``; ``None``: proofs are not checked."""
    return _verifiers.get(task_queue)


def from_settings(keys: Sequence[str]) -> DecisionProofKeys | None:
    """The proof keys a setting lists, or ``None`` when it lists none."""
    return DecisionProofKeys(keys) if keys else None
