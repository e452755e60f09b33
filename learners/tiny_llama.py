"""The one architecture most tiny models share."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from autotelic.learners.model_config import TINY_NAMES, WORDS, TinyName

__all__ = ["HIDDEN", "TINY_NAMES", "WORDS", "TinyName", "tiny_llama"]

HIDDEN = 64
"""Width of every tiny model (two layers, four heads)."""


def tiny_llama(
    tokenizer: PreTrainedTokenizerFast, seed: int, tied: bool = False
) -> LlamaForCausalLM:
    """A two-layer Llama of width :data:`HIDDEN` over ``tokenizer``'s vocabulary; ``tied``:
    the LM head shares the input embeddings."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(
            LlamaConfig(
                vocab_size=len(tokenizer),
                hidden_size=HIDDEN,
                intermediate_size=2 * HIDDEN,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                max_position_embeddings=512,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                bos_token_id=None,
                tie_word_embeddings=tied,
            )
        )
