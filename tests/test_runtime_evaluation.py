"""Periodic evaluation in-process: fixed episode sets on every registered environment, its
cadence and cost bound counted in env steps, serial determinism, and its history on resume."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from autotelic.core import algorithm_spec, env_spec, load_plugins, registered_envs
from autotelic.runtime.config import ConfigError, deep_merge, load_settings
from autotelic.runtime.evaluation.config import EvalConfig
from autotelic.runtime.evaluation.evaluate import plan_episodes
from autotelic.runtime.evaluation.periodic import PeriodicEvaluator
from autotelic.runtime.loop.agent import Agent
from autotelic.runtime.telemetry.metrics import Metrics, PrometheusEvents
from autotelic.runtime.telemetry.run_logs import read_rows
from autotelic.storage import RunLayout
from tests.runtime_fixtures import TINY_SERVICE

load_plugins(["tests.toy_plugin"])
ENV_IDS = [spec.id for spec in registered_envs()]


def serial_settings(run_dir: Path, **extra: Any) -> Any:
    base = deep_merge(TINY_SERVICE, {"run": {"dir": str(run_dir), "mode": "serial"}})
    return load_settings(None, **deep_merge(base, extra))


def evaluations(rows: list[dict[str, str]]) -> dict[int, list[dict[str, str]]]:
    """CSV rows grouped by evaluation index, in order."""
    grouped: dict[int, list[dict[str, str]]] = {}
    for row in rows:
        grouped.setdefault(int(row["evaluation"]), []).append(row)
    return grouped


def toy_learner() -> Any:
    """The toy plug-in's tabular learner: a real registered algorithm that reads any text env."""
    spec = algorithm_spec("toy-q")
    return spec.build(None, spec.config.model_validate({"name": "toy-q"}))


class Counter:
    """Training env steps, advanced by hand: what the evaluator's budget counts against."""

    def __init__(self) -> None:
        self.steps = 0

    def __call__(self) -> int:
        return self.steps


# -- the episode plan ------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("split", ["train", "test"])
def test_the_plan_gives_every_category_with_goals_its_episodes_the_same_at_every_call(
    env_id: str, split: Any
) -> None:
    spec = env_spec(env_id)
    space = spec.goal_space(spec.config.model_validate({"id": spec.id}))
    plan = plan_episodes(space, split, per_category=3, seed=7)
    assert plan == plan_episodes(space, split, per_category=3, seed=7)
    with_goals = {space.parse(g).category for g in space.goals(split)}
    assert with_goals, f"{env_id} has no {split} goals"
    counts = {c: sum(e.category == c for e in plan) for c in with_goals}
    assert counts == dict.fromkeys(with_goals, 3)
    split_goals = set(space.goals(split))
    assert all(e.goal in split_goals and space.parse(e.goal).category == e.category for e in plan)
    assert len({e.seed for e in plan}) == len(plan)  # every episode its own scene
    other = plan_episodes(space, split, per_category=3, seed=8)
    assert [e.seed for e in other] != [e.seed for e in plan]


def test_an_unknown_split_or_no_episode_is_refused_with_a_clear_error() -> None:
    spec = env_spec("autotelic/PlaygroundText-v0")
    space = spec.goal_space(spec.config.model_validate({"id": spec.id}))
    with pytest.raises(ValueError, match="unknown split 'valid'; expected one of train, test"):
        plan_episodes(space, "valid", per_category=1, seed=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="per_category must be >= 1"):
        plan_episodes(space, "train", per_category=0, seed=0)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"interval_env_steps": None}, "eval: set interval_env_steps or interval_s"),
        ({"max_cost_fraction": 0}, "eval.max_cost_fraction: Input should be greater than 0"),
        ({"max_cost_fraction": 1.5}, "eval.max_cost_fraction: Input should be less than or"),
        ({"splits": []}, "eval.splits: List should have at least 1 item"),
        ({"splits": ["train", "validation"]}, "eval.splits.1: Input should be 'train' or 'test'"),
        ({"acting": ["greedy", "greedy"]}, "eval.acting lists a value twice"),
        ({"every": 5}, "eval.every: Extra inputs are not permitted"),
    ],
)
def test_a_bad_eval_section_is_refused_naming_the_field(
    section: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, eval=section)
    assert message in str(err.value)


