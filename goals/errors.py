"""Errors the curriculum raises; each carries a reason a person or a client can read."""

from __future__ import annotations


class InvalidGoalError(ValueError):
    """A goal text the environment's grammar does not accept.

    ``reason`` is the grammar's own explanation, so an MQTT rejection or a CLI
    error can pass it on unchanged.
    """

    def __init__(self, goal: object, reason: str) -> None:
        super().__init__(f"invalid goal {goal!r}: {reason}")
        self.goal = goal
        self.reason = reason


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
