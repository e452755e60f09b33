"""The words an environment speaks, for tokenizers built to fit it.

A tiny language model trained from scratch reads an environment's text faster and
learns it sooner when every word it meets is one token and every fixed template
fragment (``"You are standing on:"``) is one token too: a Playground-Text prompt is
then about 30 positions instead of about 70 under a general-purpose byte-level BPE,
and compute tracks positions. An environment says which words and fragments it uses
by registering a :class:`TextVocabulary` with :func:`~autotelic.core.register_env`;
the word-level tokenizer (:mod:`autotelic.learners.words`) is built from it, so a
plug-in environment gets the same speed without touching the learners.

Only the text matters, not how it was produced: ``texts`` may be templates filled
with every name, or sample observations; their pieces (words, digits, punctuation,
each with its leading space) become the tokens.

A subword tokenizer trained on text (the byte-level BPE of the older tiny models,
:mod:`autotelic.learners.tiny_bpe`) needs whole lines in the shape of the env's prompts
instead: ``corpus``. The learners read both through the registry, so no learner module
imports an environment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class TextVocabulary:
    """The text an environment's observations, actions and goals are made of."""

    texts: tuple[str, ...] = ()
    """Sample texts: every piece of them (a word, a digit, a punctuation mark, with the
    space before it) becomes a token."""
    phrases: tuple[str, ...] = ()
    """Fixed fragments that always appear whole (``"\\nYou are standing on:"``): each one
    becomes a single token, matched before the text is split into pieces."""
    corpus: tuple[str, ...] = ()
    """Whole lines in the shape of the env's prompts and actions, in a fixed order: what a
    subword tokenizer is trained on (its merges follow this order, so it must not change
    for a tokenizer that run directories were made with)."""

    def __or__(self, other: TextVocabulary) -> TextVocabulary:
        """Both vocabularies, in order, without repeats."""
        return TextVocabulary(
            texts=_unique((*self.texts, *other.texts)),
            phrases=_unique((*self.phrases, *other.phrases)),
            corpus=_unique((*self.corpus, *other.corpus)),
        )

    @classmethod
    def union(cls, parts: Iterable[TextVocabulary]) -> TextVocabulary:
        merged = cls()
        for part in parts:
            merged = merged | part
        return merged


def _unique(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
