"""The base of every error a user can fix, and the one checkpoint error.

An error whose message tells a user what to change (a setting, a file, a package to
install) derives from :class:`UserError`: the command line prints its message as one line
and exits 2, where any other exception is a bug whose traceback is wanted. Each layer keeps
its own error classes and adds this base to them, so the command line needs to know no
class by name.
"""

from __future__ import annotations

__all__ = ["CheckpointError", "UserError"]


class UserError(Exception):
    """An error a user caused and can fix; its message says what to change."""


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be used: a directory that is incomplete or corrupt (storage
    verifies the manifest), or a saved state that does not fit this learner (other frozen
    base weights, another algorithm, heads of another shape). One class for both, so that
    whoever restores a run catches one thing."""
