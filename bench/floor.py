"""How fast the experiment loop runs, and how close an update is to its floor.

Three tables, measured side by side in one run (the machine is shared and noisy:
read the ratios and medians, not the absolute figures):

1. **Env steps per CPU-second** of the experiment loop (the serial driver of
   ``bench/experiment.py``: collection, LMDB store, HER replay, updates) for
   SAC-GLAM + HER and PPO-GLAM on both environments, the old tiny model
   (``tiny-causal``, byte-level BPE, with the Python around the forward passes as
   it was) against the new (``tiny-words`` with everything on). Each variant warms
   up past ``learning_starts`` first; the window that counts is the next
   ``--steps`` env steps, in CPU seconds of the whole process.
2. **Each item's own gain** on Playground SAC-GLAM + HER: the new configuration
   with one item undone at a time (word tokenizer, prompt-id cache, vectorised
   packing, masks built once per width, garbage collector paused in updates).
3. **The floor**: a real SAC update against a bare torch loop doing the same work
   on the same shapes (the same model on random token ids: the no-grad passes
   over next states, the forward and backward passes over states, the optimizer
   step), median of ``--updates`` updates each.

    .venv/bin/python bench/floor.py                    # about 10 minutes on one core
    .venv/bin/python bench/floor.py --steps 512 --rounds 1 --tables floor

Variants run interleaved, round after round, each in a fresh process (so one's
allocator or caches do not help the next); medians over ``--rounds``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIGS = {
    "playground": Path("bench/configs/cpu.yaml"),
    "babyai": Path("bench/configs/babyai-cpu.yaml"),
}
ITEMS = ("words", "prompt_cache", "packing", "masks", "gc")
"""The levers of the new loop; a variant lists the ones it turns off."""


@dataclass(frozen=True)
class Variant:
    """One configuration of the loop: environment, method and the items turned off."""

    env: str
    method: str
    off: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        if set(self.off) == set(ITEMS):
            return f"{self.env}/{self.method}/old"
        return f"{self.env}/{self.method}/new" + "".join(f" -{i}" for i in self.off)


@dataclass
class Measured:
    rates: list[float] = field(default_factory=list)
    extra: dict[str, list[float]] = field(default_factory=dict)


@contextmanager
def items_off(off: Sequence[str]) -> Iterator[None]:
    """Undo the listed items for the duration (module-level switches of the scorer)."""
    from autotelic.learners import scorer
    from autotelic.testing.naive_scorer import pack_states_per_row

    saved = scorer.pack_states, scorer._square
    if "packing" in off:
        scorer.pack_states = pack_states_per_row
    if "masks" in off:
        scorer._square = scorer._square.__wrapped__  # type: ignore[assignment]
    try:
        yield
    finally:
        scorer.pack_states, scorer._square = saved


def build_agent(variant: Variant, run_dir: Path, budget: int) -> Any:
    sys_path_root()
    from autotelic.runtime.loop.agent import Agent
    from bench.experiment import build_settings

    settings = build_settings(CONFIGS[variant.env], variant.method, 0, budget, run_dir)
    # Both models with the same candidate score (the config's, resolved for tiny models),
    # so the policy, and so the data, differ only by what the tokenizer makes of it.
    path, vocabulary = (
        ("tiny-causal", ()) if "words" in variant.off else ("tiny-words", (settings.env.id,))
    )
    update = {"path": path, "vocabulary": vocabulary}
    model = settings.model.model_copy(update=update)
    agent = Agent(settings.model_copy(update={"model": model}))
    if "prompt_cache" in variant.off:
        for encoder in encoders(agent):
            encoder.cache_prompts = False
    if "gc" in variant.off:
        agent.learner_loop.pause_gc = False
    return agent


def encoders(agent: Any) -> list[Any]:
    learner = agent.learner
    return [learner.scorer.encoder, learner.policy.scorer.encoder]


def sys_path_root() -> None:
    """The repository root on the path, so ``bench.experiment`` imports when run as a script."""
    import sys

    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)


def loop_rate(variant: Variant, steps: int) -> dict[str, float]:
    """Env steps per CPU-second over ``steps`` env steps after learning has started."""
    with tempfile.TemporaryDirectory() as tmp, items_off(variant.off):
        agent = build_agent(variant, Path(tmp) / "run", budget=10**9)
        try:
            warm = warm_up_steps(agent)
            while agent.collector.env_steps < warm:
                agent.step_once()
            start_steps, start_cpu = agent.collector.env_steps, time.process_time()
            start_updates = agent.learner.num_updates
            while agent.collector.env_steps < start_steps + steps:
                agent.step_once()
            cpu = time.process_time() - start_cpu
            done = agent.collector.env_steps - start_steps
            return {
                "rate": done / cpu,
                "updates_per_1k": 1000 * (agent.learner.num_updates - start_updates) / done,
            }
        finally:
            agent.close()


def warm_up_steps(agent: Any) -> int:
    """Past the first update: learning_starts (SAC) or one rollout (PPO), and a little more."""
    algo = agent.settings.algorithm
    first = int(getattr(algo, "learning_starts", 0) or getattr(algo, "steps_per_update", 0))
    return first + 4 * int(agent.settings.env.num_envs)


# ------------------------------------------------------------------- the floor


def floor_ratio(off: Sequence[str], updates: int) -> dict[str, float]:
    """Median seconds of a real SAC update and of bare torch on its shapes; their ratio."""
    import numpy as np
    import torch

    from autotelic.learners.scorer import pack_states

    variant = Variant("playground", "sac-glam-her", tuple(off))
    with tempfile.TemporaryDirectory() as tmp, items_off(off):
        agent = build_agent(variant, Path(tmp) / "run", budget=10**9)
        try:
            # Past the critic-only warm-up: the updates timed train the LLM too.
            while agent.learner.num_updates < agent.settings.algorithm.critic_warmup_updates + 2:
                agent.step_once()
            learner, sampler = agent.learner, agent.schedule.sampler
            batch_size = agent.settings.algorithm.batch_size
            batches = [sampler.sample(batch_size) for _ in range(updates)]
            real = []
            for batch in batches:
                began = time.perf_counter()
                learner.update(batch)
                real.append(time.perf_counter() - began)
            bare_model = bare_twin(learner)
            shapes = [update_shapes(learner, batch, pack_states) for batch in batches]
            passes = backward_passes(learner)
            bare = [
                bare_update(bare_model, s, passes, twin=learner.twin is not None) for s in shapes
            ]
            width = float(np.median([s[0][1] for s in shapes]))
        finally:
            agent.close()
    del torch
    real_s, bare_s = statistics.median(real), statistics.median(bare)
    return {
        "real_ms": 1000 * real_s,
        "bare_ms": 1000 * bare_s,
        "ratio": real_s / bare_s,
        "width": width,
    }


def bare_twin(learner: Any) -> Any:
    """A fresh copy of the learner's LLM with an Adam optimizer over every weight."""
    import copy

    import torch

    hf = copy.deepcopy(learner.model.hf)
    hf.requires_grad_(True)
    return hf, torch.optim.Adam(hf.parameters(), lr=1e-4)


