"""Where the time of one SAC update and one collection step goes, at the GPU configuration.

On the H100 six runs shared one GPU at ~30 env steps/s each and TF32 did not
change it, so the bottleneck is not matrix arithmetic. This script answers where
it is, in one command, for the configuration of ``bench/configs/gpu.yaml``
(SmolLM2 with LoRA, 32 envs, SAC batch 256 in micro-batches of 64):

1. it builds the real agent (collector, LMDB store, HER replay, learner,
   curriculum), serially, and collects until learning may start, then runs
   warm-up updates (CUDA context, kernels, allocator);
2. torch.profiler records one collection step and one SAC update (replay
   sampling included), with labelled phases: the collector's scoring, env
   steps, episode storage; the update's sampling, targets, scoring, backward and
   optimizer step; the scorer's tokenisation, packing, model body and LM head;
3. it prints, for each, the wall time, the GPU's busy share (kernel time over
   wall time: low means the GPU waits for Python, launches or the CPU side), the
   phases, the top operators by GPU and by CPU time, and writes Chrome traces;
4. it times a few updates and collection steps (synchronised) for each
   precision asked (``--precisions fp32 tf32 bf16``: TF32 matmuls, bf16 autocast).

    python bench/profile_gpu.py                                  # on the GPU machine
    python bench/profile_gpu.py --out "$OUT/profile"             # traces where they come back
    .venv/bin/python bench/profile_gpu.py --device cpu --model tiny-causal --num-envs 4 \\
        --batch-size 16 --micro-batch 8 --learning-starts 32     # a dry run anywhere

Traces open in chrome://tracing or https://ui.perfetto.dev.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.profiler import ProfilerActivity, profile, record_function

from autotelic.runtime.config import Settings, deep_merge, load_settings
from autotelic.runtime.loop.agent import Agent
from autotelic.runtime.loop.schedules import OffPolicySchedule

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "gpu.yaml"
PRECISIONS = {
    "fp32": {"autocast": "off", "tf32": False},
    "tf32": {"autocast": "off", "tf32": True},
    "bf16": {"autocast": "bfloat16", "tf32": True},
}


def settings_from(args: argparse.Namespace, run_dir: Path, autocast: str) -> Settings:
    """The experiment file's configuration with its SAC options, serial, in ``run_dir``,
    with the command line's overrides (device, model, sizes) for dry runs."""
    data = yaml.safe_load(args.config.read_text()) or {}
    algorithms = data.pop("algorithms", {}) or {}
    overrides: dict[str, Any] = {
        "run": {"dir": str(run_dir), "mode": "serial", "max_env_steps": None},
        "algorithm": {**algorithms.get("sac", {}), "name": "sac"},
        "model": {"autocast": autocast},
        "metrics": {"enabled": False},
        "replay": {"durable": False},
    }
    if "eval" in Settings.model_fields:
        overrides["eval"] = {"enabled": False}
    model: dict[str, Any] = {}
    if args.device:
        model["device"] = args.device
    if args.model:
        model["path"] = args.model
    algorithm: dict[str, Any] = {}
    for key, value in (
        ("batch_size", args.batch_size),
        ("micro_batch_size", args.micro_batch),
        ("learning_starts", args.learning_starts),
    ):
        if value is not None:
            algorithm[key] = value
    extra: dict[str, Any] = {"model": model, "algorithm": algorithm}
    if args.num_envs:
        extra["env"] = {"num_envs": args.num_envs}
    return load_settings(None, **deep_merge(deep_merge(data, overrides), extra))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def labelled(obj: Any, attribute: str, label: str) -> None:
    """Wrap ``obj.attribute`` (a method) in a profiler label, for this script only."""
    method = getattr(obj, attribute)

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with record_function(label):
            return method(*args, **kwargs)

    setattr(obj, attribute, wrapper)


def instrument(agent: Agent) -> None:
    """Phase labels on the collector and the replay (the learner and the scorer label
    their own phases: ``sac/...`` and ``score/...``)."""
    collector = agent.collector
    labelled(collector, "_act", "collect/act")
    labelled(collector.envs, "step", "collect/env_step")
    labelled(collector.envs, "reset", "collect/env_reset")
    labelled(collector.store, "put_many", "collect/store")
    labelled(collector.daemon, "next_goals", "collect/curriculum")
    learner: Any = agent.learner
    labelled(learner, "update", "update/sac")
    schedule = agent.schedule
    assert isinstance(schedule, OffPolicySchedule)
    labelled(schedule.sampler, "sample", "update/replay_sample")


def fill_replay(agent: Agent) -> int:
    """Collect until the first update is due; returns the collection steps taken."""
    schedule = agent.schedule
    assert isinstance(schedule, OffPolicySchedule)
    steps = 0
    while schedule.throttle.owed() == 0:
        agent.collector.step()
        steps += 1
    return steps


@contextlib.contextmanager
def timed(device: torch.device, into: list[float]) -> Iterator[None]:
    synchronize(device)
    began = time.perf_counter()
    yield
    synchronize(device)
    into.append(time.perf_counter() - began)


