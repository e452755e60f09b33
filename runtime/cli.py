"""The ``autotelic`` command line."""

from __future__ import annotations

import typer

from autotelic import __version__

app = typer.Typer(
    name="autotelic",
    help="An LLM agent that sets its own goals in text environments and learns online.",
    no_args_is_help=True,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"autotelic {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        callback=_print_version,
        is_eager=True,
    ),
) -> None:
    """An LLM agent that sets its own goals in text environments and learns online."""


@app.command()
def envs() -> None:
    """List the registered text environments."""
    from autotelic.envs import registered_env_ids

    for env_id in registered_env_ids():
        typer.echo(env_id)
