"""The JSON payloads on the MQTT topics, as pydantic models.

Topics live under ``autotelic/<agent>/`` (see :class:`Topics`). Incoming goal
requests are validated twice: by :class:`InjectRequest` (shape and types) and
by the environment's goal grammar (the daemon's job); every rejection names
its reason. The agent knows none of these: :func:`acceptance` and
:func:`status_message` map its plain answers (:mod:`autotelic.runtime.loop.control`)
to payloads.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autotelic.runtime.evaluation.evaluate import check_split
from autotelic.runtime.loop.control import Accepted, AgentStatus

if TYPE_CHECKING:
    from autotelic.runtime.evaluation.periodic import EvalReport

MAX_PAYLOAD_BYTES = 16 * 1024
"""Goal requests larger than this are rejected unread."""
MAX_NESTING = 16
"""Goal requests whose JSON nests arrays and objects deeper than this are rejected before
they are parsed: a request is a flat object, and the parser recurses once per level (a
16 KiB payload can nest 8,000 deep, past Python's recursion limit)."""


class Topics:
    """Every topic the service uses, derived from one prefix."""

    def __init__(self, agent: str, root: str = "autotelic") -> None:
        if not agent or any(c in agent for c in "/#+"):
            raise ValueError(f"agent name {agent!r} must be non-empty without '/', '#' or '+'")
        self.agent = agent
        self.prefix = f"{root}/{agent}"
        self.inject = f"{self.prefix}/goals/inject"
        self.accepted = f"{self.prefix}/goals/accepted"
        self.rejected = f"{self.prefix}/goals/rejected"
        self.results = f"{self.prefix}/goals/results"
        self.episodes = f"{self.prefix}/episodes"
        self.evaluations = f"{self.prefix}/evaluations"
        self.status = f"{self.prefix}/status"


class InjectRequest(BaseModel):
    """A person asking the agent to practise a goal."""

    model_config = ConfigDict(extra="forbid", strict=True)

    goal: str = Field(min_length=1, max_length=200, description="Goal text, e.g. 'Grow carrot'.")
    episodes: int = Field(1, ge=1, le=10_000, description="How many episodes to run for it.")
    priority: int = Field(0, ge=-1000, le=1000, description="Higher is served first.")
    ttl_s: float | None = Field(
        None, gt=0, le=30 * 24 * 3600, description="Seconds before unserved episodes expire."
    )
    request_id: str | None = Field(
        None, max_length=128, description="Echoed in the reply so a client can match it."
    )


class Acceptance(BaseModel):
    """Reply to an accepted request."""

    status: Literal["accepted"] = "accepted"
    injection_id: str
    goal: str
    episodes: int
    feasible: bool | None = Field(
        None,
        description="The goal space's word on whether any episode can achieve it "
        "(`Grow chair` is known infeasible); null when it cannot tell.",
    )
    request_id: str | None = None
    time: float = Field(default_factory=time.time)


class Rejection(BaseModel):
    """Reply to a request that was not accepted, and why."""

    status: Literal["rejected"] = "rejected"
    reason: str
    request_id: str | None = None
    time: float = Field(default_factory=time.time)


class ActorStatus(BaseModel):
    """One collector actor of a run on the Ray backend, as the service last saw it."""

    actor: int = Field(description="The actor's number.")
    pid: int = Field(description="Its process id (a new one after a restart).")
    node: str = Field(description="Address of the node it runs on.")
    alive: bool = Field(description="False while its last call was lost (restarting).")
    env_steps: int = Field(description="Env steps it collected in this service's life.")
    episodes: int = Field(description="Episodes of it that were stored.")
    steps_per_s: float = Field(description="Recent env steps per second while collecting.")
    policy_version: int = Field(description="Policy version that acted in its last step.")
    lag: int = Field(description="Versions between the learner and that policy.")
    restarts: int = Field(description="Times its process died (and Ray started a new one).")


class Status(BaseModel):
    """The retained status message; ``state`` is ``offline`` in the last will."""

    state: Literal["online", "offline"]
    agent: str
    pid: int | None = None
    learner: str | None = None
    policy_version: int | None = None
    env_steps: int | None = None
    updates: int | None = None
    episodes: int | None = None
    results_pending: int | None = Field(
        None, description="Injection results kept until the broker acknowledges them."
    )
    reason: str | None = Field(
        None, description="Why the agent stopped when a failure stopped it (e.g. a full disk)."
    )
    backend: str | None = Field(None, description="run.backend (a registered backend).")
    actors: list[ActorStatus] | None = Field(
        None, description="Collector actors (backend ray), with their pid, node and lag."
    )
    time: float = Field(default_factory=time.time)


def acceptance(accepted: Accepted, request_id: str | None = None) -> Acceptance:
    """The reply to a request the agent accepted, echoing the request's id."""
    return Acceptance(
        injection_id=accepted.injection_id,
        goal=accepted.goal,
        episodes=accepted.episodes,
        feasible=accepted.feasible,
        request_id=request_id,
    )


def status_message(status: AgentStatus, state: Literal["online", "offline"] = "online") -> Status:
    """The retained status payload of the agent's ``status``."""
    actors = status.actors
    return Status(
        state=state,
        agent=status.agent,
        pid=status.pid,
        learner=status.learner,
        policy_version=status.policy_version,
        env_steps=status.env_steps,
        updates=status.updates,
        episodes=status.episodes,
        results_pending=status.results_pending,
        reason=status.failure,
        backend=status.backend,
        actors=None if actors is None else [ActorStatus(**asdict(a)) for a in actors],
    )


class EvalRowMessage(BaseModel):
    """One split, way of acting and goal category of a periodic evaluation."""

    split: Literal["train", "test"]
    acting: Literal["greedy", "sampled"]
    category: str
    episodes: int
    successes: int
    success: float
    mean_steps: float


class EvaluationMessage(BaseModel):
    """A finished periodic evaluation, published (retained) on ``evaluations``."""

    evaluation: int = Field(description="Index of the evaluation in the run, from 0.")
    env_steps: int = Field(description="Training env steps when it started.")
    policy_version: int = Field(description="Policy version when it started.")
    updates: int = Field(description="Learner updates when it started.")
    env_steps_end: int = Field(description="Training env steps when it finished.")
    policy_version_end: int = Field(description="Policy version when it finished.")
    eval_env_steps: int = Field(description="Env steps the evaluation itself took.")
    duration_s: float
    results: list[EvalRowMessage]
    time: float = Field(default_factory=time.time)


def evaluation_message(report: EvalReport) -> EvaluationMessage:
    """A finished periodic evaluation as its payload (one row per split, way of acting
    and category)."""
    return EvaluationMessage(
        evaluation=report.evaluation,
        env_steps=report.env_steps,
        policy_version=report.policy_version,
        updates=report.updates,
        env_steps_end=report.env_steps_end,
        policy_version_end=report.policy_version_end,
        eval_env_steps=report.cost,
        duration_s=report.duration_s,
        time=report.time,
        results=[
            EvalRowMessage(
                split=check_split(r.split),
                acting=r.acting,
                category=c,
                episodes=r.counts[c],
                successes=round(r.success[c] * r.counts[c]),
                success=r.success[c],
                mean_steps=r.mean_steps[c],
            )
            for r in report.results
            for c in r.success
        ],
    )


class RequestError(ValueError):
    """A goal request that cannot be read; the message is the reason sent back."""

    def __init__(self, reason: str, request_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.request_id = request_id


def parse_inject_request(payload: bytes | bytearray) -> InjectRequest:
    """Decode and validate a goal request, or raise :class:`RequestError` with the reason."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise RequestError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as err:
        raise RequestError(f"payload is not UTF-8: {err.reason} at byte {err.start}") from None
    depth = _nesting(text)
    if depth > MAX_NESTING:
        raise RequestError(f"payload nests {depth} levels deep; at most {MAX_NESTING} are read")
    try:
        data: Any = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as err:
        raise RequestError(f"payload is not JSON: {err.msg} at char {err.pos}") from None
    except _DuplicateKeyError as err:
        raise RequestError(
            f"payload repeats the key {err.key!r}; each key may appear once"
        ) from None
    except RecursionError:  # unreachable after the nesting check; never a traceback
        raise RequestError(f"payload nests deeper than {MAX_NESTING} levels") from None
    if not isinstance(data, dict):
        raise RequestError(f"payload must be a JSON object, got {type(data).__name__}")
    request_id = data.get("request_id") if isinstance(data.get("request_id"), str) else None
    try:
        return InjectRequest.model_validate(data)
    except ValidationError as err:
        raise RequestError(_describe(err), request_id) from None


_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]')


def _nesting(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text`` (brackets inside strings do
    not count), found with one scan, without parsing."""
    depth = deepest = 0
    for match in _STRUCTURE.finditer(text):
        char = match.group()
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different: with a repeated key, which value the
    client meant is unknown (the parser would silently keep the last)."""
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise _DuplicateKeyError(key)
        data[key] = value
    return data


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors(include_url=False):
        where = ".".join(str(x) for x in e["loc"]) or "payload"
        parts.append(f"{where}: {e['msg']}")
    return "invalid request: " + "; ".join(parts)
