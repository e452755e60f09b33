"""The word-level tokenizer of ``tiny-words``: built from the vocabularies envs register."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autotelic.core import env_spec, load_plugins
from autotelic.core.time_limit import with_steps_left
from autotelic.learners.base import LLMLearner
from autotelic.learners.encoding import StateEncoder
from autotelic.learners.prompt import build_prompt, candidate_text
from autotelic.learners.words import word_tokenizer
from autotelic.runtime.config import deep_merge, load_settings
from autotelic.runtime.loop.agent import Agent
from autotelic.testing.tiny_models import env_vocabulary, tiny_model
from tests.runtime_fixtures import TINY_SERVICE

ENVS = {
    "autotelic/PlaygroundText-v0": {},
    "autotelic/BabyAIText-v0": {"categories": ["go_to", "pick_up", "open", "put_next"]},
}


def random_texts(env_id: str, states: int, seed: int) -> list[tuple[str, list[str]]]:
    """(prompt, candidates) of random walks in ``env_id``, over every goal of both splits,
    with the steps-left line and the listed actions (every text the policy may read)."""
    spec = env_spec(env_id)
    config = spec.config.model_validate({"id": env_id, "num_envs": 4, **ENVS[env_id]})
    batch = spec.make_batch(config)
    space = batch.goal_space
    goals = [*space.goals("train"), *space.goals("test")]
    rng = np.random.default_rng(seed)
    envs = list(range(batch.num_envs))
    batch.seed(seed)
    now = batch.reset(envs, [goals[int(rng.integers(len(goals)))] for _ in envs])
    out: list[tuple[str, list[str]]] = []
    while len(out) < states:
        for s in now:
            shown = with_steps_left(s.observation, s.steps, s.horizon)
            out.append((build_prompt(s.goal, shown, s.actions), list(s.actions)))
        steps = batch.step(envs, [int(rng.integers(len(s.actions))) for s in now])
        now = [st.state for st in steps]
        for i, st in enumerate(steps):
            if st.done:
                now[i] = batch.reset([i], [goals[int(rng.integers(len(goals)))]])[0]
    return out


@pytest.mark.parametrize("env_id", sorted(ENVS))
def test_every_text_of_a_registered_env_tokenizes_without_fallback(env_id: str) -> None:
    tokenizer = word_tokenizer(env_vocabulary((env_id,)))
    unk = tokenizer.unk_token_id
    for prompt, candidates in random_texts(env_id, 400, seed=11):
        ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
        assert unk not in ids, tokenizer.convert_ids_to_tokens(ids)
        assert tokenizer.decode(ids) == prompt  # the exact text comes back
        for action in candidates:
            cand = tokenizer(candidate_text(action), add_special_tokens=False)["input_ids"]
            assert unk not in cand and 1 <= len(cand) <= 4, (action, cand)


def test_a_playground_state_is_a_few_dozen_tokens_and_a_candidate_one_to_three() -> None:
    tokenizer = word_tokenizer(env_vocabulary(("autotelic/PlaygroundText-v0",)))
    texts = random_texts("autotelic/PlaygroundText-v0", 200, seed=5)
    unlisted = [p.replace(p[p.index("Possible actions:") : p.index("Action:")], "")
                if "Possible actions:" in p else p for p, _ in texts]  # fmt: skip
    prompt_lengths = [len(tokenizer(p)["input_ids"]) for p in unlisted]
    cand_lengths = [len(tokenizer(candidate_text(a))["input_ids"]) for _, c in texts for a in c]
    assert 18 <= np.median(prompt_lengths) <= 32
    assert max(cand_lengths) <= 3


def test_separately_tokenized_prompt_and_candidate_equal_joint_tokenization() -> None:
    tokenizer = word_tokenizer(env_vocabulary())
    for prompt, candidates in random_texts("autotelic/BabyAIText-v0", 50, seed=2):
        alone = tokenizer(prompt)["input_ids"]
        for action in candidates:
            cand = tokenizer(candidate_text(action), add_special_tokens=False)["input_ids"]
            assert tokenizer(prompt + candidate_text(action))["input_ids"] == alone + cand


def test_an_unknown_word_maps_to_the_fallback_token_without_error() -> None:
    tokenizer = word_tokenizer(env_vocabulary(("autotelic/PlaygroundText-v0",)))
    ids = tokenizer("Goal: Grasp zebra")["input_ids"]
    assert ids.count(tokenizer.unk_token_id) == 1
    assert tokenizer.decode(ids) == "Goal: Grasp<unk>"  # its leading space went with it


def test_a_plug_in_envs_vocabulary_is_picked_up_from_its_registration() -> None:
    load_plugins(["tests.toy_plugin"])
    toy = "toy/NumberLine-v0"
    text = build_prompt("reach 7", "You are at cell 3.\nSteps left: 5")
    _, own = tiny_model("tiny-words", vocabulary=(toy,))
    _, other = tiny_model("tiny-words", vocabulary=("autotelic/PlaygroundText-v0",))
    assert own.unk_token_id not in own(text)["input_ids"]
    assert other.unk_token_id in other(text)["input_ids"]  # "reach", "cell" are not Playground's
    _, everything = tiny_model("tiny-words")  # no ids: every registered env's words
    assert everything.unk_token_id not in everything(text)["input_ids"]


def test_the_same_vocabulary_always_gives_the_same_ids() -> None:
    a = word_tokenizer(env_vocabulary(("autotelic/BabyAIText-v0",)))
    b = word_tokenizer(env_vocabulary(("autotelic/BabyAIText-v0",)))
    assert a.get_vocab() == b.get_vocab()


def test_cached_prompt_ids_equal_fresh_ones_across_a_run_with_injected_and_relabeled_goals(
    tmp_path: Path,
) -> None:
    config = deep_merge(TINY_SERVICE, {
        "model": {"path": "tiny-words"},
        "run": {"dir": str(tmp_path / "run"), "mode": "serial", "max_env_steps": 400},
        "replay": {"her_ratio": 0.8},
    })  # fmt: skip
    agent = Agent(load_settings(None, **config))
    assert agent.settings.model.vocabulary == ("autotelic/PlaygroundText-v0",)
    assert agent.inject("Grow carrot", episodes=3).goal == "Grow carrot"
    agent.run_serial()
    assert agent.learner.num_updates > 0
    learner = agent.learner
    assert isinstance(learner, LLMLearner)
    encoders = [learner.scorer.encoder, learner.policy.scorer.encoder]
    fresh = StateEncoder(learner.model.tokenizer, seq2seq=False)
    fresh.cache_prompts = False
    cached = {t: ids for e in encoders for t, ids in e._prompts.items()}
    goals = {t.split("\n", 1)[0] for t in cached}
    assert "Goal: Grow carrot" in goals and len(goals) > 5  # injected, pursued and relabeled
    for text, ids in cached.items():
        assert ids == fresh.prompt(text)
    agent.close()
