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
   packing, masks built once per width, garbage collector paused in updates, one
   packing for the online and the target twin's pass over the same next states,
   hindsight events listed once per episode; the prompt cache's item includes
   tokenising a batch's new prompts in one call).
3. **The floor**: a real SAC update against bare torch doing the same work on
   the same shapes (the same model on random token ids), median of ``--updates``
   updates each, in two measures: the update's math (the LLM's passes, the LM
   head's log-softmax over the candidate rows, Q and target heads, clips,
   optimizers, Polyak averages) and the LLM's passes alone (no-grad passes over
   next states, the forward and backward passes over states, its optimizer step).

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
ITEMS = ("words", "prompt_cache", "packing", "masks", "gc", "reuse_packing", "her_events")
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
    if "reuse_packing" in variant.off:
        learner: Any = agent.learner
        learner.scorer.reuse_packing = False
    sampler = getattr(agent.schedule, "sampler", None)  # on-policy schedules have none
    if "her_events" in variant.off and sampler is not None:
        sampler.keep_events = False
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
    """Median seconds of a real SAC update and of two bare torch loops on its shapes.

    Every update runs with the garbage collector paused, as the learner loop runs
    them (``gc`` off undoes that for the real one, as in the loop). ``body`` is the
    LLM's passes alone; ``math`` adds what any implementation of the update computes
    on the same shapes: the LM head's log-softmax over the candidate rows, the Q heads
    over every candidate and the target heads over the next ones, the gradient clips,
    the heads' optimizer and both Polyak averages.
    """
    from autotelic.learners.scorer import pack_states
    from autotelic.runtime.loop.learner_loop import gc_paused

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
            pause = "gc" not in off
            real = []
            for batch in batches:
                with gc_paused(pause):
                    began = time.perf_counter()
                    learner.update(batch)
                    real.append(time.perf_counter() - began)
            bare = BareUpdate(learner)
            shapes = [update_shapes(learner, batch, pack_states) for batch in batches]
            body, math = [], []
            for shape in shapes:
                with gc_paused():
                    body.append(bare.run(shape, math=False))
                with gc_paused():
                    math.append(bare.run(shape, math=True))
            width = statistics.median(s.states[1] for s in shapes)
        finally:
            agent.close()
    real_s = statistics.median(real)
    body_s, math_s = statistics.median(body), statistics.median(math)
    return {
        "real_ms": 1000 * real_s,
        "body_ms": 1000 * body_s,
        "math_ms": 1000 * math_s,
        "ratio_body": real_s / body_s,
        "ratio": real_s / math_s,
        "width": float(width),
    }


@dataclass(frozen=True)
class Shapes:
    """What one update computes: packed [B, T] of states and of live next states, and
    the rows its heads read (LM-head rows, candidates) in each."""

    states: tuple[int, int]
    nexts: tuple[int, int]
    lm_rows: int
    candidates: int
    next_lm_rows: int
    next_candidates: int


def update_shapes(learner: Any, batch: Any, pack: Callable[..., Any]) -> Shapes:
    """The shapes the real update computes on ``batch``."""
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
    states = pack(encoder.encode(prompts, list(batch.candidates)), "right", 0)
    nexts = pack(encoder.encode(next_prompts, [batch.next_candidates[i] for i in live]), "right", 0)

    def shape(packed: Any) -> tuple[int, int]:
        return int(packed.ids.shape[0]), int(packed.ids.shape[1])

    return Shapes(
        states=shape(states),
        nexts=shape(nexts),
        lm_rows=len(states.rows.lm_rows),
        candidates=len(states.rows.feature_rows),
        next_lm_rows=len(nexts.rows.lm_rows),
        next_candidates=len(nexts.rows.feature_rows),
    )


