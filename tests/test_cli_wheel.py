"""The wheel, installed outside the checkout, runs a service with the tiny model, and its
packaged cpu configuration."""

from __future__ import annotations

import csv
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str | Path, cwd: Path, timeout: float = 600) -> str:
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result.stdout


@pytest.mark.slow  # builds a wheel, makes a venv, runs 300 env steps: about a minute
def test_the_wheel_installed_in_a_fresh_venv_runs_a_few_hundred_steps(tmp_path: Path) -> None:
    """No network: the wheel is built without build isolation and installed without its
    dependencies, which the new venv reads from this one's site-packages (a .pth line),
    so the autotelic it imports is the wheel's, not the checkout's."""
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
        "-w", dist, ROOT, cwd=tmp_path)  # fmt: skip
    (wheel,) = dist.glob("autotelic-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps",
        "--no-index", wheel, cwd=tmp_path)  # fmt: skip
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
               cwd=tmp_path).strip()  # fmt: skip
    Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = run(
        python, "-c", "import autotelic.runtime.commands.cli as m; print(m.__file__)", cwd=tmp_path
    )
    assert where.startswith(site) and not where.startswith(str(ROOT))

    sets = [
        "model.path=tiny-causal",
        "run.max_env_steps=300",
        "service.mqtt_enabled=false",
        "metrics.enabled=false",
        "eval.enabled=false",
        "env.num_envs=4",
        "algorithm.learning_starts=64",
        "algorithm.critic_hidden=[64]",
    ]
    args = [arg for s in sets for arg in ("--set", s)]
    run(venv / "bin" / "autotelic", "run", "--run-dir", "r", "--seed", "2", *args, cwd=tmp_path)
    with (tmp_path / "r" / "progress.csv").open() as f:
        last = list(csv.DictReader(f))[-1]
    assert int(last["env_steps"]) >= 300 and int(last["episodes"]) > 20
    assert any((tmp_path / "r" / "checkpoints").iterdir())

    # The packaged cpu configuration ships in the wheel: --config cpu finds it there, and a
    # run that names nothing on a machine without a GPU starts from it.
    assert any(n.endswith("autotelic/runtime/configs/cpu.yaml") for n in wheel_names(wheel))
    cpu_sets = ["run.max_env_steps=200", "service.mqtt_enabled=false", "metrics.enabled=false",
                "eval.enabled=false", "run.torch_threads=1"]  # fmt: skip
    cpu_args = [arg for s in cpu_sets for arg in ("--set", s)]
    run(venv / "bin" / "autotelic", "run", "--config", "cpu", "--run-dir", "c", *cpu_args,
        cwd=tmp_path)  # fmt: skip
    used = yaml.safe_load((tmp_path / "c" / "config.yaml").read_text())
    assert (used["model"]["path"], used["run"]["mode"]) == ("tiny-words", "serial")
    shown = yaml.safe_load(run(venv / "bin" / "autotelic", "config", "show", "--run-dir", "d",
                               cwd=tmp_path))  # fmt: skip
    gpu = run(python, "-c", "import torch; print(torch.cuda.is_available())", cwd=tmp_path)
    assert shown["model"]["path"] == ("smollm2" if gpu.strip() == "True" else "tiny-words")


def wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()
