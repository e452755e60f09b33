"""Properties of BabyAI-Text under random play: the text and the achieved goals tell the truth.

The expectations are recomputed here from minigrid's own state by other means
than the env uses: object offsets from absolute positions and the agent's
direction vectors, achieved goals from minigrid's verifier instructions.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from minigrid.envs.babyai.core.verifier import ObjDesc

from autotelic.envs.babyai import (
    BabyAIGoalSpace,
    BabyAITextEnv,
    Category,
    Goal,
    Thing,
    all_goals,
    oracle_action,
    parse_goal,
)
from autotelic.envs.babyai.batch import make_batch
from autotelic.envs.babyai.levels import instructions_for

SPACE = BabyAIGoalSpace()
GOALS = all_goals("train") + all_goals("test")
ENVS = {split: BabyAITextEnv(split=split) for split in ("train", "test")}
BATCHES = {split: make_batch(num_envs=1, split=split) for split in ("train", "test")}
ACTIONS = ("turn left", "turn right", "go forward", "pick up", "drop", "toggle")
"""The admissible actions in minigrid's order (the random plays below index them)."""
SETTINGS = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)

episodes = st.tuples(
    st.sampled_from(GOALS),
    st.integers(0, 2**31 - 1),
    st.lists(st.sampled_from([0, 1, 2, 2, 2, 3, 4, 5]), min_size=1, max_size=60),
    st.sampled_from(["train", "test"]),
)
"""A goal, a seed, random actions (turns, moves, pick-ups, drops and toggles, moving
forward more often so that the agent gets around) and a split."""


def steps_word(n: int) -> str:
    return "step" if n == 1 else "steps"


def expected_view(level: Any) -> tuple[set[str], set[str], str]:
    """Object lines, wall lines and the carry line, from absolute positions."""
    _, visible = level.gen_obs_grid()
    pos, forward_vec, right_vec = np.array(level.agent_pos), level.dir_vec, level.right_vec
    objects, walls = set(), set()
    for x in range(level.grid.width):
        for y in range(level.grid.height):
            cell = level.grid.get(x, y)
            view = level.relative_coords(x, y)
            if cell is None or view is None or not visible[view] or (x, y) == tuple(pos):
                continue
            forward = int(np.dot((x, y) - pos, forward_vec))
            right = int(np.dot((x, y) - pos, right_vec))
            if cell.type != "wall":
                objects.add(f"You see {article(name(cell))} {name(cell)} {where(forward, right)}.")
    for vec, word in ((forward_vec, "forward"), (-right_vec, "left"), (right_vec, "right")):
        for n in range(1, level.agent_view_size):
            x, y = pos + n * np.array(vec)
            view = level.relative_coords(x, y)
            if view is None or not visible[view]:
                break
            cell = level.grid.get(x, y)
            if cell is not None and cell.type == "wall":
                walls.add(f"You see a wall {n} {steps_word(n)} {word}.")
                break
    held = level.carrying
    carry = f"You carry {article(name(held))} {name(held)}." if held else "You carry nothing."
    return objects, walls, carry


def name(obj: Any) -> str:
    if obj.type == "door":
        state = "open" if obj.is_open else ("locked" if obj.is_locked else "closed")
        return f"{state} {obj.color} door"
    return f"{obj.color} {obj.type}"


def article(label: str) -> str:
    return "an" if label.startswith("open") else "a"


def where(forward: int, right: int) -> str:
    parts = [f"{forward} {steps_word(forward)} forward"] if forward else []
    if right:
        parts.append(f"{abs(right)} {steps_word(abs(right))} {'right' if right > 0 else 'left'}")
    return " and ".join(parts)


def check_text(obs: str, level: Any) -> None:
    lines = obs.split("\n")
    objects, walls, carry = expected_view(level)
    assert lines[-1] == carry
    seen = [line for line in lines[:-1] if line != "You see nothing nearby."]
    assert set(seen) == objects | walls and len(seen) == len(objects) + len(walls)


