"""``python -m autotelic`` is the same as the ``autotelic`` command."""

from autotelic.runtime.cli import app

app()