def profiled(
    name: str, fn: Callable[[], object], device: torch.device, out: Path, rows: int
) -> None:
    """Profile one call of ``fn``; print its summary and write its trace."""
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    synchronize(device)
    with profile(activities=activities, record_shapes=True) as prof:
        began = time.perf_counter()
        with record_function(name):
            fn()
        synchronize(device)
        wall = time.perf_counter() - began
    trace = out / f"trace_{name.replace('/', '_')}.json"
    prof.export_chrome_trace(str(trace))
    events = prof.key_averages()
    kernels = sum(e.self_device_time_total for e in events)  # microseconds of GPU work
    print(f"\n== {name}: {wall * 1000:.1f} ms wall; trace {trace}")
    if device.type == "cuda":
        print(f"   GPU busy {kernels / 1e6 / wall:.0%} of the wall time ({kernels / 1e3:.1f} ms)")
    phases = [e for e in events if "/" in e.key and not e.key.startswith("aten")]
    print("   phases (CPU total ms, GPU total ms, calls):")
    for e in sorted(phases, key=lambda e: -e.cpu_time_total):
        print(
            f"     {e.key:<28} {e.cpu_time_total / 1e3:9.1f} {e.device_time_total / 1e3:9.1f} "
            f"{e.count:6d}"
        )
    if device.type == "cuda":
        print(events.table(sort_by="self_device_time_total", row_limit=rows))
    print(events.table(sort_by="self_cpu_time_total", row_limit=rows))


def run_precision(args: argparse.Namespace, precision: str, out: Path) -> dict[str, float]:
    spec = PRECISIONS[precision]
    torch.backends.cuda.matmul.allow_tf32 = bool(spec["tf32"])
    torch.set_float32_matmul_precision("high" if spec["tf32"] else "highest")
    with tempfile.TemporaryDirectory(prefix="autotelic-profile-") as tmp:
        settings = settings_from(args, Path(tmp) / "run", str(spec["autocast"]))
        agent = Agent(settings)
        # The agent turns TF32 on for CUDA; this script decides per precision.
        torch.backends.cuda.matmul.allow_tf32 = bool(spec["tf32"])
        torch.set_float32_matmul_precision("high" if spec["tf32"] else "highest")
        try:
            return measure(args, agent, precision, out)
        finally:
            agent.close()


def measure(args: argparse.Namespace, agent: Agent, precision: str, out: Path) -> dict[str, float]:
    learner: Any = agent.learner
    device = learner.device
    schedule = agent.schedule
    assert isinstance(schedule, OffPolicySchedule)
    s = agent.settings
    print(
        f"\n######## {precision}: {s.model.path} on {device}, autocast "
        f"{learner.model.autocast_dtype}, attention {learner.model.hf.config._attn_implementation}"
        f", {s.env.num_envs} envs, batch {schedule.batch_size}, micro-batch "
        f"{getattr(s.algorithm, 'micro_batch_size', None)}, torch threads "
        f"{torch.get_num_threads()}"
    )
    steps = fill_replay(agent)
    print(f"   collected {agent.collector.env_steps} env steps ({steps} collection steps)")
    for _ in range(args.warmup_updates):
        agent.learner_loop.train_step(schedule.sampler, schedule.batch_size)
    agent.collector.step()
    if precision == args.profile_precision:
        instrument(agent)
        profiled("collection_step", agent.collector.step, device, out, args.rows)
        profiled(
            "sac_update",
            lambda: agent.learner_loop.train_step(schedule.sampler, schedule.batch_size),
            device,
            out,
            args.rows,
        )
    collect: list[float] = []
    update: list[float] = []
    for _ in range(args.timed):
        with timed(device, collect):
            agent.collector.step()
        with timed(device, update):
            agent.learner_loop.train_step(schedule.sampler, schedule.batch_size)
    if device.type == "cuda":
        print(f"   peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")
    return {
        "collect_s": statistics.median(collect),
        "update_s": statistics.median(update),
        "env_steps_per_collect": float(s.env.num_envs),
        "batch": float(schedule.batch_size),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="experiment file")
    parser.add_argument("--out", type=Path, default=Path("bench/out/profile"))
    parser.add_argument(
        "--precisions", nargs="+", choices=list(PRECISIONS), default=["tf32", "bf16", "fp32"]
    )
    parser.add_argument(
        "--profile-precision", choices=list(PRECISIONS), default="tf32",
        help="which precision torch.profiler records (the service's default on CUDA: tf32)",
    )  # fmt: skip
    parser.add_argument("--warmup-updates", type=int, default=2)
    parser.add_argument("--timed", type=int, default=5, help="timed updates and steps")
    parser.add_argument("--rows", type=int, default=25, help="operators listed per table")
    parser.add_argument("--device", default=None, help="override model.device (dry runs)")
    parser.add_argument("--model", default=None, help="override model.path (dry runs)")
    parser.add_argument("--num-envs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--micro-batch", type=int, default=None)
    parser.add_argument("--learning-starts", type=int, default=None)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if torch.cuda.is_available():
        print(f"GPU {torch.cuda.get_device_name()}, torch {torch.__version__}")
    results = {p: run_precision(args, p, args.out) for p in args.precisions}
    print("\nmedians per call (synchronised), and ratios against the first precision")
    base = results[args.precisions[0]]
    for name, r in results.items():
        print(
            f"  {name:<5} collection step {r['collect_s'] * 1000:8.1f} ms "
            f"({r['env_steps_per_collect'] / r['collect_s']:7.1f} env steps/s)   "
            f"update {r['update_s'] * 1000:8.1f} ms ({r['batch'] / r['update_s']:7.1f} "
            f"transitions/s)   x{base['collect_s'] / r['collect_s']:.2f} / "
            f"x{base['update_s'] / r['update_s']:.2f}"
        )


if __name__ == "__main__":
    main()
