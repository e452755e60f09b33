"""The throughput benchmark and the GPU profiling script: they run, and read what they should.

Both scripts run end to end here on the CPU with a tiny model (the GPU profile in
its dry-run form), so they are ready for the machines they are meant for. Only
what they compute is asserted, never how fast anything was.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY_EXPERIMENT = """
run: {torch_threads: 1}
model: {path: tiny-causal}
env: {num_envs: 4}
replay: {capacity_transitions: 10000, durable: false}
algorithms:
  sac: {critic_hidden: [32, 32], learning_starts: 32}
"""


def bench_module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def throughput() -> ModuleType:
    return bench_module("throughput")


def test_a_window_is_summarised_from_its_samples(throughput: ModuleType) -> None:
    sample = throughput.Sample

    def at(t: float, steps: int, updates: float, learning: float, waiting: float) -> object:
        return sample(
            at=t,
            env_steps=steps,
            updates=updates,
            learned=updates * 16,
            shares={"learning": learning, "collector_waiting": waiting},
            lag=2.0,
            skipped=3 if t > 0 else 1,
            policy_lag=1.5,
        )

    samples = [
        at(0.0, 100, 4.0, 10.0, 1.0),
        at(10.0, 100, 4.5, 19.0, 6.0),  # no env step and no whole update in this interval
        at(20.0, 180, 6.0, 28.0, 6.0),
    ]
    concurrent = throughput.summarise(samples, serial=False)
    assert concurrent["env_steps_s"] == pytest.approx(4.0)
    assert concurrent["updates_s"] == pytest.approx(0.1)
    assert concurrent["learned_s"] == pytest.approx(1.6)
    assert concurrent["learner_busy"] == pytest.approx(0.9)
    assert concurrent["collector_waiting"] == pytest.approx(0.25)
    assert (concurrent["skipped"], concurrent["lag_updates"]) == (2.0, 2.0)
    assert (concurrent["intervals"], concurrent["no_steps"], concurrent["no_updates"]) == (2, 1, 1)
    # Serially, the collector stands still whenever the loop learns.
    assert throughput.summarise(samples, serial=True)["collector_waiting"] == pytest.approx(0.9)


def test_every_variant_runs_the_concurrent_runs_settings(
    throughput: ModuleType, tmp_path: Path
) -> None:
    """Drivers compare at equal algorithm settings: serial variants get the profile the
    concurrent run resolves (cpu here), not the serial default (paper)."""
    from autotelic.runtime.config import load_settings
    from autotelic.runtime.loop.agent import Agent

    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_EXPERIMENT)
    base = throughput.base_overrides(config)
    assert base["algorithm"]["learning_starts"] == 32 and "algorithms" not in base
    seen = {}
    for variant in ("concurrent-fp32", "serial-bf16"):
        overrides = throughput.variant_overrides(base, variant, tmp_path / variant)
        agent = Agent(load_settings(None, **overrides))
        try:
            seen[variant] = agent.settings
        finally:
            agent.close()
    concurrent, serial = seen["concurrent-fp32"], seen["serial-bf16"]
    assert (concurrent.run.mode, serial.run.mode) == ("concurrent", "serial")
    assert concurrent.run.profile == serial.run.profile == "cpu"
    assert concurrent.algorithm == serial.algorithm
    assert (concurrent.model.autocast, serial.model.autocast) == ("off", "bfloat16")


def test_the_throughput_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_EXPERIMENT)
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench/throughput.py"), "--config", str(config),
         "--variants", "concurrent-fp32", "serial-fp32", "--window", "1.5", "--repeats", "1",
         "--interval", "0.5"],
        check=True, capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    out = done.stdout
    assert "warm-up concurrent-fp32" in out and "'error': None" in out
    assert "serial-fp32 / concurrent-fp32: env steps" in out
    table = out.split("medians over 1 windows per variant")[1]
    assert "concurrent-fp32" in table and "serial-fp32" in table


def test_the_gpu_profile_runs_dry_on_the_cpu(tmp_path: Path) -> None:
    """The one-command GPU profile, shrunk to a tiny model on the CPU: it profiles a
    collection step and an update, labels their phases and writes both traces."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench/profile_gpu.py"), "--device", "cpu",
         "--model", "tiny-causal", "--num-envs", "4", "--batch-size", "8", "--micro-batch", "4",
         "--learning-starts", "16", "--precisions", "fp32", "--profile-precision", "fp32",
         "--timed", "1", "--warmup-updates", "1", "--rows", "3", "--out", str(tmp_path)],
        check=True, capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    out = done.stdout
    for phase in ("collect/act", "collect/env_step", "update/replay_sample", "sac/targets",
                  "sac/backward", "sac/optimizer_step", "score/model", "score/pack"):  # fmt: skip
        assert phase in out, phase
    assert (tmp_path / "trace_collection_step.json").stat().st_size > 0
    assert (tmp_path / "trace_sac_update.json").stat().st_size > 0
    assert "medians per call" in out