def update_shapes(
    learner: Any, batch: Any, pack: Callable[..., Any]
) -> tuple[tuple[int, int], tuple[int, int]]:
    """[B, T] of the packed states and of the packed next states an update computes."""
    prompts = [
        learner.prompt(g, o, c)
        for g, o, c in zip(batch.goals, batch.observations, batch.candidates, strict=True)
    ]
    live = [i for i in range(len(batch)) if not batch.terminated[i]]
    next_prompts = [
        learner.prompt(batch.goals[i], batch.next_observations[i], batch.next_candidates[i])
        for i in live
    ]
    encoder = learner.scorer.encoder
    states = pack(encoder.encode(prompts, list(batch.candidates)), "right", 0).ids.shape
    nexts = pack(
        encoder.encode(next_prompts, [batch.next_candidates[i] for i in live]), "right", 0
    ).ids.shape
    return (int(states[0]), int(states[1])), (int(nexts[0]), int(nexts[1]))


def backward_passes(learner: Any) -> int:
    cfg = learner.config
    per_loss = getattr(cfg, "grad_clip", "joint") == "per_loss" and getattr(
        cfg, "critic_trains_llm", True
    )
    return 2 if per_loss else 1


def bare_update(
    bare: Any, shapes: tuple[tuple[int, int], tuple[int, int]], passes: int, twin: bool
) -> float:
    """Seconds of the same passes on random ids: next states without gradients (twice
    with a target body), states with ``passes`` backward passes, one Adam step."""
    import torch

    hf, optimizer = bare
    body = hf.base_model
    vocab = hf.config.vocab_size

    def run(shape: tuple[int, int]) -> Any:
        b, t = shape
        ids = torch.randint(0, vocab, (b, t))
        mask = torch.zeros(b, 1, t, t)
        pos = torch.arange(t).expand(b, t)
        return body(
            input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False
        ).last_hidden_state

    began = time.perf_counter()
    with torch.no_grad():
        for _ in range(2 if twin else 1):
            if shapes[1][0]:
                run(shapes[1])
    hidden = run(shapes[0])
    for k in range(passes):
        hidden.square().mean().backward(retain_graph=k < passes - 1)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - began


