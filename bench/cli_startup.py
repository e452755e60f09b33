"""How long the thin commands take to start, against ``autotelic --version``.

Each command runs in a fresh interpreter, the commands interleaved round by round so
that the machine's load falls on all of them alike; the table gives the median wall
time of each and its ratio to the median of ``--version`` (the interpreter, typer and
the package's import). A thin command that loaded torch would show as several times
``--version``; a bare ``import torch`` is there for scale.

    .venv/bin/python bench/cli_startup.py --rounds 7
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def commands(run: Path) -> dict[str, list[str]]:
    """What is timed: the thin commands, then the import of torch alone."""
    cli = [sys.executable, "-m", "autotelic"]
    thin = {
        "--version": "--version",
        "config show": "config show",
        "envs": "envs",
        "algorithms": "algorithms",
        "replay stats": f"replay stats --run {run}",
        "status (no broker)": f"status --run {run} --broker mqtt://127.0.0.1:9 --timeout 0.1",
    }
    timed = {f"autotelic {name}": [*cli, *shlex.split(a)] for name, a in thin.items()}
    timed["python -c 'import torch'"] = [sys.executable, "-c", "import torch"]
    return timed


def make_run(root: Path) -> Path:
    """A run directory whose store holds a few real episodes."""
    sys.path.insert(0, str(ROOT))
    from autotelic.storage import EpisodeStore, RunLayout
    from tests.storage_fixtures import playground_episode

    layout = RunLayout(root / "run")
    layout.root.mkdir(parents=True)
    store = EpisodeStore(layout.store)
    try:
        store.put_many([playground_episode(seed) for seed in range(5)])
    finally:
        store.close()
    layout.endpoints.write_text(json.dumps({"agent": "bench"}))
    return layout.root


def time_once(argv: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(argv, capture_output=True, cwd=ROOT, check=False)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        timed = commands(make_run(Path(tmp)))
        seconds: dict[str, list[float]] = {name: [] for name in timed}
        for _ in range(args.rounds):
            for name, command in timed.items():
                seconds[name].append(time_once(command))
    base = statistics.median(seconds["autotelic --version"])
    print(f"| command | median s ({args.rounds} runs) | / --version |")
    print("| --- | --- | --- |")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"| `{name}` | {median:.2f} | {median / base:.2f}x |")


if __name__ == "__main__":
    main()
