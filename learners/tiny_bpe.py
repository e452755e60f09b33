"""The byte-level-BPE tiny models (``tiny-causal``, ``tiny-gpt2``, ``tiny-seq2seq``).

``tiny-words`` (:mod:`autotelic.learners.tiny`) is what experiments use now; these
stay for the tests that exercise other architectures and for run directories made
with them.

They build in milliseconds, need no file and no network, and are deterministic
for a given seed (so a run using one can be checkpointed and resumed). The
tokenizer is a byte-level BPE trained on the corpus the registered environments
declare (:attr:`autotelic.core.TextVocabulary.corpus`; Playground-Text's lines, read
through the registry, so this module imports no environment): any string encodes, and
the words the environment uses are single tokens or short merges, so candidates of
different token lengths occur naturally.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

from autotelic.core import RegistryError, registered_envs
from autotelic.learners.tiny_llama import HIDDEN, TinyName, tiny_llama

__all__ = ["bpe_tiny_model", "tiny_tokenizer"]

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"
_VOCAB_SIZE = 384
_HIDDEN = HIDDEN


def _corpus() -> list[str]:
    """The lines every registered environment declares for subword tokenizers, by env id
    (Playground-Text is the one that declares any: the tokenizer stays as it was)."""
    lines: list[str] = []
    for spec in registered_envs():
        if spec.vocabulary is not None:
            lines.extend(spec.vocabulary().corpus)
    if not lines:
        raise RegistryError("no registered environment declares a corpus for the BPE tokenizer")
    return lines


@lru_cache(maxsize=2)
def _trained(seq2seq: bool) -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_VOCAB_SIZE,
        special_tokens=[PAD, EOS, UNK],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    if seq2seq:
        # Encoder inputs end with </s>, as T5 tokenizers do.
        eos_id = tok.token_to_id(EOS)
        tok.post_processor = processors.TemplateProcessing(
            single=f"$A {EOS}", special_tokens=[(EOS, eos_id)]
        )
    return tok


def tiny_tokenizer(seq2seq: bool = False) -> PreTrainedTokenizerFast:
    """A fresh tokenizer object (callers may change its padding side freely)."""
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=Tokenizer.from_str(_trained(seq2seq).to_str()),
        pad_token=PAD,
        eos_token=EOS,
        unk_token=UNK,
    )


def bpe_tiny_model(
    name: TinyName, seed: int = 0
) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """A tiny random model over the BPE and its tokenizer; same ``seed``, same weights."""
    tokenizer = tiny_tokenizer(seq2seq=name == "tiny-seq2seq")
    if name == "tiny-causal":
        return tiny_llama(tokenizer, seed), tokenizer
    vocab = len(tokenizer)
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model: PreTrainedModel
        if name == "tiny-gpt2":
            model = GPT2LMHeadModel(
                GPT2Config(
                    vocab_size=vocab,
                    n_embd=_HIDDEN,
                    n_layer=2,
                    n_head=4,
                    n_positions=512,
                    bos_token_id=eos,
                    eos_token_id=eos,
                    pad_token_id=pad,
                )
            )
        elif name == "tiny-seq2seq":
            t5 = T5Config(
                vocab_size=vocab,
                d_model=_HIDDEN,
                d_ff=2 * _HIDDEN,
                d_kv=16,
                num_layers=2,
                num_heads=4,
                pad_token_id=pad,
                eos_token_id=eos,
            )
            t5.decoder_start_token_id = pad
            model = T5ForConditionalGeneration(t5)
        else:
            raise ValueError(f"{name!r} is not a BPE tiny model")
    return model, tokenizer