# -- the evaluator on every registered environment -----------------------------------------


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_periodic_evaluation_measures_both_splits_and_ways_of_acting_on_every_environment(
    env_id: str, tmp_path: Path
) -> None:
    """With the toy tabular learner (any text env): one CSV row per split, way of acting and
    category with goals, each with its episodes, and the budget never overdrawn."""
    spec = env_spec(env_id)
    env_config = spec.config.model_validate({"id": env_id, "num_envs": 2})
    learner = toy_learner()
    config = EvalConfig(interval_env_steps=50, episodes_per_category=2, num_envs=4)
    trained = Counter()
    path = tmp_path / "evaluations.csv"
    evaluator = PeriodicEvaluator(config, learner, spec, env_config, trained=trained, path=path)
    assert evaluator.advance() == 0  # not due before 50 training steps
    while evaluator.completed == 0:
        trained.steps += 50
        evaluator.advance()
        assert evaluator.spent <= 0.1 * trained.steps
    evaluator.close()
    rows = read_rows(path)
    space = spec.goal_space(env_config)
    expected = {
        (split, acting, space.parse(g).category)
        for split in ("train", "test")
        for g in space.goals(split)
        for acting in ("greedy", "sampled")
    }
    assert {(r["split"], r["acting"], r["category"]) for r in rows} == expected
    assert len(rows) == len(expected)
    assert all(r["evaluation"] == "0" and r["env_steps"] == "50" for r in rows)
    assert all(int(r["episodes"]) == 2 and int(r["steps"]) >= 2 for r in rows)
    assert all(float(r["success"]) == int(r["successes"]) / 2 for r in rows)
    assert sum(int(r["steps"]) for r in rows) == evaluator.spent


def test_an_interval_in_seconds_makes_an_evaluation_due_on_the_clock_alone(tmp_path: Path) -> None:
    spec = env_spec("toy/NumberLine-v0")
    now = [1000.0]
    config = EvalConfig(interval_env_steps=None, interval_s=60, max_cost_fraction=1.0)
    trained = Counter()
    trained.steps = 10_000  # budget to spare, but no step interval
    evaluator = PeriodicEvaluator(
        config,
        toy_learner(),
        spec,
        spec.config.model_validate({"id": spec.id}),
        trained=trained,
        monotonic=lambda: now[0],
    )
    trained.steps += 10_000
    assert not evaluator.due() and evaluator.advance() == 0
    now[0] += 59.0
    assert not evaluator.due()
    now[0] += 1.0
    assert evaluator.due()
    while evaluator.completed == 0:
        assert evaluator.advance() > 0
    assert evaluator.last is not None and evaluator.last.env_steps == 20_000
    assert not evaluator.due()  # the next one is 60 s after this one started
    now[0] += 60.0
    assert evaluator.due()
    evaluator.close()


class PromptRecorder:
    """The toy learner, keeping every prompt it is asked to build."""

    def __init__(self) -> None:
        self.inner = toy_learner()
        self.prompts: list[str] = []
        self.policy_version = 0
        self.num_updates = 0

    def prompt(self, goal: str, observation: str, actions: Sequence[str]) -> str:
        self.prompts.append(self.inner.prompt(goal, observation, actions))
        return self.prompts[-1]

    def act(self, prompts: Any, candidates: Any, **kwargs: Any) -> Any:
        return self.inner.act(prompts, candidates, **kwargs)

    def state_dict(self) -> dict[str, Any]:
        return dict(self.inner.state_dict())

    def load_state_dict(self, state: Any, *, write_lock: Any = None) -> None:
        self.inner.load_state_dict(state, write_lock=write_lock)


@pytest.mark.parametrize("mode", ["observed", "terminal"])
def test_evaluation_reads_the_steps_left_exactly_when_training_does(
    mode: Any, tmp_path: Path
) -> None:
    """In the ``observed`` time-limit mode the policy was trained on observations that show
    the steps left: evaluation must show them too, and only then."""
    agent = Agent(serial_settings(tmp_path, run={"time_limit": mode}))
    try:
        training_shows = ["Steps left: " in p for p in agent.collector.prompts]
    finally:
        agent.close()
    spec = env_spec("autotelic/PlaygroundText-v0")
    learner = PromptRecorder()
    config = EvalConfig(interval_env_steps=1, max_cost_fraction=1.0, splits=["test"])
    trained = Counter()
    evaluator = PeriodicEvaluator(
        config,
        learner,
        spec,
        spec.config.model_validate({"id": spec.id}),
        trained=trained,
        time_limit=mode,
    )
    trained.steps = 10_000
    while evaluator.completed == 0:
        evaluator.advance()
    evaluated_shows = ["Steps left: " in p for p in learner.prompts]
    assert set(training_shows) == set(evaluated_shows) == {mode == "observed"}


def test_the_evaluator_refuses_a_configuration_with_nothing_to_evaluate() -> None:
    spec = env_spec("autotelic/PlaygroundText-v0")
    learner = toy_learner()
    off = EvalConfig(enabled=False)
    with pytest.raises(ValueError, match="periodic evaluation is disabled"):
        PeriodicEvaluator(
            off, learner, spec, spec.config.model_validate({"id": spec.id}), trained=Counter()
        )


# -- inside the serial agent -------------------------------------------------------------------


