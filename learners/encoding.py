"""Token ids for prompts and candidate actions, shared by every scorer.

Prompts are tokenised with the tokenizer's special tokens (a BOS where the model
uses one, the ``</s>`` a T5 encoder expects) except a trailing EOS for
decoder-only models, which would end the text before the action. Candidates are
tokenised alone with their leading space (see :mod:`autotelic.learners.prompt`),
which for decoder-only models equals tokenising prompt and action together.
Prompt and candidate ids are cached by their text: a Playground-Text run uses a
few hundred distinct actions over millions of steps, and replay reads the same
prompts again and again (a state is replayed many times, under its own goal and
relabeled ones). The cache returns the very ids a fresh tokenisation gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from autotelic.learners.prompt import candidate_text

_CACHE_LIMIT = 65536
"""Entries each cache keeps before it starts afresh (bounded memory, no LRU upkeep)."""


class ScoringInputError(ValueError):
    """Prompts or candidate lists that cannot be scored."""


@dataclass(frozen=True)
class EncodedStates:
    """A batch of states as token ids: one prompt and its candidate actions each."""

    prompt_ids: list[list[int]]
    candidate_ids: list[list[list[int]]]

    @property
    def counts(self) -> list[int]:
        return [len(c) for c in self.candidate_ids]

    def select(self, index: Sequence[int]) -> EncodedStates:
        """The states at ``index``, in that order."""
        return EncodedStates(
            prompt_ids=[self.prompt_ids[i] for i in index],
            candidate_ids=[self.candidate_ids[i] for i in index],
        )


class StateEncoder:
    """Turns (prompt, candidates) batches into token ids for one tokenizer."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, *, seq2seq: bool) -> None:
        self.tokenizer = tokenizer
        self.seq2seq = seq2seq
        self._candidates: dict[str, list[int]] = {}
        self._prompts: dict[str, list[int]] = {}
        self.cache_prompts = True
        """Off: every prompt is tokenised afresh (benchmarks measure what the cache saves)."""
        eos = tokenizer.eos_token_id
        probe = self._ids("x", special=True)
        plain = self._ids("x", special=False)
        self._strip_eos = (
            not seq2seq and eos is not None and probe[-1:] == [eos] and plain[-1:] != [eos]
        )

    def _ids(self, text: str, *, special: bool) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def prompt(self, text: str) -> list[int]:
        cached = self._prompts.get(text) if self.cache_prompts else None
        if cached is not None:
            return cached
        ids = self._prompt_ids(text, self._ids(text, special=True))
        if self.cache_prompts:
            self._remember(text, ids)
        return ids

    def _prompt_ids(self, text: str, tokenised: Sequence[int]) -> list[int]:
        """A prompt's ids from the tokenizer's: without the EOS a decoder must not see."""
        ids = list(tokenised[:-1] if self._strip_eos else tokenised)
        if not ids:
            raise ScoringInputError(f"prompt {text!r} tokenises to nothing")
        return ids

    def _remember(self, text: str, ids: list[int]) -> None:
        if len(self._prompts) >= _CACHE_LIMIT:
            self._prompts.clear()
        self._prompts[text] = ids

    def _tokenise_missing(self, prompts: Sequence[str]) -> None:
        """Tokenise the prompts not cached in one call of the tokenizer (a call costs more
        than the few words of a prompt); :meth:`prompt` then finds them cached."""
        if not self.cache_prompts:
            return
        missing = list(dict.fromkeys(p for p in prompts if p not in self._prompts))
        if len(missing) < 2:
            return
        for text, tokenised in zip(missing, self.tokenizer(missing)["input_ids"], strict=True):
            self._remember(text, self._prompt_ids(text, tokenised))

    def candidate(self, action: str) -> list[int]:
        cached = self._candidates.get(action)
        if cached is not None:
            return cached
        ids = self._ids(candidate_text(action), special=False)
        if not ids:
            raise ScoringInputError(f"candidate action {action!r} tokenises to nothing")
        if len(self._candidates) >= _CACHE_LIMIT:
            self._candidates.clear()
        self._candidates[action] = ids
        return ids

    def encode(self, prompts: Sequence[str], candidates: Sequence[Sequence[str]]) -> EncodedStates:
        check_states(prompts, candidates)
        self._tokenise_missing(prompts)
        return EncodedStates(
            prompt_ids=[self.prompt(p) for p in prompts],
            candidate_ids=[[self.candidate(a) for a in cands] for cands in candidates],
        )


def padding_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id padding positions hold: the pad token, else EOS, else 0."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(pad) if pad is not None else 0


def check_states(prompts: Sequence[str], candidates: Sequence[Sequence[str]]) -> None:
    """Raise a clear error for malformed batches before any tensor is built."""
    if isinstance(prompts, str):
        raise ScoringInputError("prompts must be a sequence of strings, not one string")
    if len(prompts) != len(candidates):
        raise ScoringInputError(f"{len(prompts)} prompts but {len(candidates)} candidate lists")
    for i, (prompt, cands) in enumerate(zip(prompts, candidates, strict=True)):
        if not isinstance(prompt, str):
            raise ScoringInputError(f"prompt {i} is {type(prompt).__name__}, not str")
        if isinstance(cands, str):
            raise ScoringInputError(f"candidates of state {i} must be a list of strings")
        for a in cands:
            if not isinstance(a, str):
                raise ScoringInputError(f"state {i}: candidate {a!r} is not a string")