# ------------------------------------------------------------------- driver


def worker(conn: Any, job: tuple[str, Any]) -> None:
    import torch

    torch.set_num_threads(1)
    kind, payload = job
    try:
        if kind == "loop":
            variant, steps = payload
            conn.send(loop_rate(variant, steps))
        else:
            off, updates = payload
            conn.send(floor_ratio(off, updates))
    except Exception as exc:  # a failed variant is reported, the others go on
        conn.send({"error": repr(exc)})
    conn.close()


def in_process(job: tuple[str, Any]) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=worker, args=(child, job))
    proc.start()
    result: dict[str, float] = parent.recv()
    proc.join()
    return result


def jobs(
    tables: Sequence[str], steps: int, updates: int, envs: Sequence[str] = tuple(CONFIGS)
) -> list[tuple[str, str, Any]]:
    out: list[tuple[str, str, Any]] = []
    if "loop" in tables:
        for env in envs:
            for method in ("sac-glam-her", "ppo-glam"):
                for off in (ITEMS, ()):
                    v = Variant(env, method, off)
                    out.append(("loop", v.name, (v, steps)))
    if "items" in tables:
        for item in ITEMS:
            v = Variant("playground", "sac-glam-her", (item,))
            out.append(("loop", v.name, (v, steps)))
        if "loop" not in tables:
            for off in (ITEMS, ()):
                v = Variant("playground", "sac-glam-her", off)
                out.append(("loop", v.name, (v, steps)))
    if "floor" in tables:
        out.append(("floor", "floor/new", ((), updates)))
        out.append(("floor", "floor/old", (ITEMS, updates)))
    return out


def report(results: dict[str, list[dict[str, float]]]) -> None:
    def med(name: str, key: str) -> float:
        values = [r[key] for r in results.get(name, []) if key in r]
        return statistics.median(values) if values else float("nan")

    errors = {n: r["error"] for n, rs in results.items() for r in rs if "error" in r}
    for name, error in errors.items():
        print(f"! {name}: {error}")
    loops = sorted({n.rsplit("/", 1)[0] for n in results if not n.startswith("floor")})
    if loops:
        print("\n1. env steps per CPU-second, old tiny model and loop against new (medians)")
        print(f"{'env/method':28} {'old':>8} {'new':>8} {'new/old':>8} {'updates/1k old,new':>20}")
        for key in loops:
            old, new = med(f"{key}/old", "rate"), med(f"{key}/new", "rate")
            per_1k = med(f"{key}/old", "updates_per_1k"), med(f"{key}/new", "updates_per_1k")
            upd = f"{per_1k[0]:.0f}, {per_1k[1]:.0f}"
            print(f"{key:28} {old:8.1f} {new:8.1f} {new / old:7.2f}x {upd:>20}")
    items = [n for n in results if " -" in n]
    if items:
        base = med("playground/sac-glam-her/new", "rate")
        print("\n2. each item's own gain (Playground SAC-GLAM + HER): new / new without it")
        for name in items:
            rate = med(name, "rate")
            print(f"{name.rsplit(' -', 1)[1]:14} {rate:8.1f} steps/CPU-s  gain {base / rate:5.2f}x")
    for name in ("floor/new", "floor/old"):
        if name in results:
            print(
                f"\n3. {name}: real update {med(name, 'real_ms'):.1f} ms, bare torch on its "
                f"shapes {med(name, 'bare_ms'):.1f} ms, ratio {med(name, 'ratio'):.2f} "
                f"(packed width {med(name, 'width'):.0f})"
            )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1024, help="env steps per measured window")
    parser.add_argument("--updates", type=int, default=24, help="updates timed for the floor")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tables", nargs="+", default=["loop", "items", "floor"],
                        choices=["loop", "items", "floor"])  # fmt: skip
    parser.add_argument("--envs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS),
                        help="environments of table 1")  # fmt: skip
    args = parser.parse_args(argv)
    results: dict[str, list[dict[str, float]]] = {}
    todo = jobs(args.tables, args.steps, args.updates, args.envs)
    for r in range(args.rounds):
        for kind, name, payload in todo:
            began = time.perf_counter()
            out = in_process((kind, payload))
            results.setdefault(name, []).append(out)
            shown = {k: round(v, 2) for k, v in out.items() if isinstance(v, float)}
            print(
                f"[round {r + 1}] {name}: {shown or out} ({time.perf_counter() - began:.0f}s)",
                flush=True,
            )
    report(results)


if __name__ == "__main__":
    main()
