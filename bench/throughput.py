"""The whole service loop, headless: collector, learner, LMDB store, HER replay, curriculum.

Each variant is the :class:`~autotelic.runtime.loop.agent.Agent` that ``autotelic run``
serves (no MQTT, no HTTP server, no periodic evaluation), in a process of its
own so that each sets its torch threads as the service would. Variants differ in
the driver (``concurrent``: a collector thread and a learner thread; ``serial``:
one thread that collects, then runs the updates due) and in precision (``fp32``:
``model.autocast: off``; ``bf16``: ``model.autocast: bfloat16``); all of them use
the configuration's settings resolved for the concurrent run (``run.profile``),
so the drivers compare at equal algorithm settings.

Side by side in one run: every variant first warms up alone (until learning has
started and one update is done), then the variants take turns, one window of
``--window`` seconds each while the others are parked at their safe points,
``--repeats`` times; medians over windows, ratios against the first variant.
Per window:

* env steps/s, updates/s and transitions learned/s (an update in flight at the
  window's end is credited with the share of its micro-batches done);
* learner busy: the share of the window spent in updates (serial: in the loop's
  learning phase); collector waiting: the share the collector spent blocked by
  the learner (serial: the same learning phase, when nothing is collected);
* the learner's backlog at the window's end (updates owed, ``lag``), the updates
  skipped under ``collector.when_learner_behind: skip``, and the policy lag of
  the last batch (versions between the policy that acted and the one trained);
* the progress intervals (``--interval`` seconds, the progress line's 10 by
  default) in which no env step, or no update, completed.

    .venv/bin/python bench/throughput.py                       # defaults: a laptop CPU
    .venv/bin/python bench/throughput.py --variants concurrent-bf16 serial-bf16
    .venv/bin/python bench/throughput.py --model smollm2 \\
        --variants concurrent-bf16 concurrent-bf16-frozen28 concurrent-bf16-frozen28-bf16head
    python bench/throughput.py --config bench/configs/gpu.yaml  # on a CUDA machine

The machine is shared and noisy: read the ratios, not the absolute rates.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import os
import re
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

VARIANTS = ("concurrent-bf16", "concurrent-fp32", "serial-bf16", "serial-fp32")
AUTOCAST = {"fp32": "off", "bf16": "bfloat16"}
VARIANT = re.compile(r"(concurrent|serial)-(bf16|fp32)(-frozen\d+)?(-bf16head)?")
"""A variant's name: driver and precision, then optionally ``-frozenN`` (``model.frozen_layers
N``: the lower N layers frozen, their output cached) and ``-bf16head``
(``model.lm_head_autocast``), e.g. ``concurrent-bf16-frozen28-bf16head``."""


def variant_name(text: str) -> str:
    """``text`` if it names a variant (argparse type)."""
    if not VARIANT.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not DRIVER-PRECISION[-frozenN][-bf16head], e.g. concurrent-bf16"
        )
    return text


# ---------------------------------------------------------------- configuration


def base_overrides(config: Path | None) -> dict[str, Any]:
    """The configuration every variant starts from: the defaults, or an experiment file
    (its shared part plus the options of the algorithm it names, SAC by default)."""
    if config is None:
        return {}
    import yaml

    from autotelic.runtime.config import deep_merge

    # An experiment file as bench/experiment.py reads it: a configuration + `algorithms:`.
    shared = yaml.safe_load(config.read_text()) or {}
    algorithms = shared.pop("algorithms", {}) or {}
    name = (shared.get("algorithm") or {}).get("name", "sac")
    return deep_merge(shared, {"algorithm": {**algorithms.get(name, {}), "name": name}})


def variant_overrides(base: dict[str, Any], variant: str, run_dir: Path) -> dict[str, Any]:
    """``base`` for one variant: its driver and precision, the concurrent run's profile,
    a fresh run directory, and nothing that is not the learning loop."""
    from autotelic.runtime.config import Settings, deep_merge, load_settings
    from autotelic.runtime.loop.profiles import resolve_profile

    match = VARIANT.fullmatch(variant)
    if match is None:
        raise ValueError(f"unknown variant {variant!r}")
    driver, precision, frozen, head = match.groups()
    concurrent = load_settings(None, **deep_merge(base, {"run": {"mode": "concurrent"}}))
    extra: dict[str, Any] = {
        "run": {
            "dir": str(run_dir),
            "mode": driver,
            "profile": resolve_profile(concurrent),
            "max_env_steps": None,
        },
        "model": {
            "autocast": AUTOCAST[precision],
            **({"frozen_layers": int(frozen.removeprefix("-frozen"))} if frozen else {}),
            **({"lm_head_autocast": True} if head else {}),
        },
        "metrics": {"enabled": False},
    }
    if "eval" in Settings.model_fields:  # periodic evaluation would compete for the CPU
        extra["eval"] = {"enabled": False}
    return deep_merge(base, extra)


# ---------------------------------------------------------------- one variant's process


@dataclass
class Sample:
    """Counters of one agent at one moment."""

    at: float
    env_steps: int
    updates: float
    learned: float
    shares: dict[str, float]
    lag: float
    skipped: int
    policy_lag: float
    cache_hits: float = float("nan")
    """Share of the states the learner's updates read from the activation cache so far
    (``model.frozen_layers``; NaN without it)."""

    @classmethod
    def of(cls, agent: Any) -> Sample:
        schedule = agent.schedule
        throttle = getattr(schedule, "throttle", None)
        progress = throttle.progress if throttle is not None else 0.0
        batch = getattr(schedule, "batch_size", 0)
        loop = agent.learner_loop
        return cls(
            at=time.perf_counter(),
            env_steps=agent.collector.env_steps,
            updates=agent.learner.num_updates + progress,
            learned=loop.transitions_learned + progress * batch,
            shares=schedule.shares.snapshot(),
            lag=throttle.lag() if throttle is not None else 0.0,
            skipped=throttle.skipped if throttle is not None else 0,
            policy_lag=float(loop.last.get("policy_lag", float("nan"))),
            cache_hits=float(loop.last.get("activation_cache_hit_rate", float("nan"))),
        )


def worker(conn: Connection, name: str, overrides: dict[str, Any]) -> None:
    """Build the agent parked at its safe points, then obey the parent's commands."""
    from autotelic.runtime.config import load_settings
    from autotelic.runtime.loop.agent import Agent

    agent = Agent(load_settings(None, **overrides))
    agent.points.pause(timeout=0)  # no worker yet: they park at their first safe point
    threads = agent.start_threads()
    model = getattr(agent.learner, "model", None)
    conn.send(
        {
            "threads": _torch_threads(),
            "autocast": str(getattr(model, "autocast_dtype", None)),
            "attention": model.hf.config._attn_implementation if model is not None else None,
            "algorithm": {
                k: getattr(agent.settings.algorithm, k, None)
                for k in ("batch_size", "update_every", "learning_starts", "micro_batch_size")
            },
            "when_learner_behind": agent.settings.collector.when_learner_behind,
        }
    )
    try:
        while True:
            command, *args = conn.recv()
            if command == "warmup":
                conn.send(_warm_up(agent, *args))
            elif command == "window":
                conn.send(_window(agent, *args))
            else:
                break
    finally:
        agent.stop()
        agent.points.resume()
        for t in threads:
            t.join(timeout=120)
        agent.close()
        conn.send("closed")


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _warm_up(agent: Any, limit_s: float) -> dict[str, Any]:
    """Run until the first update after learning starts, or ``limit_s``."""
    began = time.perf_counter()
    agent.points.resume()
    while agent.learner.num_updates < 1 and time.perf_counter() - began < limit_s:
        if agent.error is not None:
            break
        time.sleep(0.2)
    agent.points.pause(timeout=600)
    return {
        "seconds": time.perf_counter() - began,
        "env_steps": agent.collector.env_steps,
        "updates": agent.learner.num_updates,
        "error": repr(agent.error) if agent.error else None,
    }


