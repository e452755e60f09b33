"""Text environments. Each subpackage registers itself on import, with autotelic's
registry (:func:`autotelic.core.register_env`) and with gymnasium, under an
``autotelic/`` id; importing this package registers the built-in ones."""

from __future__ import annotations

import autotelic.envs.babyai  # registers autotelic/BabyAIText-v0
import autotelic.envs.playground  # noqa: F401 (registers autotelic/PlaygroundText-v0)
