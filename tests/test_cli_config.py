"""Command-line settings: ``--set`` overrides, ``--run-dir``, ``--seed`` and the one seed
that derives the others."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from autotelic.runtime.commands.cli import app
from autotelic.runtime.config import ConfigError, load_settings, parse_overrides


def show(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["config", "show", *args])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = yaml.safe_load(result.output)
    return data


def test_set_overrides_nested_keys_typed_as_yaml() -> None:
    data = show(
        "--set", "algorithm.batch_size=32",
        "--set", "env.num_envs=4",
        "--set", "curriculum.sampler.unsolved_share=0.25",
        "--set", "eval.splits=[test]",
        "--set", "replay.durable=false",
        "--set", "run.max_env_steps=",
        "--set", "run.agent=lab-7",
    )  # fmt: skip
    assert data["algorithm"]["batch_size"] == 32
    assert data["env"]["num_envs"] == 4
    assert data["curriculum"]["sampler"]["unsolved_share"] == 0.25
    assert data["eval"]["splits"] == ["test"]
    assert data["replay"]["durable"] is False
    assert data["run"]["max_env_steps"] is None
    assert data["run"]["agent"] == "lab-7"


def test_a_later_set_of_the_same_key_wins() -> None:
    data = show("--set", "env.num_envs=2", "--set", "env.num_envs=6")
    assert data["env"]["num_envs"] == 6


def test_set_wins_over_the_file_and_the_environment_which_wins_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump({"env": {"num_envs": 2}, "algorithm": {"name": "sac", "gamma": 0.9}})
    )
    monkeypatch.setenv("AUTOTELIC_ENV__NUM_ENVS", "3")
    assert show("-c", str(config))["env"]["num_envs"] == 3
    data = show("-c", str(config), "--set", "env.num_envs=5", "--set", "algorithm.batch_size=8")
    assert data["env"]["num_envs"] == 5
    # The override merges into the file's section: the file's gamma stays.
    assert (data["algorithm"]["gamma"], data["algorithm"]["batch_size"]) == (0.9, 8)


def test_run_dir_and_seed_flags_win_over_set(tmp_path: Path) -> None:
    data = show("--set", "run.seed=1", "--seed", "9", "--run-dir", str(tmp_path / "r"))
    assert data["run"]["seed"] == 9
    assert data["run"]["dir"] == str(tmp_path / "r")


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        (
            "algorithm.batch_sze=32",
            "invalid configuration: algorithm.batch_sze: Extra inputs are not permitted "
            "(no such setting; did you mean algorithm.batch_size?)",
        ),
        ("env.num_env=4", "did you mean env.num_envs?"),
        (
            "algorithm.epochs=4",  # PPO's, not SAC's (the default)
            "algorithm.epochs: Extra inputs are not permitted (no such setting of this algorithm)",
        ),
        ("nonsense=1", "invalid configuration: nonsense: Extra inputs are not permitted"),
        ("algorithm.batch_size=many", "algorithm.batch_size: Input should be a valid integer"),
        ("env.num_envs=0", "env.num_envs: Input should be greater than or equal to 1"),
        ("algorithm.batch_size", "--set 'algorithm.batch_size': expected KEY=VALUE"),
        ("algorithm..batch_size=3", "expected KEY=VALUE with a dotted KEY"),
    ],
)
def test_a_bad_set_is_one_line_naming_the_field(assignment: str, message: str) -> None:
    result = CliRunner().invoke(app, ["config", "show", "--set", assignment])
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_set_of_a_value_and_of_a_key_below_it_is_refused() -> None:
    with pytest.raises(ConfigError, match="run was set to a value, not a section"):
        parse_overrides(["run=3", "run.seed=2"])


def test_run_seed_derives_the_component_seeds_it_is_not_told_apart() -> None:
    settings = load_settings(None, run={"seed": 5})
    algorithm_seed = getattr(settings.algorithm, "seed", None)
    assert (settings.model.seed, settings.curriculum.seed, algorithm_seed) == (5, 5, 5)
    # The evaluation set is the same for every seed, so seeds compare on it.
    assert settings.eval.seed == load_settings(None, run={"seed": 6}).eval.seed


def test_an_explicit_component_seed_wins_over_run_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"model": {"seed": 1}, "algorithm": {"name": "ppo"}}))
    monkeypatch.setenv("AUTOTELIC_CURRICULUM__SEED", "2")
    data = show("-c", str(config), "--seed", "7", "--set", "algorithm.seed=3")
    assert data["run"]["seed"] == 7
    assert (data["model"]["seed"], data["curriculum"]["seed"]) == (1, 2)
    assert (data["algorithm"]["name"], data["algorithm"]["seed"]) == ("ppo", 3)


def test_an_algorithm_given_as_a_model_still_derives_its_seed() -> None:
    """The Python API may pass a config object: only the fields set on it count as set."""
    from autotelic.learners.ppo import PPOConfig

    derived = load_settings(None, run={"seed": 4}, algorithm=PPOConfig(minibatch_size=16))
    assert (derived.algorithm.name, getattr(derived.algorithm, "seed", None)) == ("ppo", 4)
    assert getattr(derived.algorithm, "minibatch_size", None) == 16
    explicit = load_settings(None, run={"seed": 4}, algorithm=PPOConfig(seed=0))
    assert getattr(explicit.algorithm, "seed", None) == 0


def test_config_schema_lists_every_setting_with_type_default_and_description() -> None:
    result = CliRunner().invoke(app, ["config", "schema", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["key"]: row for row in json.loads(result.output)}
    assert rows["algorithm[sac].batch_size"]["type"] == "int"
    assert rows["run.mode"] == {
        "key": "run.mode",
        "type": "Literal['concurrent', 'serial']",
        "default": "concurrent",
        "description": "concurrent: collector and learner threads; serial: one deterministic loop.",
    }
    assert rows["eval.splits"]["default"] == "[train, test]"
    assert rows["run.max_env_steps"]["default"] == "null"
    assert "env[autotelic/BabyAIText-v0].num_envs" in rows
    assert all(row["description"] for row in rows.values())
    # Every leaf of the effective configuration has a row (env and algorithm: the chosen one).
    data = show()
    leaves = [
        f"{section}.{key}"
        for section, fields in data.items()
        for key, value in fields.items()
        if not isinstance(value, dict)
    ]
    named = {
        "env": f"env[{data['env']['id']}]",
        "algorithm": f"algorithm[{data['algorithm']['name']}]",
    }
    for leaf in leaves:
        section, key = leaf.split(".", 1)
        assert f"{named.get(section, section)}.{key}" in rows, leaf
    text = CliRunner().invoke(app, ["config", "schema"]).output
    assert "run.seed: int = 0\n    Seed of env scenes" in text


RACE = """
import sys, threading
from autotelic.runtime.config import load_settings
files = sys.argv[1:3]
problems = []
start = threading.Barrier(2)

