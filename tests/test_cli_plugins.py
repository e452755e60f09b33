"""``autotelic envs`` and ``algorithms`` list a plug-in's registrations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

SESSION = """
import json, sys
from typer.testing import CliRunner
from autotelic.runtime.commands.cli import app
runs = [["envs"], ["envs", "--plugin", "tests.toy_plugin"],
        ["algorithms", "--config", sys.argv[1]], ["envs", "--plugin", "tests.nowhere"]]
out = []
for args in runs:
    r = CliRunner().invoke(app, args)
    out.append({"code": r.exit_code, "stdout": r.stdout, "stderr": r.stderr})
print(json.dumps(out))
"""


def test_envs_and_algorithms_list_the_plugins_given_or_configured(tmp_path: Path) -> None:
    """In a fresh process, in order: nothing of the plug-in is registered before it is
    named; then --plugin, then a --config file's run.plugins, then a module that is not."""
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"run": {"plugins": ["tests.toy_plugin"]}}))
    done = subprocess.run(
        [sys.executable, "-c", SESSION, str(config)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # tests.toy_plugin importable
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    plain, given, configured, missing = json.loads(done.stdout.splitlines()[-1])
    assert plain["code"] == 0 and "autotelic/PlaygroundText-v0" in plain["stdout"]
    assert "toy/" not in plain["stdout"]
    assert given["code"] == 0 and "toy/NumberLine-v0" in given["stdout"]
    assert configured["code"] == 0
    assert {"sac", "ppo", "toy-q"} <= {
        line.split()[0] for line in configured["stdout"].splitlines()
    }
    assert missing["code"] == 2
    assert missing["stderr"].startswith("error: cannot import plug-in module 'tests.nowhere'")
