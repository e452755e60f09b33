"""Tiny randomly initialised models: for experiments on a CPU, tests and dry runs.

``tiny-words`` is the one experiments use: a two-layer Llama-shaped model over a
word-level tokenizer built from the vocabularies the environments declare
(:mod:`autotelic.learners.words`), so a Playground-Text state is about 22 tokens
and an update computes about a third of the positions the byte-level BPE of
``tiny-causal`` needs (docs/performance.md). ``tiny-causal``, ``tiny-gpt2`` and
``tiny-seq2seq`` (:mod:`autotelic.learners.tiny_bpe`) stay loadable, so run
directories made with them keep their model.

Every tiny model builds in milliseconds from its name, seed and (for
``tiny-words``) vocabulary: no file, no network, the same weights each time, so
a run using one checkpoints and resumes like any other.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedModel, PreTrainedTokenizerFast

from autotelic.core import TextVocabulary, env_spec, registered_envs
from autotelic.learners.tiny_llama import TINY_NAMES, WORDS, TinyName, tiny_llama

__all__ = ["TINY_NAMES", "WORDS", "TinyName", "env_vocabulary", "tiny_model"]


def env_vocabulary(env_ids: Sequence[str] = ()) -> TextVocabulary:
    """The vocabulary of the envs ``env_ids`` names, in that order (none: every
    registered env that declares one, by id)."""
    specs = [env_spec(i) for i in env_ids] if env_ids else registered_envs()
    return TextVocabulary.union(s.vocabulary() for s in specs if s.vocabulary is not None)


def tiny_model(
    name: TinyName, seed: int = 0, vocabulary: Sequence[str] = (), tied: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """The tiny model ``name`` and its tokenizer; ``vocabulary``: env ids for ``tiny-words``;
    ``tied``: its LM head shares the input embeddings (``tiny-words`` only)."""
    if name == WORDS:
        from autotelic.learners.words import word_tokenizer

        tokenizer = word_tokenizer(env_vocabulary(vocabulary))
        return tiny_llama(tokenizer, seed, tied), tokenizer
    from autotelic.learners.tiny_bpe import bpe_tiny_model  # the older models' BPE

    return bpe_tiny_model(name, seed)
