"""Playground-Text as a gymnasium environment."""

from __future__ import annotations

import random
import string
from numbers import Integral
from typing import Any

import gymnasium as gym
from gymnasium import spaces

from autotelic.core import EpisodeOverError
from autotelic.envs.episodes import LiveEpisode, action_index, render, render_mode_of
from autotelic.envs.gym_batch import action_mask
from autotelic.envs.playground.config import ENV_ID, PlaygroundConfig
from autotelic.envs.playground.generation import generate
from autotelic.envs.playground.goals import HORIZONS, IMPOSSIBLE_HORIZON, Goal, reward
from autotelic.envs.playground.scene import Scene

__all__ = ["ENV_ID", "EpisodeOverError", "PlaygroundTextEnv"]
_CHARSET = string.ascii_letters + string.digits + " ,:/()\n"
_MAX_OBSERVATION = 512

Info = dict[str, Any]


class PlaygroundTextEnv(gym.Env[str, Any]):
    """Goal-conditioned text Playground: grasp objects, grow plants and animals.

    ``reset(seed=..., options={"goal": "Grow carrot"})`` starts an episode for a
    goal (or a sampled one); ``options["feasible"]`` forces a feasible or an
    impossible scene; ``options["episode_seed"]`` (or its older name
    ``options["scene_seed"]``) regenerates the scene an earlier episode recorded in
    ``info["episode_seed"]`` (with the same goal and config).
    ``step`` takes an admissible action string or its index in
    ``info["admissible_actions"]``. ``info`` carries ``goal``, ``goal_category``,
    ``feasible``, ``horizon``, ``admissible_actions``, ``achieved_goals`` (what
    the last step made true), ``scene_seed`` and ``steps``.
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"]}  # noqa: RUF012

    def __init__(
        self,
        config: PlaygroundConfig | None = None,
        render_mode: str | None = None,
        **overrides: Any,
    ) -> None:
        self.render_mode = render_mode_of(render_mode, self.metadata)
        base = config or PlaygroundConfig()
        self.config = base.model_copy(update=overrides) if overrides else base
        if overrides:
            self.config = PlaygroundConfig.model_validate(self.config.model_dump())
        self.observation_space = spaces.Text(max_length=_MAX_OBSERVATION, charset=_CHARSET)
        self.action_space = spaces.Discrete(self.config.n_objects + 3)
        self._episode: LiveEpisode[Scene, Goal] = LiveEpisode()
        self._feasible = False
        self._horizon = 0
        self._steps = 0
        self._scene_seed = 0

    # -- gymnasium API -------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, Info]:
        super().reset(seed=seed)
        options = options or {}
        drawn = int(self.np_random.integers(2**63 - 1))
        self._scene_seed = int(options.get("episode_seed", options.get("scene_seed", drawn)))
        goal, scene = generate(
            options.get("goal"),
            self.config,
            random.Random(self._scene_seed),
            feasible=options.get("feasible"),
        )
        self._episode.start(scene, goal)
        self._feasible = scene.is_feasible(goal)
        self._horizon = HORIZONS[goal.category] if self._feasible else IMPOSSIBLE_HORIZON
        self._steps = 0
        return scene.observation(), self._info([])

    def step(self, action: str | int) -> tuple[str, float, bool, bool, Info]:
        scene, goal = self._episode.require()
        text = self._resolve(action, scene)
        achieved_now = scene.apply(text)
        self._steps += 1
        r = reward(goal.text, achieved_now)
        terminated = r > 0
        truncated = not terminated and self._steps >= self._horizon
        self._episode.done = terminated or truncated
        return scene.observation(), r, terminated, truncated, self._info(achieved_now)

    def render(self) -> str:
        scene, goal = self._episode.require(allow_done=True)
        return render(goal.text, scene.observation())

    # -- helpers -------------------------------------------------------------------------------

    @property
    def scene(self) -> Scene:
        """The live scene (read it, do not change it: use ``step``)."""
        return self._episode.require(allow_done=True)[0]

    @property
    def goal(self) -> Goal:
        return self._episode.require(allow_done=True)[1]

    def admissible_actions(self) -> list[str]:
        return self.scene.admissible_actions()

    def _resolve(self, action: str | int, scene: Scene) -> str:
        """The action text: an admissible action's text, or an index of ``action_space``.
        An index past the admissible list wraps around onto it, so that every action of
        ``action_space`` is admissible: ``action_space.sample()`` (gymnasium's checker,
        a vector env's blind sampling) always acts, and ``sample(mask=info["action_mask"])``
        draws each admissible action once, uniformly."""
        admissible = scene.admissible_actions()
        is_index = isinstance(action, Integral) and not isinstance(action, bool)
        if is_index and 0 <= int(action) < self.config.n_objects + 3:  # action_space.n
            return admissible[int(action) % len(admissible)]
        return admissible[action_index(action, admissible)]

    def _info(self, achieved_now: list[str]) -> Info:
        scene, goal = self._episode.require(allow_done=True)
        return {
            "goal": goal.text,
            "goal_category": goal.category.value,
            "feasible": self._feasible,
            "horizon": self._horizon,
            "admissible_actions": scene.admissible_actions(),
            "action_mask": action_mask(self.config.n_objects + 3, len(scene.admissible_actions())),
            "achieved_goals": achieved_now,
            "scene_seed": self._scene_seed,
            "episode_seed": self._scene_seed,
            "steps": self._steps,
        }
