"""``python -m autotelic`` is the same as the ``autotelic`` command."""

from autotelic.runtime.commands.cli import app

app()