def _window(agent: Any, seconds: float, interval: float) -> list[Sample]:
    """Samples every ``interval`` seconds over a window of ``seconds``, then park."""
    samples = [Sample.of(agent)]
    agent.points.resume()
    end = samples[0].at + seconds
    while (now := time.perf_counter()) < end:
        time.sleep(min(interval, end - now))
        samples.append(Sample.of(agent))
    agent.points.pause(timeout=600)
    return samples


# ---------------------------------------------------------------- the parent


@dataclass
class Variant:
    name: str
    conn: Connection
    process: Any
    setup: dict[str, Any]
    windows: list[dict[str, float]] = field(default_factory=list)


def summarise(samples: list[Sample], serial: bool) -> dict[str, float]:
    """One window's rates and shares from its samples."""
    first, last = samples[0], samples[-1]
    seconds = last.at - first.at

    def share(name: str) -> float:
        return (last.shares.get(name, 0.0) - first.shares.get(name, 0.0)) / seconds

    learning = share("learning")
    idle_steps = sum(b.env_steps == a.env_steps for a, b in itertools.pairwise(samples))
    idle_updates = sum(int(b.updates) == int(a.updates) for a, b in itertools.pairwise(samples))
    return {
        "env_steps_s": (last.env_steps - first.env_steps) / seconds,
        "updates_s": (last.updates - first.updates) / seconds,
        "learned_s": (last.learned - first.learned) / seconds,
        "learner_busy": learning,
        "collector_waiting": learning if serial else share("collector_waiting"),
        "lag_updates": last.lag,
        "skipped": float(last.skipped - first.skipped),
        "policy_lag": last.policy_lag,
        "cache_hits": last.cache_hits,
        "intervals": float(len(samples) - 1),
        "no_steps": float(idle_steps),
        "no_updates": float(idle_updates),
    }