class Verifiers:
    """Minigrid's verifier for every goal naming objects of the level, kept up to date."""

    def __init__(self, level: Any) -> None:
        present = {Thing(c.color, c.type) for c in level.grid.grid if c and c.type != "wall"}
        self.level = level
        self.instrs: dict[str, Any] = {}
        for text in GOALS:
            goal = parse_goal(text)
            if set(goal.things) <= present:
                self.instrs[text] = instructions_for(goal)
                self.instrs[text].reset_verifier(level)

    def step(self, action: int) -> set[str]:
        done = set()
        for text, instr in self.instrs.items():
            # minigrid refreshes positions only on drops; refresh each step so that a
            # carried object is nowhere, as the grid says
            for desc in ("desc", "desc_move", "desc_fixed"):
                if isinstance(getattr(instr, desc, None), ObjDesc):
                    getattr(instr, desc).find_matching_objs(self.level, use_location=False)
            if instr.verify(action) == "success":
                done.add(text)
        return done


@SETTINGS
@given(episodes)
def test_the_text_describes_what_the_grid_shows_in_view(episode):
    goal, seed, actions, split = episode
    env = ENVS[split]
    obs, _ = env.reset(seed=seed, options={"goal": goal})
    check_text(obs, env.level)
    for action in actions:
        obs, _, terminated, truncated, _ = env.step(action)
        check_text(obs, env.level)
        if terminated or truncated:
            break


@SETTINGS
@given(episodes)
def test_the_registered_batch_shows_the_grid_in_every_state_it_returns(episode):
    """The runtime's path (the batch ``env.id`` builds, actions as indices into each state's
    admissible list): every state's observation, after the reset and after each step,
    describes what the grid shows, and the episode's end is the env's."""
    goal, seed, actions, split = episode
    batch = BATCHES[split]
    [state] = batch.reset([0], [goal], [seed])
    level = cast(BabyAITextEnv, batch.envs[0]).level
    check_text(state.observation, level)
    for action in actions:
        [result] = batch.step([0], [state.actions.index(ACTIONS[action])])
        state = result.state
        check_text(state.observation, level)
        if result.terminated or result.truncated:
            break


@SETTINGS
@given(episodes)
def test_achieved_goals_agree_with_the_goal_space_and_minigrid_verifiers(episode):
    goal, seed, actions, split = episode
    env = ENVS[split]
    env.reset(seed=seed, options={"goal": goal})
    verifiers = Verifiers(env.level)
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        check_text(obs, env.level)  # the text of every step, beside what it achieved
        achieved = info["achieved_goals"]
        holds = SPACE.achieved(goal, achieved)
        assert holds == info["mission_success"] == terminated == (reward == 1.0)
        assert all(SPACE.parse(g).text == g for g in achieved)
        assert set(achieved) & set(verifiers.instrs) == verifiers.step(action)
        assert set(achieved) <= set(verifiers.instrs)
        if terminated or truncated:
            break


def test_oracle_play_achieves_each_family_exactly_when_the_verifiers_say_so():
    env = ENVS["train"]
    seen: set[str] = set()
    for seed, goal in enumerate(
        [
            "go to the red ball",
            "go to the grey door",
            "pick up the yellow key",
            "open the purple door",
            "put the green box next to the red key",
        ]
    ):
        env.reset(seed=seed, options={"goal": goal})
        verifiers = Verifiers(env.level)
        terminated = truncated = False
        while not (terminated or truncated):
            action = oracle_action(env)
            _, _, terminated, truncated, info = env.step(action)
            achieved = set(info["achieved_goals"])
            assert achieved & set(verifiers.instrs) == verifiers.step(action)
            seen |= {SPACE.parse(g).category for g in achieved}
        assert terminated and goal in achieved
    assert seen == {c.value for c in Category}


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.sampled_from(GOALS), st.sampled_from(["The", "a", "THE"]))
def test_an_achieved_goal_relabels_any_spelling_of_itself(goal, article_word):
    respelled = goal.replace("the", article_word, 1)
    assert SPACE.achieved(respelled, [goal])
    parsed = parse_goal(goal)
    other = Goal(Category.GO_TO, parsed.target) if parsed.category is not Category.GO_TO else None
    if other is not None:
        assert not SPACE.achieved(other.text, [goal])
