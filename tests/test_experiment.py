"""A short learning experiment end to end (slow): the CSV is complete and learning happened."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_experiment(
    method: str,
    out: Path,
    budget: int,
    every: int,
    config: str = "cpu.yaml",
    episodes: int = 2,
    seed: int = 0,
) -> list[dict[str, str]]:
    subprocess.run(
        [sys.executable, str(ROOT / "bench/experiment.py"), "--config",
         str(ROOT / "bench/configs" / config), "--method", method, "--seed", str(seed),
         "--budget", str(budget), "--eval-every", str(every), "--out", str(out),
         "--eval-episodes", str(episodes)],
        check=True, capture_output=True, text=True, timeout=2400,
    )  # fmt: skip
    with (out / f"{method}-s{seed}.csv").open() as f:
        return list(csv.DictReader(f))


def train_success(table: list[dict[str, str]], step: int, acting: str, category: str) -> float:
    """The one success figure of ``category`` on training goals at ``step``."""
    (value,) = [
        float(r["success"])
        for r in table
        if int(r["env_steps"]) == step and r["split"] == "train"
        and r["acting"] == acting and r["category"] == category
    ]  # fmt: skip
    return value


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_a_short_sac_her_run_writes_a_complete_csv_and_beats_the_random_policy(
    tmp_path: Path,
) -> None:
    rows = run_experiment("sac-glam-her", tmp_path, budget=10_000, every=5_000)
    random_rows = run_experiment("random", tmp_path, budget=1, every=1)

    # Complete: every evaluation point has both splits, both ways of acting, every
    # category of the configured subset, and the overall figure.
    points = sorted({int(r["env_steps"]) for r in rows})
    assert points[0] == 0 and points[-1] >= 10_000 and len(points) == 3
    cells = defaultdict(set)
    for r in rows:
        cells[int(r["env_steps"])].add((r["split"], r["acting"], r["category"]))
        assert 0.0 <= float(r["success"]) <= 1.0 and int(r["episodes"]) > 0
    expected = {
        (split, acting, category)
        for split in ("train", "test")
        for acting in ("greedy", "sampled")
        for category in ("grasp", "grow_plant", "all")
    }
    assert all(cells[p] == expected for p in points)
    assert [int(r["updates"]) for r in rows][-1] > 1000

    def grasp(table: list[dict[str, str]], step: int, acting: str) -> float:
        return train_success(table, step, acting, "grasp")

    baseline = grasp(random_rows, 0, "sampled")  # uniform: greedy and sampled alike
    learned = grasp(rows, points[-1], "greedy")
    assert learned > baseline + 0.15, (learned, baseline)
    assert learned > grasp(rows, 0, "greedy") + 0.15


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_sac_her_learns_grow_plant_with_the_defaults(tmp_path: Path) -> None:
    """The harder category: Grow plant needs water grasped, carried to a seed and
    released onto it (four steps, of which a uniform policy completes under a tenth).
    Seed 1 of the committed ablations' default, to 12,000 steps, as the suite runs it."""
    rows = run_experiment("sac-glam-her", tmp_path, budget=12_000, every=2_000, seed=1)
    random_rows = run_experiment("random", tmp_path, budget=1, every=1, seed=1)

    def grow(table: list[dict[str, str]], step: int, acting: str) -> float:
        return train_success(table, step, acting, "grow_plant")

    end = max(int(r["env_steps"]) for r in rows)
    assert end >= 12_000
    baseline = grow(random_rows, 0, "sampled")
    assert grow(rows, 0, "greedy") <= baseline + 0.1  # nothing known at the start
    learned = max(grow(rows, step, "greedy") for step in (end - 2_000, end))
    assert learned >= 0.5, (learned, baseline)
    assert learned > baseline + 0.4


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_a_short_babyai_run_stores_its_episodes_with_achieved_goals_for_hindsight(
    tmp_path: Path,
) -> None:
    """BabyAI-Text go-to and pick-up with the tiny model (bench/configs/babyai-cpu.yaml,
    gamma 0.99), the budget of docs/results.md. Whether 4,000 steps learn differs by seed
    there (greedy go-to 0.00-0.30), so this asserts what every seed must do: the run
    completes, its CSV is whole, and the store holds BabyAI episodes whose steps achieved
    other goals than the one pursued (a quarter or more), which is what hindsight
    relabeling needs."""
    rows = run_experiment("sac-glam-her", tmp_path, 4000, 4000, "babyai-cpu.yaml", 2)
    points = sorted({int(r["env_steps"]) for r in rows})
    assert points == [0, 4000]
    categories = {r["category"] for r in rows}
    assert categories == {"go_to", "pick_up", "all"}
    assert int(max(rows, key=lambda r: int(r["env_steps"]))["updates"]) > 300

    from autotelic.storage import EpisodeStore

    with EpisodeStore(tmp_path / "runs" / "sac-glam-her-s0" / "store", readonly=True) as store:
        episodes = list(store.iter_episodes())
    assert len(episodes) > 250 and {e.env_id for e in episodes} == {"autotelic/BabyAIText-v0"}
    relabelable = [
        e for e in episodes if any(g != e.goal for s in e.steps for g in s.achieved_goals)
    ]
    # Other goals were achieved, so HER has data: 129 of 339 episodes for seed 0 (go-to and
    # pick-up; a go-to-only run had more than half).
    assert len(relabelable) > len(episodes) // 4


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_run_killed_midway_resumes_from_its_last_evaluation_at_the_same_update_ratio(
    tmp_path: Path,
) -> None:
    """kill -9 after the first evaluation's checkpoint, then the same command again: the
    CSV keeps the rows before the cut, goes on to the budget and the updates done keep
    1 per update_every env steps past learning_starts (the updates lost with the cut are
    redone, the episodes stored after the checkpoint kept)."""
    cmd = [
        sys.executable, str(ROOT / "bench/experiment.py"), "--config",
        str(ROOT / "bench/configs/cpu.yaml"), "--method", "sac-glam-her", "--seed", "0",
        "--budget", "1200", "--eval-every", "400", "--out", str(tmp_path),
        "--eval-episodes", "1",
    ]  # fmt: skip
    checkpoints = tmp_path / "runs" / "sac-glam-her-s0" / "checkpoints"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while not any(p.name.endswith("400") for p in checkpoints.glob("ckpt-*")):
            assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint at 400"
            time.sleep(0.2)
        # Collect well past the checkpoint (its episodes are kept), so that forgiving the
        # updates lost with the cut instead of redoing them would show below.
        while stored_transitions(checkpoints.parent / "store") < 640:
            assert proc.poll() is None and time.monotonic() < deadline, "no steps after 400"
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait()
    assert not (tmp_path / "sac-glam-her-s0.done").exists()

    resumed = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    assert "resuming from the checkpoint at 400 steps" in resumed.stdout
    assert (tmp_path / "sac-glam-her-s0.done").exists()
    with (tmp_path / "sac-glam-her-s0.csv").open() as f:
        rows = list(csv.DictReader(f))
    points = sorted({int(r["env_steps"]) for r in rows})
    assert points[:2] == [0, 400] and len(points) == 4 and points[-1] >= 1200, points
    assert all(len([r for r in rows if int(r["env_steps"]) == p]) == 12 for p in points)
    seconds = [float(r["train_seconds"]) for r in rows]
    assert seconds == sorted(seconds)  # train time carries on from the cut
    last = max(rows, key=lambda r: int(r["env_steps"]))
    steps, updates = int(last["env_steps"]), int(last["updates"])
    # 1 per 8 stored transitions past learning_starts 256 (episodes still running are not
    # stored yet: a few updates short of the env steps' count); forgiving the lost ones
    # would be 30 or more short.
    owed = (steps - 256) // 8 + 1
    assert owed - 12 <= updates <= owed, (steps, updates)


def stored_transitions(path: Path) -> int:
    from autotelic.storage import EpisodeStore

    if not (path / "data.mdb").exists():
        return 0
    with EpisodeStore(path, readonly=True) as store:
        return store.num_transitions