def load(k):
    start.wait()
    for _ in range(40):
        try:
            seed = load_settings(files[k]).run.seed
        except Exception as err:
            problems.append(f"{type(err).__name__}: {err}")
            return
        if seed != 100 + k:
            problems.append(f"thread {k} read seed {seed}")

sys.setswitchinterval(1e-6)  # switch threads as often as possible: any race shows
threads = [threading.Thread(target=load, args=(k,)) for k in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(problems or "ok")
"""


def test_two_threads_loading_two_files_at_once_each_read_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file given to load_settings reaches the settings sources through a context
    variable, not the shared process environment, and the first lookup's plug-in loading
    is one at a time: two threads of a fresh process reading two files at once each get
    their own values, never the other's, never "no default env". A file named in
    AUTOTELIC_CONFIG_FILE still counts when load_settings is given none."""
    files = []
    for k in range(2):
        path = tmp_path / f"c{k}.yaml"
        path.write_text(yaml.safe_dump({"run": {"seed": 100 + k}}))
        files.append(path)
    done = subprocess.run(
        [sys.executable, "-c", RACE, *map(str, files)],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == "ok", done.stdout
    monkeypatch.setenv("AUTOTELIC_CONFIG_FILE", str(files[1]))
    assert load_settings().run.seed == 101
    assert load_settings(files[0]).run.seed == 100  # a given file wins over the variable
    assert load_settings().run.seed == 101  # and leaves it as it was
