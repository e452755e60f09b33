"""Errors the curriculum raises; each carries a reason a person or a client can read."""

from __future__ import annotations

from autotelic.core import InvalidGoalError

__all__ = ["InjectionRejected", "InvalidGoalError", "InvalidOutcomeError", "NoGoalsError"]


class InjectionRejected(ValueError):  # noqa: N818 (the name the runtime codes against)
    """An injection that was not queued: bad goal text, count, priority or expiry."""

    def __init__(self, reason: str, goal: object = None) -> None:
        super().__init__(f"injection rejected: {reason}")
        self.goal = goal
        self.reason = reason


class NoGoalsError(RuntimeError):
    """Goals were asked for while the registry is empty and no injection waits."""


class InvalidOutcomeError(ValueError):
    """An episode outcome that cannot be right (unknown goal text, negative steps...)."""
