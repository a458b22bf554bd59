"""A steady load of approval flows over HTTP, each recording what the API answered.

A flow creates a run whose scripted model asks for one gated ``delete_records``
call (sometimes two), waits until the run is PAUSED, then approves, rejects or
lets the calls expire. Requests that fail because a process is down are tried
again; the flow records every answer, so the checks afterwards know which
decisions the API acknowledged (2xx) and when.

While a restart is being measured the load holds its requests (:meth:`Load.hold`), so
the recovery figure is the time the stack needs for the work a crash cut, not
for new work arriving.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from countersign.models import CallState, RunStatus
from tests.faults.stack import AGENT_ID
from tests.scripted_openai import Call, Reply, ScriptedModel

logger = logging.getLogger("tests.faults")

RETRY_PAUSE = (0.2, 0.6)
# A flow that cannot get an answer in this long (not counting the time the load
# is held) is reported, not retried forever.
FLOW_DEADLINE = 240.0
TABLES = ("users", "sessions")
REQUESTER = "fault-requester"
APPROVER = "fault-approver"


@dataclass(frozen=True)
class PlannedCall:
    """A gated call the scripted model will make, and what the flow decides.

    Attributes:
        table: Demo table the call deletes from.
        count: How many rows (small, so the tables never run out).
        confirm: ``True`` approve, ``False`` reject, ``None`` let it expire.
    """

    table: str
    count: int
    confirm: bool | None

    @property
    def args(self) -> dict[str, Any]:
        """The tool arguments."""
        return {"table_name": self.table, "count": self.count}


@dataclass
class CallSeen:
    """A gated call as the paused run showed it."""

    run_id: str
    tool_call_id: str
    tool_name: str
    args: dict[str, Any]
    confirm: bool | None
    expires_at: datetime

    @property
    def key(self) -> str:
        """The idempotency key its effect is recorded under."""
        return f"{self.run_id}:{self.tool_call_id}"


@dataclass
class Answer:
    """One HTTP attempt: when, and what came back (status and code, or a transport error)."""

    at: float
    status: int | None
    code: str | None = None
    error: str | None = None


@dataclass
class Flow:
    """Everything one flow did and was told."""

    index: int
    message: str
    planned: list[PlannedCall]
    run_id: str | None = None
    calls: list[CallSeen] = field(default_factory=list)
    creates: list[Answer] = field(default_factory=list)
    decisions: list[Answer] = field(default_factory=list)
    acked_at: float | None = None
    done: bool = False

    @property
    def decided(self) -> bool:
        """Whether the flow sends decisions (else its calls are left to expire)."""
        return any(p.confirm is not None for p in self.planned)

    @property
    def refused(self) -> Answer | None:
        """The final 4xx answer to the decision, if the API refused it."""
        last = self.decisions[-1] if self.decisions else None
        return last if last is not None and last.status in (409, 410) else None


def plan(rng: random.Random) -> list[PlannedCall]:
    """One flow's calls: one or (a quarter of the time) two, each approve, reject or expire.

    A flow decides all its calls in one request or none; expiring is a
    property of the whole flow, since nobody answers it.
    """
    expire = rng.random() < 0.25
    calls = 2 if rng.random() < 0.25 else 1
    return [
        PlannedCall(
            table=TABLES[i],
            count=rng.randint(1, 3),
            confirm=None if expire else rng.random() < 0.65,
        )
        for i in range(calls)
    ]


class UnexpectedAnswerError(AssertionError):
    """The API answered something the flow has no reading for (a 5xx other than 503...)."""


@dataclass
class Load:
    """Flows run by ``concurrency`` lanes until :meth:`stop` is called.

    Args:
        api_url: Base URL of the API.
        model: The scripted model (each flow scripts its own conversation).
        seed: Seed of the flows' plans and pauses.
        concurrency: Lanes, each running one flow at a time.
    """

    api_url: str
    model: ScriptedModel
    seed: int
    concurrency: int
    flows: list[Flow] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _lanes: list[asyncio.Task[None]] = field(default_factory=list)
    _indexes: Iterator[int] = field(default_factory=itertools.count)
    _http: httpx.AsyncClient | None = None
    _held_since: float = 0.0
    _held_total: float = 0.0

    def start(self) -> None:
        """Open the gate and start the lanes."""
        self.gate.set()
        self._http = httpx.AsyncClient(base_url=self.api_url, timeout=60.0)
        self._lanes = [
            asyncio.create_task(self._lane(), name=f"lane-{i}") for i in range(self.concurrency)
        ]

    def hold(self) -> None:
        """Hold new requests (reads go on) until :meth:`release`."""
        if self.gate.is_set():
            self.gate.clear()
            self._held_since = time.monotonic()

    def release(self) -> None:
        """Let held requests go."""
        if not self.gate.is_set():
            self._held_total += time.monotonic() - self._held_since
            self.gate.set()

    def clock(self) -> float:
        """Seconds of load: monotonic time without the time held, which flows' deadlines use."""
        held = self._held_total
        if not self.gate.is_set():
            held += time.monotonic() - self._held_since
        return time.monotonic() - held

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopping.is_set()

    async def stop(self, within: float) -> bool:
        """Let each lane finish its flow, cancelling those still busy after ``within`` s.

        Returns:
            Whether every lane finished on its own.

        Raises:
            Exception: What a lane raised (a bug in the load, not an answer).
        """
        if self.stopped:
            return True
        self._stopping.set()
        self.release()
        if not self._lanes:
            return True
        try:
            done, busy = await asyncio.wait(self._lanes, timeout=within)
            for lane in busy:
                lane.cancel()
            await asyncio.gather(*busy, return_exceptions=True)
            for lane in done:
                lane.result()
        finally:
            if self._http is not None:
                await self._http.aclose()
        return not busy

    def pending_expiries(self) -> list[CallSeen]:
        """Calls shown PAUSED that nobody will decide, soonest deadline first."""
        calls = [c for f in self.flows for c in f.calls if c.confirm is None]
        return sorted(calls, key=lambda c: c.expires_at)

    async def _lane(self) -> None:
        while not self._stopping.is_set():
            index = next(self._indexes)
            rng = random.Random(f"{self.seed}:{index}")
            flow = Flow(
                index=index,
                message=f"Fault flow {self.seed}-{index}: delete old records",
                planned=plan(rng),
            )
            self.flows.append(flow)
            self.model.script(
                flow.message,
                Reply(calls=[Call("delete_records", p.args) for p in flow.planned]),
            )
            await self._run(flow, rng)

    async def _pause(self, rng: random.Random) -> None:
        await asyncio.sleep(rng.uniform(*RETRY_PAUSE))

    async def _request(
        self, method: str, path: str, json: dict[str, Any] | None = None, *, gated: bool = True
    ) -> httpx.Response | Answer:
        """One attempt, once the gate is open if ``gated``: the response or the transport error."""
        if gated:
            await self.gate.wait()
        assert self._http is not None
        try:
            return await self._http.request(method, path, json=json)
        except httpx.TransportError as err:
            return Answer(time.monotonic(), None, error=type(err).__name__)

    def _unexpected(self, flow: Flow, response: httpx.Response) -> None:
        self.unexpected.append(
            f"flow {flow.index} ({flow.run_id}): {response.request.method} "
            f"{response.request.url.path} -> {response.status_code} {response.text[:300]}"
        )

    async def _run(self, flow: Flow, rng: random.Random) -> None:
        deadline = self.clock() + FLOW_DEADLINE
        body = await self._create(flow, rng, deadline)
        if body is None:
            return
        settled = await self._until_settled(flow, body, rng, deadline)
        if settled is None:
            return
        gated = [t for t in settled["tools"] if t["requires_confirmation"]]
        if len(gated) != len(flow.planned):
            self.unexpected.append(
                f"flow {flow.index}: settled with {gated}, planned {flow.planned}"
            )
            return
        for planned, tool in zip(flow.planned, gated, strict=True):
            flow.calls.append(
                CallSeen(
                    run_id=settled["run_id"],
                    tool_call_id=tool["tool_call_id"],
                    tool_name=tool["tool_name"],
                    args=tool["tool_args"],
                    confirm=planned.confirm,
                    expires_at=datetime.fromisoformat(tool["expires_at"]),
                )
            )
        if settled["status"] == RunStatus.COMPLETED:
            # It paused and its TTL ran out before the flow saw it (the load
            # was held while a restart was measured): nothing left to decide.
            if any(t["state"] != CallState.EXPIRED for t in gated):
                self.unexpected.append(f"flow {flow.index}: completed undecided with {gated}")
        elif flow.decided:
            # A person takes a moment to read the request.
            await asyncio.sleep(rng.uniform(0.0, 1.0))
            await self._decide(flow, rng, deadline)
        flow.done = True

    async def _create(
        self, flow: Flow, rng: random.Random, deadline: float
    ) -> dict[str, Any] | None:
        payload = {"message": flow.message, "user_id": REQUESTER}
        while self.clock() < deadline:
            answer = await self._request("POST", f"/agents/{AGENT_ID}/runs", payload)
            if isinstance(answer, Answer):
                # The run may exist (the API died after starting it): it is
                # found in Temporal afterwards and must expire like any other.
                flow.creates.append(answer)
            else:
                flow.creates.append(_answer(answer))
                if answer.status_code in (200, 202):
                    body: dict[str, Any] = answer.json()
                    flow.run_id = body["run_id"]
                    return body
                if answer.status_code != 503:
                    self._unexpected(flow, answer)
                    return None
            await self._pause(rng)
        self.unexpected.append(f"flow {flow.index}: no run created within {FLOW_DEADLINE} s")
        return None

    async def _until_settled(
        self, flow: Flow, body: dict[str, Any], rng: random.Random, deadline: float
    ) -> dict[str, Any] | None:
        """The run once PAUSED (or COMPLETED, its calls expired unseen)."""
        while body["status"] == RunStatus.RUNNING:
            if self.clock() > deadline:
                self.unexpected.append(f"flow {flow.index}: {flow.run_id} never paused")
                return None
            await self._pause(rng)
            # Reads change nothing, so they go on while the load is held.
            answer = await self._request(
                "GET", f"/agents/{AGENT_ID}/runs/{flow.run_id}", gated=False
            )
            if isinstance(answer, Answer):
                continue
            if answer.status_code == 200:
                body = answer.json()
            elif answer.status_code != 503:
                self._unexpected(flow, answer)
                return None
        if body["status"] not in (RunStatus.PAUSED, RunStatus.COMPLETED):
            self.unexpected.append(f"flow {flow.index}: {flow.run_id} settled as {body['status']}")
            return None
        return body

    async def _decide(self, flow: Flow, rng: random.Random, deadline: float) -> None:
        payload = {
            "tools": [
                {
                    "tool_call_id": c.tool_call_id,
                    "tool_name": c.tool_name,
                    "tool_args": c.args,
                    "confirmed": c.confirm,
                }
                for c in flow.calls
            ],
            "user_id": APPROVER,
        }
        path = f"/agents/{AGENT_ID}/runs/{flow.run_id}/continue"
        while self.clock() < deadline:
            answer = await self._request("POST", path, payload)
            if isinstance(answer, Answer):
                flow.decisions.append(answer)
                await self._pause(rng)
                continue
            flow.decisions.append(_answer(answer))
            if answer.status_code in (200, 202):
                flow.acked_at = flow.decisions[-1].at
                return
            if answer.status_code in (409, 410):
                # Refused for good: already decided (an earlier attempt whose
                # answer was lost got through) or expired meanwhile.
                return
            if answer.status_code != 503:
                self._unexpected(flow, answer)
                return
            await self._pause(rng)
        self.unexpected.append(f"flow {flow.index}: no answer to the decision in {FLOW_DEADLINE} s")


def _answer(response: httpx.Response) -> Answer:
    code = None
    if response.status_code >= 400:
        try:
            code = response.json().get("code")
        except ValueError:
            code = None
    return Answer(time.monotonic(), response.status_code, code)


def utc_now() -> datetime:
    """Wall-clock now, comparable with the run's ``expires_at``."""
    return datetime.now(UTC)
