"""One-pass scoring agrees with one sequence per (prompt, candidate), on real states."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autotelic.learners.encoding import ScoringInputError, StateEncoder
from autotelic.learners.layout import CandidateLayout
from autotelic.learners.scorer import PaddingSide, Scorer, lm_log_probs, pack_states, run_packed
from autotelic.testing.naive_scorer import naive_score
from autotelic.testing.tiny_models import tiny_tokenizer
from tests.learners_fixtures import one_torch_thread, perturb_adapters, playground_states, tiny

__all__ = ["one_torch_thread"]

TOL = 1e-4


def _mixed_states() -> tuple[list[str], list[list[str]]]:
    """Real states plus hand-made ones: counts 1..7, a nonsense candidate, an empty list."""
    prompts, candidates = playground_states(5, seed=3)
    prompts.append(
        "Goal: Grow lion\nYou see: water\nYou are standing on: nothing\nInventory (0/2): empty\nAction:"
    )
    candidates.append(
        [
            "Go to water",
            "Grasp",
            "qzx vlorp blick",
            "Release all",
            "Go to baby lion",
            "Go to lion seed",
            "Release water",
        ]
    )
    prompts.append("Goal: Grasp cow\nAction:")
    candidates.append(["Grasp"])
    prompts.append("Goal: Grasp desk\nYou see: desk\nAction:")
    candidates.append([])
    return prompts, candidates


@pytest.mark.parametrize(
    ("name", "attn"),
    [
        ("tiny-causal", "sdpa"),
        ("tiny-causal", "eager"),
        ("tiny-gpt2", "eager"),
        ("tiny-seq2seq", None),
    ],
)
@pytest.mark.parametrize("side", ["right", "left"])
def test_one_pass_matches_one_candidate_at_a_time(name, attn, side):
    model = tiny(name, attn_implementation=attn)
    perturb_adapters(model)
    prompts, candidates = _mixed_states()
    counts = [len(c) for c in candidates]
    assert len(set(counts)) >= 4
    lengths = {
        len(model.tokenizer(" " + a, add_special_tokens=False)["input_ids"])
        for c in candidates
        for a in c
    }
    assert len(lengths) >= 3, "candidates must differ in token length"

    with torch.no_grad():
        fast = Scorer(model, padding_side=side).score(prompts, candidates)
        # The reference: the model's own forward, full logits, one unpadded pair at a time.
        ref = naive_score(model, prompts, candidates, batch_size=1, full_logits=True)
        batched = naive_score(model, prompts, candidates, padding_side=side)

    assert fast.counts == tuple(counts)
    for got in (fast, batched):
        assert torch.isfinite(got.logprobs).all()
        assert (got.logprobs - ref.logprobs).abs().max() < TOL
        assert (got.log_pi - ref.log_pi).abs().max() < TOL
        assert (got.features - ref.features).abs().max() < TOL
        assert (got.state_features - ref.state_features).abs().max() < TOL
    # The packed pass computes far fewer positions than one sequence per pair.
    assert fast.num_tokens < ref.num_tokens
    # Scores are real log-probabilities: negative, and log pi normalises per state.
    assert (fast.logprobs < 0).all()
    for log_pi in fast.split(fast.log_pi):
        if len(log_pi):
            assert abs(float(log_pi.exp().sum()) - 1.0) < 1e-5


@pytest.mark.parametrize("name", ["tiny-causal", "tiny-gpt2"])
def test_position_ids_restart_per_candidate_matters(name):
    """The same packed batch with positions counting straight through the candidates
    scores differently: the agreement above really rests on the restart."""
    model = tiny(name)
    prompts, candidates = playground_states(3, seed=1)
    scorer = Scorer(model)
    encoded = scorer.encode(prompts, candidates)
    packed = pack_states(encoded, "right", scorer.pad_id)
    with torch.no_grad():
        restarted = run_packed(model.hf, packed)
        straight = np.where(packed.segments >= 0, np.arange(packed.ids.shape[1])[None, :], 0)
        running = run_packed(model.hf, dataclasses.replace(packed, positions=straight))
    rows = torch.tensor(packed.rows.feature_rows)
    at = (rows[:, 0], rows[:, 1])
    first_candidates = torch.tensor([0, *np.cumsum(encoded.counts)[:-1].tolist()])
    later = torch.ones(len(rows), dtype=torch.bool)
    later[first_candidates] = False
    gap = (restarted[at] - running[at]).abs().amax(-1)
    # The first candidate of each state sits right after its prompt either way.
    assert gap[~later].max() < 1e-5
    assert gap[later].min() > 1e-3


def test_scores_carry_gradients_to_adapters():
    model = tiny("tiny-causal")
    perturb_adapters(model)
    prompts, candidates = playground_states(3, seed=2)
    scores = Scorer(model).score(prompts, candidates)
    (scores.log_pi.sum() + scores.features.sum()).backward()  # type: ignore[no-untyped-call]
    grads = [p.grad for _, p in model.trainable_parameters() if p.grad is not None]
    assert len(grads) == len(model.trainable_parameters())
    assert all(torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)


def test_lm_head_shortcut_equals_model_logits_for_t5():
    """T5 rescales tied decoder outputs before its LM head; the shortcut must too."""
    model = tiny("tiny-seq2seq")
    hf = model.hf
    enc = torch.tensor([[5, 6, 7, 1]])
    dec = torch.tensor([[0, 9, 10]])
    with torch.no_grad():
        out = hf(input_ids=enc, decoder_input_ids=dec, output_hidden_states=True)
        mine = lm_log_probs(hf, out.decoder_hidden_states[-1][0])
    assert hf.config.scale_decoder_outputs
    assert (mine - torch.log_softmax(out.logits[0], -1)).abs().max() < 1e-5


def test_bfloat16_scoring_is_finite_and_close():
    model32 = tiny("tiny-causal")
    model16 = tiny("tiny-causal", dtype="bfloat16")
    prompts, candidates = playground_states(3, seed=4)
    with torch.no_grad():
        a = Scorer(model32, padding_side="left").score(prompts, candidates)
        b = Scorer(model16, padding_side="left").score(prompts, candidates)
    assert b.logprobs.dtype == torch.float32 and b.features.dtype == torch.float32
    assert torch.isfinite(b.logprobs).all() and torch.isfinite(b.features).all()
    assert (a.logprobs - b.logprobs).abs().max() < 0.5


def test_a_batch_scored_twice_is_packed_once_and_scores_the_same():
    """SAC's targets score one encoded batch with the online model, then its twin: the
    second pass reuses the packing and its mask, and gets exactly what a fresh one does."""
    model = tiny("tiny-words")
    prompts, candidates = playground_states(4, seed=6)
    reusing, fresh = Scorer(model), Scorer(model)
    fresh.reuse_packing = False
    encoded = reusing.encode(prompts, candidates)
    with torch.no_grad():
        first = reusing.score_encoded(encoded)
        packed = reusing._pack(encoded)
        again = reusing.score_encoded(encoded)
        assert reusing._last_packed is not None and reusing._last_packed[1] is packed
        other = reusing.score_encoded(reusing.encode(prompts[:2], candidates[:2]))
        unshared = fresh.score_encoded(encoded)
    assert reusing._pack(encoded) is not packed  # another batch came in between
    assert fresh._last_packed is None
    for scores in (again, unshared):
        assert torch.equal(scores.logprobs, first.logprobs)
        assert torch.equal(scores.features, first.features)
    assert other.layout.counts == tuple(len(c) for c in candidates[:2])


def test_prompt_and_candidate_token_boundary_matches_joint_tokenisation():
    tok = tiny_tokenizer()
    encoder = StateEncoder(tok, seq2seq=False)
    prompts, candidates = playground_states(6, seed=5)
    for prompt, cands in zip(prompts, candidates, strict=True):
        for action in cands:
            joint = tok(prompt + " " + action, add_special_tokens=False)["input_ids"]
            assert encoder.prompt(prompt) + encoder.candidate(action) == joint


def test_bad_inputs_get_clear_errors():
    scorer = Scorer(tiny("tiny-causal"))
    with pytest.raises(ScoringInputError, match="2 prompts but 1 candidate lists"):
        scorer.score(["a", "b"], [["x"]])
    with pytest.raises(ScoringInputError, match="not one string"):
        scorer.score("Goal: x", [["a"]])
    with pytest.raises(ScoringInputError, match="list of strings"):
        scorer.score(["Goal: x"], ["Grasp"])
    with pytest.raises(ScoringInputError, match="tokenises to nothing"):
        scorer.score([""], [["Grasp"]])
    with pytest.raises(ScoringInputError, match="no states"):
        scorer.score([], [])
    with pytest.raises(ValueError, match="padding_side"):
        Scorer(tiny("tiny-causal"), padding_side="middle")  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=6),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_layout_softmax_and_padding_properties(counts, seed):
    layout = CandidateLayout.of(counts)
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(layout.num_candidates, generator=gen) * 10
    log_pi = layout.log_softmax(scores)
    assert torch.isfinite(log_pi).all()
    assert torch.equal(layout.unpad(layout.pad(scores, -7.0)), scores)
    sums = layout.sum(log_pi.exp())
    for count, total in zip(counts, sums.tolist(), strict=True):
        assert total == pytest.approx(1.0 if count else 0.0, abs=1e-5)
    start = 0
    for count in counts:
        part = scores[start : start + count]
        if count:
            assert torch.allclose(
                log_pi[start : start + count], torch.log_softmax(part, 0), atol=1e-6
            )
        start += count
    entropy = layout.entropy(log_pi)
    assert (entropy >= -1e-6).all()
    for count, h in zip(counts, entropy.tolist(), strict=True):
        assert h <= np.log(max(count, 1)) + 1e-5


def test_mean_candidate_scores_divide_each_summed_log_prob_by_its_token_count():
    """A random tiny LM puts nearly all mass on the candidate with the fewest tokens when
    candidates are scored by summed log-probs; per-token means do not favour short ones."""
    prompts = ["Goal: go to the red ball\nYou see a wall 3 steps forward.\nAction:"] * 2
    candidates = [["turn left", "turn right", "go forward", "pick up", "drop", "toggle"]] * 2
    with torch.no_grad():
        summed = Scorer(tiny(candidate_score="sum")).score(prompts, candidates)
        mean = Scorer(tiny(candidate_score="mean")).score(prompts, candidates)
    assert torch.allclose(summed.logprobs, mean.logprobs)  # same model, same numbers
    assert mean.token_counts is not None and bool((mean.token_counts >= 1).all())
    expected = summed.layout.log_softmax(summed.logprobs / mean.token_counts)
    assert torch.allclose(mean.log_pi, expected)
    assert float(summed.entropy().mean()) < 0.5
    assert float(mean.entropy().mean()) > 1.5  # log 6 = 1.79 is uniform


@pytest.mark.parametrize("name", ["tiny-words", "tiny-causal"])
def test_the_default_candidate_score_starts_a_random_model_near_uniform(name: str) -> None:
    """``candidate_score: auto`` scores a tiny random model by the per-token mean, so its
    first policy explores; under the sum it all but always picks the shortest action."""
    prompts = [
        "Goal: Grasp carrot\nYou see: carrot seed, water, door\nYou are standing on: "
        "nothing\nInventory (0/2): empty\nAction:"
    ]
    candidates = [["Go to carrot seed", "Go to water", "Go to door"]]
    with torch.no_grad():
        auto = Scorer(tiny(name)).score(prompts, candidates)
    assert auto.mean
    assert float(auto.entropy().mean()) > 0.8 * np.log(3)


def test_the_default_candidate_score_keeps_a_pretrained_models_summed_prior() -> None:
    from autotelic.learners.models import ModelConfig, resolve_candidate_score

    assert resolve_candidate_score(ModelConfig()) == "sum"  # the packaged SmolLM2
    assert resolve_candidate_score(ModelConfig(path="tiny-words")) == "mean"
    assert resolve_candidate_score(ModelConfig(path="tiny-words", candidate_score="sum")) == "sum"


@pytest.mark.parametrize("side", ["right", "left"])
def test_vectorised_packing_equals_the_per_token_reference(side: PaddingSide) -> None:
    from autotelic.learners.scorer import pack_states
    from autotelic.testing.naive_scorer import pack_states_per_row

    model = tiny("tiny-words")
    prompts, candidates = playground_states(12, seed=3)
    candidates[4] = []  # a state with no candidate packs as its prompt alone
    encoded = Scorer(model).encode(prompts, candidates)
    got = pack_states(encoded, side, 0)
    ref = pack_states_per_row(encoded, side, 0)
    for name in ("ids", "positions", "segments"):
        assert np.array_equal(getattr(got, name), getattr(ref, name)), name
    assert got.lengths == ref.lengths
    assert [tuple(r) for r in got.rows.state_rows] == ref.rows.state_rows
    assert [tuple(r) for r in got.rows.feature_rows] == ref.rows.feature_rows
    assert got.rows.token_target == ref.rows.token_target
    assert got.rows.token_cand == ref.rows.token_cand
    # Same LM-head row for every candidate token (the rows may be listed in another order).
    got_rows = [tuple(got.rows.lm_rows[i]) for i in got.rows.token_row]
    assert got_rows == [ref.rows.lm_rows[i] for i in ref.rows.token_row]
