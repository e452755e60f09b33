"""Tiny random models for tests: the ones the product ships (:mod:`autotelic.learners.tiny`).

Kept as a module of its own so tests and benchmarks import their doubles from
``autotelic.testing`` as they always have.
"""

from autotelic.learners.tiny import TINY_NAMES, WORDS, TinyName, env_vocabulary, tiny_model
from autotelic.learners.tiny_bpe import tiny_tokenizer

__all__ = ["TINY_NAMES", "WORDS", "TinyName", "env_vocabulary", "tiny_model", "tiny_tokenizer"]
