"""The LMDB episode store against a plain in-memory list, side by side in one run.

Prints, as medians over repeats (this machine is shared and noisy: read the
ratios, not the absolute times):

* episodes inserted per second: LMDB durable (``put``, one fsync per episode),
  LMDB durable with ``put_many`` of 32 (one fsync per collector step of 32 envs),
  LMDB ``durable=False``, and the in-memory list; also with the cost of building
  each record (``EpisodeBuilder``), which the collector pays with either store;
* batch-256 HER sampling latency (future, n=3), LMDB against the list;
* resident memory of a fresh process holding 10k and 200k transitions and
  sampling from them: the LMDB replay lives on disk (its pages are the OS file
  cache, ``RssFile``), the list lives in the heap (``RssAnon``).

    .venv/bin/python bench/replay.py [--quick]

Episodes are real Playground-Text episodes of a seeded random policy.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autotelic.envs.playground import ENV_ID, PlaygroundTextEnv, achieved
from autotelic.storage import (
    Episode,
    EpisodeBuilder,
    EpisodeStore,
    ReplaySampler,
)
from autotelic.testing.memory_store import MemoryEpisodeStore

BATCH = 256
COLLECTOR_BATCH = 32


def generate(count: int, seed: int) -> tuple[list[Episode], list[list[tuple[Any, ...]]]]:
    """``count`` real episodes, and for each the raw calls that built it."""
    env = PlaygroundTextEnv()
    episodes, raws = [], []
    for k in range(count):
        obs, info = env.reset(seed=seed + k)
        rng = random.Random(seed + k)
        start = (info, obs)
        calls: list[tuple[Any, ...]] = []
        done = False
        while not done:
            action = rng.randrange(len(info["admissible_actions"]))
            obs, r, terminated, truncated, info = env.step(action)
            calls.append(
                (
                    action,
                    r,
                    terminated,
                    truncated,
                    info["achieved_goals"],
                    0,
                    obs,
                    info["admissible_actions"],
                )
            )
            done = terminated or truncated
        raws.append([start, *calls])
        episodes.append(build(raws[-1]))
    return episodes, raws


def build(raw: list[tuple[Any, ...]]) -> Episode:
    (info, obs), *calls = raw
    builder = EpisodeBuilder(
        goal=info["goal"],
        goal_category=info["goal_category"],
        goal_source="configured",
        env_id=ENV_ID,
        scene_seed=info["scene_seed"],
        observation=obs,
        admissible_actions=info["admissible_actions"],
    )
    for call in calls:
        builder.add_step(*call)
    return builder.build()


def rate(run: Callable[[], int]) -> float:
    """Items per second of one ``run`` (which returns how many items it did)."""
    gc.collect()
    start = time.perf_counter()
    done = run()
    return done / (time.perf_counter() - start)


def bench_insert(episodes: list[Episode], raws: list[Any], repeats: int, workdir: Path) -> None:
    counter = iter(range(10**9))

    def lmdb_run(durable: bool, batch: int, with_build: bool) -> Callable[[], int]:
        def run() -> int:
            path = workdir / f"insert-{next(counter)}"
            with EpisodeStore(path, capacity_transitions=10**7, durable=durable) as store:
                for i in range(0, len(episodes), batch):
                    chunk = (
                        [build(r) for r in raws[i : i + batch]]
                        if with_build
                        else episodes[i : i + batch]
                    )
                    if batch == 1:
                        store.put(chunk[0])
                    else:
                        store.put_many(chunk)
            return len(episodes)

        return run

    def memory_run(with_build: bool) -> Callable[[], int]:
        def run() -> int:
            store = MemoryEpisodeStore(capacity_transitions=10**7)
            for i, episode in enumerate(episodes):
                store.put(build(raws[i]) if with_build else episode)
            return len(episodes)

        return run

    variants: dict[str, tuple[Callable[[], int], Callable[[], int]]] = {
        "in-memory list": (memory_run(False), memory_run(True)),
        "LMDB durable, put": (lmdb_run(True, 1, False), lmdb_run(True, 1, True)),
        f"LMDB durable, put_many({COLLECTOR_BATCH})": (
            lmdb_run(True, COLLECTOR_BATCH, False),
            lmdb_run(True, COLLECTOR_BATCH, True),
        ),
        "LMDB durable=False, put": (lmdb_run(False, 1, False), lmdb_run(False, 1, True)),
        f"LMDB durable=False, put_many({COLLECTOR_BATCH})": (
            lmdb_run(False, COLLECTOR_BATCH, False),
            lmdb_run(False, COLLECTOR_BATCH, True),
        ),
    }
    rates: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in variants}
    for _ in range(repeats):  # interleaved, so a burst of load hits every variant alike
        for name, (store_only, with_build) in variants.items():
            rates[name][0].append(rate(store_only))
            rates[name][1].append(rate(with_build))
    print(f"\n== insert: {len(episodes)} episodes, median of {repeats} (episodes/s)")
    print(f"{'':34s}{'store only':>14s}{'list/LMDB':>11s}{'build+store':>14s}{'list/LMDB':>11s}")
    base, base_built = (statistics.median(v) for v in rates["in-memory list"])
    for name, (plain, built) in rates.items():
        r, b = statistics.median(plain), statistics.median(built)
        print(f"{name:34s}{r:14,.0f}{base / r:11.1f}{b:14,.0f}{base_built / b:11.1f}")


def bench_sample(episodes: list[Episode], repeats: int, batches: int, workdir: Path) -> None:
    memory = MemoryEpisodeStore(capacity_transitions=10**7)
    memory.put_many(episodes)
    with EpisodeStore(workdir / "sample", capacity_transitions=10**7, durable=False) as store:
        store.put_many(episodes)
        samplers = {
            "in-memory list": ReplaySampler(memory, predicate=achieved, rng=0),
            "LMDB": ReplaySampler(store, predicate=achieved, rng=0),
        }
        times: dict[str, list[float]] = {k: [] for k in samplers}
        for _ in range(repeats):
            for name, sampler in samplers.items():  # interleaved: both see the same load
                gc.collect()
                start = time.perf_counter()
                for _ in range(batches):
                    sampler.sample(BATCH)
                times[name].append((time.perf_counter() - start) / batches)
    transitions = memory.num_transitions
    print(
        f"\n== HER sampling: batch {BATCH}, future, n=3, her_ratio 0.8, "
        f"{transitions:,} transitions; median of {repeats} x {batches} batches"
    )
    base = statistics.median(times["in-memory list"])
    for name, values in times.items():
        ms = statistics.median(values) * 1e3
        print(f"{name:34s}{ms:10.2f} ms/batch{statistics.median(values) / base:8.2f}x")


def rss() -> dict[str, int]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) // 1024
    return fields


def child(kind: str, transitions: int, path: str, batches: int) -> None:
    """Fresh process: hold ``transitions`` (LMDB: already on disk) and sample from them."""
    if kind == "fill":
        with EpisodeStore(path, capacity_transitions=10**7, durable=False) as store:
            seed = 0
            while store.num_transitions < transitions:
                episodes, _ = generate(500, seed)
                seed += 500
                store.put_many(episodes)
            store.sync()
        return
    before = rss()
    source: EpisodeStore | MemoryEpisodeStore
    if kind == "lmdb":
        source = EpisodeStore(path, readonly=True)
    else:
        source = MemoryEpisodeStore(capacity_transitions=10**7)
        seed = 0
        while source.num_transitions < transitions:
            episodes, _ = generate(500, seed)
            seed += 500
            source.put_many(episodes)
            del episodes
    held = source.num_transitions
    sampler = ReplaySampler(source, predicate=achieved, rng=1)
    for _ in range(batches):
        sampler.sample(BATCH)
    gc.collect()
    after = rss()
    print(json.dumps({"held": held, "before": before, "after": after}))


def bench_rss(sizes: list[int], batches: int, workdir: Path) -> None:
    print(
        f"\n== resident memory (MiB) of a fresh process holding N transitions after "
        f"{batches} sampled batches"
    )
    print(f"{'':24s}{'N':>9s}{'VmRSS':>8s}{'RssAnon':>9s}{'RssFile':>9s}{'anon growth':>13s}")
    rows: dict[str, list[dict[str, Any]]] = {"lmdb": [], "list": []}
    for size in sizes:
        path = str(workdir / f"rss-{size}")
        run_child("fill", size, path, batches)
        for kind in ("lmdb", "list"):
            rows[kind].append(run_child(kind, size, path, batches))
    for kind, label in (("lmdb", "LMDB (readonly open)"), ("list", "in-memory list")):
        for row in rows[kind]:
            a = row["after"]
            growth = a["RssAnon"] - row["before"]["RssAnon"]
            print(
                f"{label:24s}{row['held']:9,d}{a['VmRSS']:8d}{a['RssAnon']:9d}"
                f"{a['RssFile']:9d}{growth:13d}"
            )
    for kind, label in (("lmdb", "LMDB"), ("list", "in-memory list")):
        small, large = rows[kind][0]["after"], rows[kind][-1]["after"]
        print(
            f"{label}: RssAnon {large['RssAnon'] / max(small['RssAnon'], 1):.2f}x and "
            f"VmRSS {large['VmRSS'] / max(small['VmRSS'], 1):.2f}x from "
            f"{sizes[0]:,} to {sizes[-1]:,} transitions"
        )


def run_child(kind: str, size: int, path: str, batches: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(size), path, str(batches)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout) if out.stdout.strip() else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=2000, help="episodes per insert run")
    parser.add_argument("--sample-episodes", type=int, default=6000, help="episodes sampled from")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, default=20, help="batches per sampling timing")
    parser.add_argument("--rss-sizes", type=int, nargs="+", default=[10_000, 200_000])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke test")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, size, path, batches = args.child
        child(kind, int(size), path, int(batches))
        return
    if args.quick:
        args.episodes, args.sample_episodes, args.repeats, args.batches = 200, 500, 3, 5
        args.rss_sizes = [2_000, 10_000]
    print("LMDB store vs in-memory list (shared, noisy machine: compare the ratios)")
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        workdir = Path(tmp)
        episodes, raws = generate(max(args.episodes, args.sample_episodes), seed=10_000)
        bench_insert(episodes[: args.episodes], raws[: args.episodes], args.repeats, workdir)
        bench_sample(episodes[: args.sample_episodes], args.repeats, args.batches, workdir)
        del episodes, raws
        bench_rss(args.rss_sizes, args.batches, workdir)


if __name__ == "__main__":
    main()
