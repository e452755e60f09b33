"""Learning curves from a run directory alone, as PNG files (``autotelic plot``).

For people without Grafana: everything is read from the CSV logs the service
appends to (``evaluations.csv``, ``progress.csv``; see
:mod:`autotelic.runtime.telemetry.run_logs`), so it works while the service runs and
after it stopped, on a copy of the directory as well. matplotlib is imported
only here, only when plotting.

Files written (into ``<run>/plots`` unless told otherwise):

- ``evaluation.png``: periodic-evaluation success per goal category against
  env steps, training and held-out goals, greedy and sampled, and the mean over
  categories (needs ``evaluations.csv``);
- ``learning_progress.png``: the curriculum's learning progress and training-
  episode success per category (needs ``progress.csv``, as the next two);
- ``losses.png``: critic and actor losses, entropy temperature, policy
  entropy, policy lag;
- ``throughput.png``: env steps and learner updates per second.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from autotelic.files import scratch_beside
from autotelic.runtime.extras import require_plotting
from autotelic.runtime.telemetry.run_logs import CURRICULUM_COLUMNS, read_rows, to_float
from autotelic.storage import RunLayout

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

SPLIT_COLOURS = {"train": "tab:blue", "test": "tab:orange"}
SPLIT_NAMES = {"train": "training goals", "test": "held-out goals"}
ACTING_STYLES = {"greedy": "-", "sampled": "--"}
DPI = 100

Row = dict[str, str]


def plot_run(run_dir: Path, out: Path | None = None) -> list[Path]:
    """Write the PNG files of ``run_dir`` (into ``out``, default ``<run>/plots``).

    Raises FileNotFoundError when ``run_dir`` is not a run directory or has
    neither evaluations nor progress rows yet. Returns the files written.
    """
    layout = RunLayout(run_dir)
    layout.require_run()
    evaluations = read_rows(layout.evaluations)
    progress = read_rows(layout.progress)
    if not evaluations and not progress:
        raise FileNotFoundError(
            f"nothing to plot in {layout.root} yet: no rows in {layout.EVALUATIONS} or "
            f"{layout.PROGRESS} (the service appends progress every "
            "service.progress_interval_s and evaluations every eval.interval_env_steps)"
        )
    require_plotting()
    import matplotlib

    matplotlib.use("Agg")
    target = out if out is not None else layout.plots
    target.mkdir(parents=True, exist_ok=True)
    written = []
    if evaluations:
        written.append(_save(_evaluation_figure(evaluations), target / "evaluation.png"))
    if progress:
        written.append(_save(_curriculum_figure(progress), target / "learning_progress.png"))
        written.append(_save(_losses_figure(progress), target / "losses.png"))
        written.append(_save(_throughput_figure(progress), target / "throughput.png"))
    return written


def plot_notes(run_dir: Path) -> list[str]:
    """Why :func:`plot_run` draws no figure of a kind, one line each (empty when it draws
    them all): the first evaluation point comes only after ``eval.interval_env_steps``
    training steps plus its own budgeted steps, which a first session may not reach."""
    layout = RunLayout(run_dir)
    progress = read_rows(layout.progress)
    notes = []
    if not read_rows(layout.evaluations):
        notes.append(f"no evaluation.png: {_why_no_evaluation(layout, progress)}")
    if not progress:
        notes.append(
            f"no learning_progress.png, losses.png, throughput.png: {layout.PROGRESS} has no "
            "rows (the service appends one every service.progress_interval_s)"
        )
    return notes


def _why_no_evaluation(layout: RunLayout, progress: Sequence[Row]) -> str:
    import yaml

    try:
        config = yaml.safe_load(layout.config.read_text()) or {}
    except (OSError, yaml.YAMLError):
        config = {}
    evaluation = config.get("eval") or {}
    if evaluation.get("enabled") is False:
        return "periodic evaluation is off (eval.enabled: false)"
    steps = to_float(progress[-1].get("env_steps")) if progress else math.nan
    at = f"the run is at {int(steps):,}" if math.isfinite(steps) else "no progress row yet"
    interval = evaluation.get("interval_env_steps")
    due = (
        f"the first is due at {interval:,} env steps (eval.interval_env_steps)"
        if interval
        else "the first is due eval.interval_s after the start"
    )
    fraction = evaluation.get("max_cost_fraction", 0.1)
    if not _running(layout):
        stopped = f"at {int(steps):,} env steps" if math.isfinite(steps) else "early"
        return (
            f"the run stopped {stopped} before its first evaluation finished "
            f"({layout.EVALUATIONS} has no rows; {due}): `autotelic eval --run {layout.root}` "
            "measures its latest checkpoint now, and a restart goes on towards the first"
        )
    return (
        f"no periodic evaluation has finished yet ({layout.EVALUATIONS} has no rows): {due}, "
        f"{at}, and an evaluation takes at most {fraction:g} of the training env steps "
        "(eval.max_cost_fraction), so it finishes later"
    )


def _running(layout: RunLayout) -> bool:
    """Whether the service that last published this run's endpoints is still alive (its
    process id answers), i.e. whether an evaluation may still finish."""
    try:
        pid = layout.read_endpoints().get("pid")
    except (OSError, ValueError):
        return False
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _save(figure: Figure, path: Path) -> Path:
    """Write atomically: a viewer never sees half a PNG."""
    import matplotlib.pyplot as plt

    try:
        with scratch_beside(path) as scratch:
            figure.savefig(scratch, dpi=DPI, format="png")
            scratch.replace(path)
    finally:
        plt.close(figure)
    return path


def _grid(n: int, title: str) -> tuple[Figure, list[Axes]]:
    import matplotlib.pyplot as plt

    cols = min(3, n)
    rows = math.ceil(n / cols)
    figure, axes = plt.subplots(
        rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False, constrained_layout=True
    )
    figure.suptitle(title)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)
    return figure, flat[:n]


# -- evaluation -----------------------------------------------------------------------------------


def _evaluation_figure(rows: Sequence[Row]) -> Figure:
    """Success per category (one panel each, plus their mean) against env steps."""
    # (category, split, acting) -> {evaluation: (env_steps, success)}
    curves: dict[tuple[str, str, str], dict[int, tuple[float, float]]] = defaultdict(dict)
    categories: list[str] = []
    for r in rows:
        index, steps, success = (to_float(r.get(k)) for k in ("evaluation", "env_steps", "success"))
        if not (math.isfinite(index) and math.isfinite(steps) and math.isfinite(success)):
            continue
        category = r.get("category", "")
        if category not in categories:
            categories.append(category)
        curves[(category, r.get("split", ""), r.get("acting", ""))][int(index)] = (steps, success)
    # (split, acting) -> {evaluation: (env_steps, [success of each category])}
    mean: dict[tuple[str, str], dict[int, tuple[float, list[float]]]] = defaultdict(dict)
    for (_, split, acting), points in curves.items():
        for index, (steps, success) in points.items():
            mean[(split, acting)].setdefault(index, (steps, []))[1].append(success)
    panels = [*categories, "mean over categories"]
    figure, axes = _grid(len(panels), "Periodic evaluation: success on fixed episode sets")
    for ax, panel in zip(axes, panels, strict=True):
        for split, colour in SPLIT_COLOURS.items():
            for acting, style in ACTING_STYLES.items():
                if panel in categories:
                    line = sorted(curves.get((panel, split, acting), {}).values())
                else:
                    per_eval = mean.get((split, acting), {}).values()
                    line = sorted((steps, sum(s) / len(s)) for steps, s in per_eval)
                if not line:
                    continue
                ax.plot(
                    [p[0] for p in line],
                    [p[1] for p in line],
                    style,
                    marker="o",
                    markersize=3,
                    color=colour,
                    label=f"{SPLIT_NAMES[split]}, {acting}",
                )
        ax.set_title(panel)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("training env steps")
        ax.set_ylabel("success")
        ax.grid(alpha=0.3)
    handles, labels = axes[-1].get_legend_handles_labels()
    if handles:
        axes[-1].legend(handles, labels, fontsize="small", loc="best")
    return figure


# -- progress -------------------------------------------------------------------------------------


def _series(rows: Sequence[Row], column: str) -> tuple[list[float], list[float]]:
    """(env steps, value) of the rows where ``column`` holds a number."""
    xs, ys = [], []
    for r in rows:
        x, y = to_float(r.get("env_steps")), to_float(r.get(column))
        if math.isfinite(x) and math.isfinite(y):
            xs.append(x)
            ys.append(y)
    return xs, ys


def _no_data(ax: Axes) -> None:
    ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes)


def _curriculum_figure(rows: Sequence[Row]) -> Figure:
    columns = list(rows[-1].keys())
    figure, axes = _grid(2, "Curriculum (training episodes, not evaluation)")
    titles = {
        "lp": "learning progress per category",
        "success_rate": "training-episode success (curriculum window)",
    }
    for ax, prefix in zip(axes, ("lp", "success_rate"), strict=True):
        assert prefix in CURRICULUM_COLUMNS
        plotted = False
        for column in columns:
            if column.startswith(prefix + ":"):
                xs, ys = _series(rows, column)
                if xs:
                    ax.plot(xs, ys, label=column.split(":", 1)[1])
                    plotted = True
        if plotted:
            ax.legend(fontsize="small", loc="best")
        else:
            _no_data(ax)
        ax.set_title(titles[prefix])
        ax.set_xlabel("training env steps")
        ax.grid(alpha=0.3)
    return figure


def _panels(rows: Sequence[Row], title: str, panels: Sequence[tuple[str, str]]) -> Figure:
    figure, axes = _grid(len(panels), title)
    for ax, (column, label) in zip(axes, panels, strict=True):
        xs, ys = _series(rows, column)
        if xs:
            ax.plot(xs, ys, marker="." if len(xs) < 50 else None)
        else:
            _no_data(ax)
        ax.set_title(label)
        ax.set_xlabel("training env steps")
        ax.grid(alpha=0.3)
    return figure


def _losses_figure(rows: Sequence[Row]) -> Figure:
    return _panels(
        rows,
        "Learner (last update at each progress interval)",
        [
            ("critic_loss", "critic (or value) loss"),
            ("actor_loss", "actor (or policy) loss"),
            ("alpha", "entropy temperature (alpha)"),
            ("entropy", "policy entropy (nats)"),
            ("policy_lag", "policy lag (versions)"),
        ],
    )


def _throughput_figure(rows: Sequence[Row]) -> Figure:
    return _panels(
        rows,
        "Throughput",
        [
            ("env_steps_per_s", "training env steps per second"),
            ("updates_per_s", "learner updates per second"),
            ("replay_transitions", "transitions in the replay store"),
        ],
    )
