"""A long run of the real service, watched for leaks: memory, descriptors, threads, disk.

Starts ``autotelic run`` (tiny model, embedded broker, a store small enough to
evict all the time), injects a goal over MQTT every sample, and samples once
per ``--sample-s``: resident memory, open file descriptors, threads, the store's
size on disk and its eviction count, env steps and updates. Writes
``soak.csv`` and ``soak.png`` to ``--out`` and prints the growth of each
resource over the second half of the run (what a leak would show; the first
half includes warm-up and the store filling up).

    .venv/bin/python bench/soak.py --minutes 60 --out docs/results/soak
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from autotelic.storage import EpisodeStore, RunLayout

FIELDS = [
    "minute", "rss_mib", "fds", "threads", "store_mib", "episodes_stored", "evicted_episodes",
    "env_steps", "updates",
]  # fmt: skip

CONFIG: dict[str, Any] = {
    "model": {"path": "tiny-causal"},
    "env": {"num_envs": 8},
    "algorithm": {
        "name": "sac",
        "batch_size": 16,
        "learning_starts": 64,
        "update_every": 8,
        "critic_hidden": [64, 64],
    },
    "replay": {"capacity_transitions": 2000},
    "metrics": {"port": 0},
    "checkpoint": {"interval_s": 120},
    "service": {"progress_interval_s": 60},
    "run": {"torch_threads": 1, "agent": "soak"},
}


def proc_status(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "Threads"):
            fields[key] = int(value.split()[0])
    return {
        "rss_kib": fields["VmRSS"],
        "threads": fields["Threads"],
        "fds": sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir()),
    }


def counters(metrics_url: str) -> dict[str, float]:
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    wanted = {
        "autotelic_env_steps_total": "env_steps",
        "autotelic_learner_updates_total": "updates",
    }
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            out[wanted[name]] = float(value)
    return out


def sample(minute: float, pid: int, layout: RunLayout, metrics_url: str) -> dict[str, Any]:
    status = proc_status(pid)
    with EpisodeStore(layout.store, readonly=True) as store:
        stats = store.stats()
    return {
        "minute": minute,
        "rss_mib": round(status["rss_kib"] / 1024, 1),
        "fds": status["fds"],
        "threads": status["threads"],
        "store_mib": round(stats.size_on_disk_bytes / 2**20, 2),
        "episodes_stored": stats.episodes,
        "evicted_episodes": stats.evicted_episodes,
        **{k: int(v) for k, v in counters(metrics_url).items()},
    }


def inject(run_dir: Path, goal: str) -> bool:
    """Inject ``goal`` with the CLI, as a person would; False if it was not accepted in time."""
    exe = Path(sys.executable).parent / "autotelic"
    try:
        done = subprocess.run(
            [str(exe), "inject", goal, "--run", str(run_dir), "--episodes", "2"],
            capture_output=True,
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired:
        print(f"inject {goal!r}: no answer within 120 s", flush=True)
        return False
    return done.returncode == 0


def growth(rows: list[dict[str, Any]], field: str) -> float:
    """Change of ``field`` per hour over the second half of the run (least squares)."""
    half = rows[len(rows) // 2 :]
    if len(half) < 2:
        return 0.0
    xs = [r["minute"] / 60 for r in half]
    ys = [float(r[field]) for r in half]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = ["rss_mib", "fds", "threads", "store_mib", "evicted_episodes", "env_steps"]
    fig, axes = plt.subplots(2, 3, figsize=(12, 6), constrained_layout=True)
    minutes = [r["minute"] for r in rows]
    for ax, field in zip(axes.flat, panels, strict=True):
        ax.plot(minutes, [r[field] for r in rows], marker=".")
        ax.set_title(field)
        ax.set_xlabel("minute")
    fig.suptitle("autotelic service soak")
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--sample-s", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=Path("bench/out/soak"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="autotelic-soak-"))
    layout = RunLayout(work / "run")
    config = {**CONFIG, "run": {**CONFIG["run"], "dir": str(layout.root)}}
    (work / "soak.yaml").write_text(yaml.safe_dump(config))
    exe = Path(sys.executable).parent / "autotelic"
    with (work / "service.log").open("ab") as log:
        proc = subprocess.Popen(
            [str(exe), "run", "-c", str(work / "soak.yaml")], stdout=log, stderr=log, cwd=work
        )
    rows: list[dict[str, Any]] = []
    out = (args.out / "soak.csv").open("w", newline="")
    writer = csv.DictWriter(out, FIELDS)
    writer.writeheader()
    try:
        while not layout.endpoints.is_file():
            if proc.poll() is not None:
                sys.exit(f"service exited with {proc.returncode}; see {work / 'service.log'}")
            time.sleep(0.5)
        metrics_url = json.loads(layout.endpoints.read_text())["metrics"]
        start = time.monotonic()
        goals = ["Grasp door", "Grow carrot", "Grasp cow", "Grow tomato"]
        while (elapsed := time.monotonic() - start) <= args.minutes * 60:
            minute = round(elapsed / 60, 2)
            rows.append(sample(minute, proc.pid, layout, metrics_url))
            writer.writerow(rows[-1])  # row by row: an interrupted soak keeps what it saw
            out.flush()
            print(json.dumps(rows[-1]), flush=True)
            inject(layout.root, goals[len(rows) % len(goals)])
            time.sleep(max(0.0, start + len(rows) * args.sample_s - time.monotonic()))
    finally:
        out.close()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    plot(rows, args.out / "soak.png")
    print(f"service exit code {code}; run directory {layout.root}")
    for field in ("rss_mib", "fds", "threads", "store_mib"):
        print(f"{field:>10}: {rows[0][field]} -> {rows[-1][field]}, "
              f"second-half trend {growth(rows, field):+.2f} per hour")  # fmt: skip
    evictions = rows[-1]["evicted_episodes"] - rows[0]["evicted_episodes"]
    print(f"evicted {evictions} episodes in {rows[-1]['minute']} minutes")


if __name__ == "__main__":
    main()
