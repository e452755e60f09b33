"""BabyAI-Text as a gymnasium environment: a BabyAI level per goal, seen and driven in text."""

from __future__ import annotations

import string
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from autotelic.envs.babyai.achieved import achieved_goals, before_step
from autotelic.envs.babyai.config import ENV_ID, BabyAIConfig
from autotelic.envs.babyai.goal_space import parse_or_invalid
from autotelic.envs.babyai.grammar import Category, Goal, parse_goal
from autotelic.envs.babyai.levels import DoorRoomLevel, GoalLevel, ObjectRoomLevel, needs_doors
from autotelic.envs.babyai.oracle import BotAdvisor
from autotelic.envs.babyai.splits import HELD_OUT, all_goals
from autotelic.envs.babyai.text import describe, describe_view
from autotelic.envs.episodes import LiveEpisode, action_index, render, render_mode_of
from autotelic.envs.gym_batch import action_mask

__all__ = ["ACTIONS", "ENV_ID", "BabyAITextEnv"]

ACTIONS = ("turn left", "turn right", "go forward", "pick up", "drop", "toggle")
"""The six actions, admissible in every state; index i is minigrid's action i."""

_CHARSET = string.ascii_letters + string.digits + " .\n"
_MAX_OBSERVATION = 4096
_SEED_BOUND = 2**63 - 1

Info = dict[str, Any]


class BabyAITextEnv(gym.Env[str, Any]):
    """Goal-conditioned BabyAI in text.

    ``reset(seed=..., options={"goal": "pick up the red ball"})`` builds a level
    whose BabyAI mission is that goal (``None``: one sampled from the configured
    goals). ``info["episode_seed"]`` regenerates the episode's start when passed
    back, with the same goal, as ``options["episode_seed"]`` (the batch's way) or
    as ``seed``: a given ``seed`` both seeds the env's random stream and is the
    episode's seed; without either, the episode seed is drawn from that stream.
    ``step`` takes an action index (or its
    text). ``info`` carries ``goal``, ``goal_category``, ``admissible_actions``,
    ``achieved_goals`` (what the step made true), ``mission_success`` (minigrid's
    verifier on the episode's goal), ``episode_seed``, ``steps`` and ``horizon``.
    The reward is 1 on the step the goal holds, which ends the episode.
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"]}  # noqa: RUF012

    def __init__(
        self, config: BabyAIConfig | None = None, render_mode: str | None = None, **overrides: Any
    ) -> None:
        self.render_mode = render_mode_of(render_mode, self.metadata)
        base = config or BabyAIConfig()
        self.config = (
            BabyAIConfig.model_validate({**base.model_dump(), **overrides}) if overrides else base
        )
        self.observation_space = spaces.Text(max_length=_MAX_OBSERVATION, charset=_CHARSET)
        self.action_space = spaces.Discrete(len(ACTIONS))
        self._levels: dict[bool, GoalLevel] = {}
        self._pool = _goal_pool(self.config)
        self._episode: LiveEpisode[GoalLevel, Goal] = LiveEpisode()
        self._advisor: BotAdvisor | None = None
        self._episode_seed = 0
        self._steps = 0
        self._last_action: int | None = None

    # gymnasium API -------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, Info]:
        super().reset(seed=seed)
        options = options or {}
        drawn = int(self.np_random.integers(_SEED_BOUND))
        self._episode_seed = int(options.get("episode_seed", drawn if seed is None else seed))
        text = options.get("goal")
        goal = self._sample_goal() if text is None else parse_or_invalid(text)
        level = self._level_for(goal)
        level.goal = goal
        level.reset(seed=self._episode_seed)  # type: ignore[no-untyped-call]
        self._episode.start(level, goal)
        self._advisor, self._steps, self._last_action = None, 0, None
        return self._observation(level), self._info([], mission_success=False)

    def step(self, action: int | str) -> tuple[str, float, bool, bool, Info]:
        level, goal = self._episode.require()
        index = self._resolve(action)
        before = before_step(level)
        _, _, mission_success, _, _ = level.step(index)  # type: ignore[no-untyped-call]
        achieved = achieved_goals(level, index, before)
        self._steps += 1
        self._last_action = index
        terminated = goal.text in achieved
        truncated = not terminated and self._steps >= self.horizon
        self._episode.done = terminated or truncated
        info = self._info(achieved, mission_success=bool(mission_success))
        return self._observation(level), float(terminated), terminated, truncated, info

    def render(self) -> str:
        level, goal = self._episode.require(allow_done=True)
        return render(goal.text, describe(level))

    # what oracles, tests and tools read ----------------------------------------------------

    @property
    def level(self) -> GoalLevel:
        """The live minigrid level (read it; act only through :meth:`step`)."""
        return self._episode.require(allow_done=True)[0]

    @property
    def goal(self) -> Goal:
        return self._episode.require(allow_done=True)[1]

    @property
    def steps(self) -> int:
        return self._steps

    @property
    def horizon(self) -> int:
        return self.config.horizon(self.goal.category)

    @property
    def last_action(self) -> int | None:
        """The action of the last step (None at the start of an episode)."""
        return self._last_action

    def advisor(self) -> BotAdvisor:
        """The episode's BabyAI bot, started on first use."""
        if self._advisor is None:
            self._advisor = BotAdvisor(self.level)
        return self._advisor

    # helpers -------------------------------------------------------------------------------

    def _sample_goal(self) -> Goal:
        """A family uniformly, then one of its goals, from a stream seeded by the episode seed."""
        rng = np.random.default_rng([self._episode_seed, 1])
        family = self._pool[int(rng.integers(len(self._pool)))]
        return parse_goal(family[int(rng.integers(len(family)))])

    def _level_for(self, goal: Goal) -> GoalLevel:
        doors = needs_doors(goal)
        if doors not in self._levels:
            c = self.config
            kind = DoorRoomLevel if doors else ObjectRoomLevel
            hidden = HELD_OUT if c.hide_held_out and c.split == "train" else frozenset()
            self._levels[doors] = kind(
                room_size=c.room_size,
                num_distractors=c.num_distractors,
                agent_view_size=c.agent_view_size,
                banned=hidden,
                max_steps=max(c.horizon(k) for k in Category) + 1,
            )
        return self._levels[doors]

    @staticmethod
    def _observation(level: GoalLevel) -> str:
        """The text of the view minigrid just computed for its own observation."""
        if level.last_view is None:
            return describe(level)
        return describe_view(*level.last_view, level.carrying)

    @staticmethod
    def _resolve(action: int | str) -> int:
        return action_index(action, ACTIONS)

    def _info(self, achieved: list[str], *, mission_success: bool) -> Info:
        goal = self.goal
        return {
            "goal": goal.text,
            "goal_category": goal.category.value,
            "admissible_actions": list(ACTIONS),
            "action_mask": action_mask(len(ACTIONS), len(ACTIONS)),
            "achieved_goals": achieved,
            "mission_success": mission_success,
            "episode_seed": self._episode_seed,
            "steps": self._steps,
            "horizon": self.horizon,
        }


def _goal_pool(config: BabyAIConfig) -> list[list[str]]:
    """Goals sampled when reset gets none, grouped by family (empty families dropped)."""
    goals = list(config.goals) if config.goals else all_goals(config.split, config.categories)
    families: dict[Category, list[str]] = {}
    for g in goals:
        families.setdefault(parse_goal(g).category, []).append(g)
    if not families:
        raise ValueError(f"no goals to sample in split {config.split!r} with {config.categories}")
    return [families[c] for c in Category if c in families]
