"""Process liveness, for cleaning up what crashed processes left behind."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (one we may not signal counts as alive).

    Temporary folders carry their writer's pid; a folder whose writer is gone is
    an interrupted write and may be removed, one whose writer runs must be kept.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
