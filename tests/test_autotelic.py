"""The autotelic setting: the whole goal space, impossible goals listed, a curriculum told
neither the categories nor which goals are impossible (bench/configs/autotelic.yaml).

The goal space can list its impossible goals (``env.impossible_goals``); the curriculum
can be left untold of feasibility (``use_feasibility: false``), so impossible goals sit in
the unsolved reserve like any goal never won until ``unsolved_patience`` failed tries take
them out; evaluations measure feasible goals only, per goal too; the experiment script
reports the curriculum's pursued episodes per category and its competence error on the
held-out goals.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest

from autotelic.envs.playground import PlaygroundConfig
from autotelic.envs.playground.batch import goal_space
from autotelic.goals import (
    CurriculumConfig,
    EpisodeOutcome,
    EpsilonSchedule,
    GoalDaemon,
    SamplerConfig,
)
from autotelic.runtime.evaluation.evaluate import feasible_goals, plan_episodes
from bench.experiment import competence_errors, pursued_by_category

ROOT = Path(__file__).resolve().parents[1]
FURNITURE = ["Grow door", "Grow chair", "Grow desk", "Grow sofa", "Grow bookshelf", "Grow bed"]


def test_the_goal_space_lists_impossible_goals_only_when_asked() -> None:
    plain = goal_space(PlaygroundConfig()).goals("train")
    listed = goal_space(PlaygroundConfig(impossible_goals=True))
    goals = listed.goals("train")
    assert len(plain) == 42 and len(goals) == 48
    assert sorted(set(goals) - set(plain)) == sorted(FURNITURE)
    assert {listed.parse(g).category for g in goals} == {
        "grasp", "grow_plant", "grow_herbivore", "grow_carnivore", "grow_furniture",
    }  # fmt: skip
    assert all(listed.feasible(g) is False for g in FURNITURE)
    # Evaluation has nothing to measure on them: plans and defaults skip them.
    assert feasible_goals(listed, "train") == plain
    plan = plan_episodes(listed, "train", per_category=3, seed=0)
    assert {e.category for e in plan} == {
        "grasp", "grow_plant", "grow_herbivore", "grow_carnivore",
    }  # fmt: skip


def _daemon(use_feasibility: bool, patience: int | None) -> GoalDaemon:
    sampler = SamplerConfig(
        epsilon=EpsilonSchedule(kind="constant", start=0.0),
        floor=0.0,
        unsolved_share=0.4,
        balance="goal",
        use_feasibility=use_feasibility,
        unsolved_patience=patience,
    )
    goals = ["Grasp cow", "Grow door", "Grow lion"]
    return GoalDaemon(
        CurriculumConfig(configured_goals=goals, sampler=sampler),
        goal_space=goal_space(PlaygroundConfig(impossible_goals=True)),
    )


def _fail(daemon: GoalDaemon, goal: str, times: int) -> None:
    for _ in range(times):
        daemon.report(EpisodeOutcome(goal, "configured", None, False, 10))


def test_untold_of_feasibility_an_impossible_goal_shares_the_reserve_until_patience_runs_out() -> (
    None
):
    told, untold = _daemon(True, 3), _daemon(False, 3)
    for daemon in (told, untold):
        for success in (False, False, True, True):  # LP on Grasp cow
            daemon.report(EpisodeOutcome("Grasp cow", "configured", None, success, 2))
    # Told: growing a door is impossible, so only Grow lion takes the reserve.
    assert told.probabilities()["Grow door"] == 0.0
    assert told.probabilities()["Grow lion"] == pytest.approx(0.4)
    # Untold: it looks like any goal never won, and shares the reserve with Grow lion.
    probs = untold.probabilities()
    assert probs["Grow door"] == pytest.approx(0.2) and probs["Grow lion"] == pytest.approx(0.2)
    _fail(untold, "Grow door", 2)  # 2 failures: patience (3) not spent
    assert untold.probabilities()["Grow door"] == pytest.approx(0.2)
    _fail(untold, "Grow door", 1)  # the third: it leaves the reserve
    probs = untold.probabilities()
    assert probs["Grow door"] == 0.0 and probs["Grow lion"] == pytest.approx(0.4)
    # Patience counts failures of each goal alone: Grow lion's run out too, then nothing
    # is left in the reserve and LP alone decides.
    _fail(untold, "Grow lion", 3)
    assert untold.probabilities()["Grasp cow"] == pytest.approx(1.0)


def test_without_patience_a_goal_never_won_keeps_its_reserve() -> None:
    daemon = _daemon(False, None)
    for success in (False, False, True, True):  # LP on Grasp cow
        daemon.report(EpisodeOutcome("Grasp cow", "configured", None, success, 2))
    _fail(daemon, "Grow door", 500)
    assert daemon.probabilities()["Grow door"] == pytest.approx(0.2)
    assert daemon.attempts()["Grow door"] == (500, 0)
    assert daemon.attempts()["Grasp cow"] == (4, 2)


def test_pursued_episodes_per_category_from_constructed_attempts() -> None:
    space = goal_space(PlaygroundConfig(impossible_goals=True))
    attempts = {"Grasp cow": (10, 7), "Grasp lion": (5, 1), "Grow door": (4, 0)}
    out = pursued_by_category(attempts, space.parse)
    assert out["pursued"] == {"all": 19, "grasp": 15, "grow_furniture": 4}
    assert out["won"] == {"all": 8, "grasp": 8, "grow_furniture": 0}


def test_competence_errors_on_constructed_predictions() -> None:
    space = goal_space(PlaygroundConfig())
    goals = ["Grasp lion", "Grasp wolf", "Grow wolf"]
    out = competence_errors(goals, np.array([0.9, 0.5, 0.0]), [1.0, 0.0, 0.5], space.parse)
    assert out["competence_error"]["grasp"] == pytest.approx((0.1 + 0.5) / 2)
    assert out["competence_error"]["grow_carnivore"] == pytest.approx(0.5)
    assert out["competence_error"]["all"] == pytest.approx((0.1 + 0.5 + 0.5) / 3)
    # The category means can agree while the goals disagree (noise per goal averages out).
    assert out["predicted"]["grasp"] == pytest.approx(0.7)
    assert out["measured"]["grasp"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="2 predictions for 3 measured goals"):
        competence_errors(goals, np.array([0.1, 0.2]), [1.0, 0.0, 0.5], space.parse)


def test_the_autotelic_experiment_pursues_every_category_and_impossible_goals_unprompted(
    tmp_path: Path,
) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "bench/experiment.py"), "--config",
         str(ROOT / "bench/configs/autotelic.yaml"), "--method", "sac-glam-her", "--seed", "0",
         "--budget", "480", "--eval-every", "240", "--out", str(tmp_path),
         "--eval-episodes", "1"],
        check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    with (tmp_path / "sac-glam-her-s0-curriculum.csv").open() as f:
        rows = list(csv.DictReader(f))
    last = max(int(r["env_steps"]) for r in rows)
    pursued = {
        r["category"]: int(r["value"])
        for r in rows
        if int(r["env_steps"]) == last and r["measure"] == "pursued"
    }
    categories = ("grasp", "grow_plant", "grow_herbivore", "grow_carnivore", "grow_furniture")
    assert all(pursued.get(c, 0) > 0 for c in categories), pursued
    assert pursued["all"] == sum(pursued[c] for c in categories)
    errors = [
        float(r["value"])
        for r in rows
        if int(r["env_steps"]) == last and r["measure"] == "competence_error"
    ]
    assert errors and all(0.0 <= e <= 1.0 for e in errors)
    with (tmp_path / "sac-glam-her-s0.csv").open() as f:
        success = list(csv.DictReader(f))
    # Every feasible category is evaluated, on training and held-out objects; growing
    # furniture never is.
    cells = {(r["split"], r["category"]) for r in success if int(r["env_steps"]) == last}
    for split in ("train", "test"):
        assert {c for s, c in cells if s == split} == {*categories[:4], "all"}
    # No goal list: the run's settings name none, and discovery is on.
    config = (ROOT / "bench/configs/autotelic.yaml").read_text()
    assert "configured_goals: null" in config and "discover: true" in config


def test_a_goal_seen_achieved_keeps_its_reserve_past_patience() -> None:
    daemon = _daemon(False, 3)
    for success in (False, False, True, True):
        daemon.report(EpisodeOutcome("Grasp cow", "configured", None, success, 2))
    _fail(daemon, "Grow door", 3)
    # Grow lion fails three times too, but one episode pursuing Grasp cow grew a lion on
    # the way: the agent has seen it achieved, so it stays in the reserve.
    _fail(daemon, "Grow lion", 3)
    daemon.report(EpisodeOutcome("Grasp cow", "configured", None, True, 2, ["Grow lion"]))
    probs = daemon.probabilities()
    assert probs["Grow door"] == 0.0 and probs["Grow lion"] == pytest.approx(0.4)
    # The evidence survives a checkpoint.
    again = _daemon(False, 3)
    again.load_state_dict(daemon.state_dict())
    assert again.probabilities()["Grow lion"] == pytest.approx(0.4)


def test_unsolved_below_keeps_a_goal_in_the_reserve_until_its_competence_reaches_it() -> None:
    sampler = SamplerConfig(
        epsilon=EpsilonSchedule(kind="constant", start=0.0),
        floor=0.0,
        unsolved_share=0.4,
        balance="goal",
        unsolved_below=0.5,
    )
    goals = ["Grasp cow", "Grow lion"]
    daemon = GoalDaemon(
        CurriculumConfig(configured_goals=goals, sampler=sampler, goal_window=4),
        goal_space=goal_space(PlaygroundConfig()),
    )
    for success in (False, False, True, True):  # LP on Grasp cow, competence 0.5
        daemon.report(EpisodeOutcome("Grasp cow", "configured", None, success, 2))
    for success in (False, False, False, True):  # won once: competence 0.25 < 0.5
        daemon.report(EpisodeOutcome("Grow lion", "configured", None, success, 15))
    probs = daemon.probabilities()
    assert probs["Grow lion"] >= 0.4 - 1e-9  # still in the reserve after its first win
    for _ in range(4):  # mastered: competence 1.0
        daemon.report(EpisodeOutcome("Grow lion", "configured", None, True, 15))
    # Out of the reserve: LP alone (Grow lion's window 1,1,1,1 has none) decides.
    assert daemon.probabilities()["Grow lion"] == pytest.approx(0.0)


def test_the_frontier_reserve_favours_unsolved_goals_seen_achieved() -> None:
    sampler = SamplerConfig(
        epsilon=EpsilonSchedule(kind="constant", start=0.0),
        floor=0.0,
        unsolved_share=0.4,
        frontier_share=0.3,
        balance="goal",
        use_feasibility=False,
    )
    goals = ["Grasp cow", "Grow door", "Grow lion", "Grow cow"]
    daemon = GoalDaemon(
        CurriculumConfig(configured_goals=goals, sampler=sampler),
        goal_space=goal_space(PlaygroundConfig(impossible_goals=True)),
    )
    for success in (False, False, True, True):  # LP on Grasp cow
        daemon.report(EpisodeOutcome("Grasp cow", "configured", None, success, 2))
    before = daemon.probabilities()  # three unsolved goals share the first reserve evenly
    assert before["Grow door"] == pytest.approx(before["Grow lion"]) == pytest.approx(0.4 / 3)
    # An episode pursuing Grasp cow grew a lion: Grow lion is on the frontier.
    daemon.report(EpisodeOutcome("Grasp cow", "configured", None, True, 2, ["Grow lion"]))
    probs = daemon.probabilities()
    assert probs["Grow lion"] == pytest.approx(0.3)
    # Taken in proportion from the others: the never-achieved goals keep less than before.
    assert probs["Grow door"] == pytest.approx(probs["Grow cow"])
    assert probs["Grow door"] < before["Grow door"]
    assert sum(probs.values()) == pytest.approx(1.0)


def test_fixed_word_vectors_keep_every_word_where_it_started_and_tie_the_head() -> None:
    """The generalisation fix: a held-out object's word stays in the distribution of the
    trained ones because no word vector moves (learners/model_config.py)."""
    import torch

    from autotelic.learners.model_config import ModelConfig
    from autotelic.learners.models import load_model

    def trained(
        word_vectors: Literal["trained", "fixed"],
    ) -> tuple[torch.Tensor, torch.Tensor, Any]:
        policy = load_model(
            ModelConfig(
                path="tiny-words",
                finetune="full",
                word_vectors=word_vectors,
                vocabulary=("autotelic/PlaygroundText-v0",),
            )
        )
        hf: Any = policy.hf
        before = hf.get_input_embeddings().weight.detach().clone()
        params = [p for p in hf.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=1e-2)
        tokenizer: Any = policy.tokenizer
        ids = tokenizer("Grasp carrot", return_tensors="pt")["input_ids"]
        for _ in range(3):
            optimizer.zero_grad()
            hf(input_ids=ids, labels=ids).loss.backward()
            optimizer.step()
        return before, hf.get_input_embeddings().weight.detach(), hf

    before, after, hf = trained("fixed")
    assert torch.equal(before, after)  # no word vector moved, the trained ones included
    assert hf.get_output_embeddings().weight is hf.get_input_embeddings().weight
    assert any(p.requires_grad for p in hf.model.layers.parameters())  # the body trains
    before, after, hf = trained("trained")
    assert not torch.equal(before, after)
    assert hf.get_output_embeddings().weight is not hf.get_input_embeddings().weight


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_sac_her_under_the_embedding_curriculum_learns_grow_plant_unprompted(
    tmp_path: Path,
) -> None:
    """About 20 minutes of one core. Grow herbivore is not learnt by SAC-GLAM + HER in
    this setting within 200,000 steps (docs/results.md, "Autotelic"), so the slow check
    is the stage it does reach: Grow plant, which the random policy never achieves and
    which no curriculum but the embedding one learns by 50,000 steps."""
    subprocess.run(
        [sys.executable, str(ROOT / "bench/experiment.py"), "--config",
         str(ROOT / "bench/configs/autotelic.yaml"), "--method", "cur-embedding", "--seed", "0",
         "--budget", "50000", "--eval-every", "10000", "--out", str(tmp_path)],
        check=True, capture_output=True, text=True, timeout=3500,
    )  # fmt: skip
    with (tmp_path / "cur-embedding-s0.csv").open() as f:
        rows = list(csv.DictReader(f))
    last = max(int(r["env_steps"]) for r in rows)
    (plant,) = [
        float(r["success"])
        for r in rows
        if int(r["env_steps"]) == last and r["split"] == "train"
        and r["acting"] == "greedy" and r["category"] == "grow_plant"
    ]  # fmt: skip
    assert plant >= 0.5