def test_serial_training_is_the_same_with_evaluation_on_and_off(tmp_path: Path) -> None:
    """Evaluation has its own envs and generators: the training episodes do not change."""
    runs = {}
    for name, enabled in (("on", True), ("off", False)):
        section = {"enabled": enabled, "interval_env_steps": 60, "max_cost_fraction": 1.0}
        agent = Agent(
            serial_settings(
                tmp_path / name,
                run={"max_env_steps": 240, "seed": 3},
                eval={**section, "episodes_per_category": 1, "splits": ["test"]},
            )
        )
        try:
            agent.run_serial()
            runs[name] = [
                (e.goal, [s.action for s in e.steps]) for e in agent.store.iter_episodes()
            ]
            if enabled:
                assert agent.evaluator is not None and agent.evaluator.completed >= 2
            else:
                assert agent.evaluator is None
        finally:
            agent.close()
    assert runs["on"] == runs["off"] and len(runs["on"]) > 10
    assert not RunLayout(tmp_path / "off").evaluations.exists()


def test_evaluations_start_once_per_interval_and_their_episodes_are_not_stored(
    tmp_path: Path,
) -> None:
    """With budget to spare (an evaluation takes at most 4 x 45 steps here), evaluation k
    starts at the first step past k intervals."""
    agent = Agent(
        serial_settings(
            tmp_path,
            run={"max_env_steps": 600},
            eval={"interval_env_steps": 200, "episodes_per_category": 1, "max_cost_fraction": 1.0},
        )
    )
    try:
        agent.run_serial()
        stored = list(agent.store.iter_episodes())
    finally:
        agent.close()
    grouped = evaluations(read_rows(agent.layout.evaluations))
    assert [int(rows[0]["env_steps"]) for rows in grouped.values()] == [200, 400, 600]
    plan = {
        (e.goal, e.seed)
        for split in ("train", "test")
        for e in plan_episodes(agent.goal_space, split, 1, agent.settings.eval.seed)
    }
    assert not plan & {(e.goal, e.scene_seed) for e in stored}
    assert sum(e.length for e in stored) <= 600  # only training steps are stored


def test_a_small_budget_delays_evaluations_but_is_never_exceeded(tmp_path: Path) -> None:
    """10% of the training env steps: each evaluation waits for its share, counted in steps."""
    fraction = 0.1
    agent = Agent(
        serial_settings(
            tmp_path,
            run={"max_env_steps": 1400},
            eval={
                "interval_env_steps": 40,
                "episodes_per_category": 1,
                "splits": ["train"],
                "acting": ["greedy"],
                "max_cost_fraction": fraction,
            },
        )
    )
    try:
        agent.run_serial()
        spent = agent.evaluator.spent if agent.evaluator is not None else -1
    finally:
        agent.close()
    grouped = evaluations(read_rows(agent.layout.evaluations))
    assert len(grouped) >= 2
    total = 0
    for rows in grouped.values():
        total += sum(int(r["steps"]) for r in rows)
        assert total <= fraction * int(rows[0]["env_steps_end"])
    assert 0 < spent <= fraction * 1400
    starts = [int(rows[0]["env_steps"]) for rows in grouped.values()]
    assert all(b - a > 40 for a, b in itertools.pairwise(starts))  # delayed


def test_the_history_resumes_after_a_restart_and_a_half_written_row_is_never_read(
    tmp_path: Path,
) -> None:
    section = {"interval_env_steps": 200, "episodes_per_category": 1, "max_cost_fraction": 1.0}
    first = Agent(serial_settings(tmp_path, run={"max_env_steps": 400}, eval=section))
    first.run_serial()
    first.close()
    path = first.layout.evaluations
    before = read_rows(path)
    assert len(evaluations(before)) == 2
    with path.open("ab") as f:  # what a kill -9 in the middle of a write leaves
        f.write(b"1700000000.0,2,600,7,2,train,gre")
    assert read_rows(path) == before

    metrics = Metrics()
    second = Agent(
        serial_settings(tmp_path, run={"max_env_steps": 800}, eval=section),
        PrometheusEvents(metrics),
    )
    last = evaluations(before)[1]
    for row in last:  # the gauges show the last evaluation from the start
        labels = {"split": row["split"], "acting": row["acting"], "category": row["category"]}
        shown = metrics.registry.get_sample_value("autotelic_eval_success_ratio", labels)
        assert shown == float(row["success"])
    second.run_serial()
    second.close()
    after = read_rows(path)
    assert after[: len(before)] == before
    grouped = evaluations(after)
    assert list(grouped) == [0, 1, 2, 3]
    assert [int(rows[0]["env_steps"]) for rows in grouped.values()] == [200, 400, 600, 800]
    assert b"gre\n" not in path.read_bytes() and b",gre1" not in path.read_bytes()
