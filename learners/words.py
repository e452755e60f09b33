"""A word-level tokenizer built from the vocabularies environments declare.

Each piece of text (a word, a digit, one punctuation mark, a line break, each
with the one space before it) is one token, and each declared fixed fragment
(``"\\nYou are standing on:"``) is one token, matched first. A Playground-Text
prompt is then about 30 tokens and a candidate action one or two, against about
67 and 3-5 under the byte-level BPE of the older tiny models: a packed update
computes fewer positions, and the model need not learn to spell.

Pieces carry their leading space (``" carrot"``), so tokenising a prompt that ends
with ``"Action:"`` and a candidate ``" Go to water"`` separately gives the ids of
tokenising them together (the one-pass scorer relies on it), and decoding
concatenates tokens back into the exact text. A piece outside the vocabulary
becomes ``<unk>`` rather than an error: a goal injected with a new word still
runs, it just reads as unknown.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from autotelic.core import TextVocabulary
from autotelic.learners.prompt import ACTIONS_PREFIX, PROMPT_SUFFIX

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"
SPECIAL_TOKENS = (PAD, EOS, UNK)

PIECE_PATTERN = r"\n| ?[A-Za-z]+| ?[0-9]| ?[^\sA-Za-z0-9]| "
"""One token's worth of text: a line break, a word, a digit, a punctuation mark (the
last three with their leading space), or a lone space."""

PROMPT_VOCABULARY = TextVocabulary(
    texts=("Goal: x, y.", "Steps left: 0 1 2 3 4 5 6 7 8 9"),
    phrases=("Goal:", f"\n{PROMPT_SUFFIX}", f"\n{ACTIONS_PREFIX.rstrip()}", "\nSteps left:"),
)
"""The prompt's own framing (:mod:`autotelic.learners.prompt`) and the ``Steps left``
line of the observed time-limit mode."""


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Split(Regex(PIECE_PATTERN), behavior="isolated")


def pieces(text: str) -> list[str]:
    """``text`` split the way the tokenizer splits it (phrases aside)."""
    return [piece for piece, _ in _pre_tokenizer().pre_tokenize_str(text)]


def word_list(vocabulary: TextVocabulary) -> list[str]:
    """The tokens of ``vocabulary``: special tokens, then pieces in first-seen order."""
    seen: dict[str, None] = dict.fromkeys(SPECIAL_TOKENS)
    for text in vocabulary.texts:
        for piece in pieces(text):
            seen.setdefault(piece)
            # A word is met after a space, at a line start and after a phrase alike.
            seen.setdefault(piece.lstrip(" "))
            seen.setdefault(" " + piece.lstrip(" "))
    seen.pop("", None)
    seen.pop(" ", None)
    seen.pop("\n", None)
    return [*seen, " ", "\n"]


def word_tokenizer(vocabulary: TextVocabulary) -> PreTrainedTokenizerFast:
    """A fast tokenizer whose tokens are ``vocabulary``'s pieces and phrases.

    The ids are a pure function of ``vocabulary`` (its order included), so the
    same environment always gives the same ids and a checkpoint keeps fitting.
    """
    full = PROMPT_VOCABULARY | vocabulary
    words = word_list(full)
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token=UNK))
    tok.pre_tokenizer = _pre_tokenizer()
    tok.decoder = decoders.Fuse()
    tok.add_tokens([AddedToken(p, normalized=False) for p in _phrases(full.phrases, words)])
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok,
        pad_token=PAD,
        eos_token=EOS,
        unk_token=UNK,
        clean_up_tokenization_spaces=False,
    )


def _phrases(phrases: Iterable[str], words: list[str]) -> list[str]:
    known = set(words)
    return [p for p in phrases if p and p not in known]