class BareUpdate:
    """A SAC update's passes in plain torch on random token ids: fresh copies of the
    learner's LLM (with its target twin) and Q heads, the same optimizers."""

    def __init__(self, learner: Any) -> None:
        import copy

        import torch

        self.hf = copy.deepcopy(learner.model.hf).requires_grad_(True)
        self.params = list(self.hf.parameters())
        self.twin = (
            copy.deepcopy(self.hf).requires_grad_(False) if learner.twin is not None else None
        )
        self.critic = copy.deepcopy(learner.critic)
        self.critic_target = copy.deepcopy(learner.critic_target)
        self.optimizer = torch.optim.Adam(self.params, lr=1e-4)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=1e-4)
        self.passes = backward_passes(learner)

    def body(self, model: Any, shape: tuple[int, int]) -> Any:
        import torch

        b, t = shape
        ids = torch.randint(0, self.hf.config.vocab_size, (b, t))
        mask = torch.zeros(b, 1, t, t)
        pos = torch.arange(t).expand(b, t)
        hidden = model.base_model(
            input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False
        ).last_hidden_state
        return hidden.reshape(b * t, -1)

    def run(self, s: Shapes, math: bool) -> float:
        """Seconds of one update: ``math`` False is the LLM's passes and its optimizer
        step alone (no-grad passes over next states, twice with a twin; a forward over
        states; ``passes`` backward passes)."""
        import torch

        began = time.perf_counter()
        with torch.no_grad():
            if s.nexts[0]:
                nxt = self.body(self.hf, s.nexts)
                target = self.body(self.twin, s.nexts) if self.twin is not None else nxt
                if math:
                    self.log_probs(nxt, s.next_lm_rows)
                    self.critic_target(rows(target, s.next_candidates))
        hidden = self.body(self.hf, s.states)
        if math:
            log_probs = self.log_probs(hidden, s.lm_rows)
            q = self.critic(rows(hidden, s.candidates))
            actor_loss = log_probs.mean() + q.detach().mean()
            critic_loss = q.square().mean()
        else:
            actor_loss = critic_loss = hidden.square().mean()
        if self.passes == 2:
            grads = torch.autograd.grad(
                actor_loss, self.params, retain_graph=True, allow_unused=True
            )
            critic_loss.backward()
            for p, g in zip(self.params, grads, strict=True):
                if g is not None:
                    p.grad = g if p.grad is None else p.grad + g
        else:
            (actor_loss + critic_loss).backward()
        if math:
            torch.nn.utils.clip_grad_norm_(self.critic.parameters(), 1.0)
            torch.nn.utils.clip_grad_norm_(self.params, 1.0)
            self.critic_opt.step()
            self.critic_opt.zero_grad(set_to_none=True)
            with torch.no_grad():
                torch._foreach_lerp_(
                    list(self.critic_target.parameters()), list(self.critic.parameters()), 0.01
                )
                if self.twin is not None:
                    torch._foreach_lerp_(list(self.twin.parameters()), self.params, 0.01)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - began

    def log_probs(self, hidden: Any, count: int) -> Any:
        import torch

        head = self.hf.get_output_embeddings()
        return torch.log_softmax(head(rows(hidden, count)), dim=-1)


def rows(flat: Any, count: int) -> Any:
    """``count`` rows of a flat [N, H] hidden state, as the heads gather theirs."""
    import torch

    return flat[torch.randint(0, flat.shape[0], (count,))]


def backward_passes(learner: Any) -> int:
    cfg = learner.config
    per_loss = getattr(cfg, "grad_clip", "joint") == "per_loss" and getattr(
        cfg, "critic_trains_llm", True
    )
    return 2 if per_loss else 1


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
                f"\n3. {name}: real update {med(name, 'real_ms'):.1f} ms; bare torch on its "
                f"shapes, the update's math {med(name, 'math_ms'):.1f} ms (ratio "
                f"{med(name, 'ratio'):.2f}), the LLM's passes alone {med(name, 'body_ms'):.1f} ms "
                f"(ratio {med(name, 'ratio_body'):.2f}); packed width {med(name, 'width'):.0f}"
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