COLUMNS = [
    ("env steps/s", "env_steps_s", "{:.2f}"),
    ("updates/s", "updates_s", "{:.3f}"),
    ("learned/s", "learned_s", "{:.2f}"),
    ("busy", "learner_busy", "{:.0%}"),
    ("coll. wait", "collector_waiting", "{:.0%}"),
    ("lag", "lag_updates", "{:.1f}"),
    ("skipped", "skipped", "{:.0f}"),
    ("pol. lag", "policy_lag", "{:.1f}"),
    ("cache hits", "cache_hits", "{:.0%}"),
]


def report(variants: list[Variant]) -> None:
    print(f"\nmedians over {len(variants[0].windows)} windows per variant")
    width = max(18, *(len(v.name) + 1 for v in variants))
    head = f"  {'variant':<{width}}" + "".join(f"{title:>12}" for title, _, _ in COLUMNS)
    print(head + f"{'idle intervals (steps/updates)':>34}")
    for v in variants:
        med = {key: statistics.median(w[key] for w in v.windows) for _, key, _ in COLUMNS}
        cells = "".join(f"{fmt.format(med[key]):>12}" for _, key, fmt in COLUMNS)
        total = sum(w["intervals"] for w in v.windows)
        steps = sum(w["no_steps"] for w in v.windows)
        updates = sum(w["no_updates"] for w in v.windows)
        print(f"  {v.name:<{width}}{cells}{f'{steps:.0f}/{updates:.0f} of {total:.0f}':>34}")
    base = variants[0]
    print(f"\nratios against {base.name} (median of per-repeat ratios)")
    for v in variants[1:]:
        parts = []
        for title, key in (("env steps", "env_steps_s"), ("learned", "learned_s")):
            ratios = [
                w[key] / b[key] for w, b in zip(v.windows, base.windows, strict=True) if b[key]
            ]
            if ratios:
                parts.append(f"{title} {statistics.median(ratios):.2f}x")
        print(f"  {v.name} / {base.name}: " + ", ".join(parts))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", type=Path, default=None, help="experiment file (default: the defaults)"
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        type=variant_name,
        default=list(VARIANTS),
        help="DRIVER-PRECISION[-frozenN][-bf16head]: concurrent or serial, bf16 or fp32",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="model.path for every variant (default: the configuration's); name it to "
        "compare runs made while the default may change",
    )
    parser.add_argument("--window", type=float, default=60.0, help="seconds per window")
    parser.add_argument("--repeats", type=int, default=3, help="windows per variant")
    parser.add_argument("--interval", type=float, default=10.0, help="progress interval (s)")
    parser.add_argument("--warmup-limit", type=float, default=900.0, help="seconds at most")
    args = parser.parse_args(argv)

    base = base_overrides(args.config)
    if args.model is not None:
        base = {**base, "model": {**base.get("model", {}), "path": args.model}}
    context = mp.get_context("spawn")  # each variant sets its own torch threads
    variants: list[Variant] = []
    with tempfile.TemporaryDirectory(prefix="autotelic-throughput-") as tmp:
        print(f"{os.cpu_count()} CPUs; config {args.config or 'defaults'}")
        for name in args.variants:
            parent, child = context.Pipe()
            overrides = variant_overrides(base, name, Path(tmp) / name)
            process = context.Process(target=worker, args=(child, name, overrides), daemon=True)
            process.start()
            setup = parent.recv()
            variants.append(Variant(name, parent, process, setup))
            print(f"  {name}: {setup}")
        for v in variants:  # one at a time: warm-ups would compete for the cores
            v.conn.send(("warmup", args.warmup_limit))
            print(f"  warm-up {v.name}: {v.conn.recv()}", flush=True)
        for r in range(args.repeats):
            for v in variants:
                v.conn.send(("window", args.window, args.interval))
                window = summarise(v.conn.recv(), serial=v.name.startswith("serial"))
                v.windows.append(window)
                print(
                    f"  repeat {r} {v.name}: "
                    + ", ".join(
                        f"{title} {fmt.format(window[key])}" for title, key, fmt in COLUMNS
                    ),
                    flush=True,
                )
        for v in variants:
            v.conn.send(("close",))
            v.conn.recv()
            v.process.join(timeout=60)
    report(variants)


if __name__ == "__main__":
    main()
