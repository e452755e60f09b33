"""The soft-optimal policy of discrete SAC on a small Grasp-like task, per time-limit mode.

SAC does not learn "the optimal policy": it learns the fixed point of soft policy
iteration, pi(a|s) ∝ exp(Q(s, a) / alpha) with
V(s) = sum_a pi(a|s) [Q(s, a) - alpha log pi(a|s)] = alpha log sum_a exp(Q(s, a) / alpha).
Whether that fixed point reaches the goal depends on alpha, gamma and how a time
limit enters the targets. This module
computes it exactly on a task shaped like Playground-Text's ``Grasp <obj>``:

* ``start`` (standing on nothing useful): ``Go to obj`` reaches ``on obj``; the
  three other ``Go to ...`` actions lead to another object (``start`` again);
* ``on obj``: ``Grasp`` achieves the goal (reward 1, terminated); the three
  ``Go to ...`` actions leave the object (back to ``start``);
* horizon 3: the plan takes 2 steps, one step of slack (Playground's 1.5x).

Three ways of treating the time limit, one solver each:

* ``bootstrap``: the cut episode bootstraps from its last state and the state
  does not show the time, so the critic's fixed point is the *infinite-horizon*
  discounted soft value. Wandering forever is worth about
  alpha * log 4 / (1 - gamma), which at gamma 0.99 and alpha 0.05 is 6.9: more
  than the goal's reward of 1.
* ``terminal``: the cut counts as terminal but the state does not show the time
  (the authors' LittleZoo): non-Markov; the tabular TD fixed point bootstraps
  (s, a) with the probability, under the policy's own visits, that s was not
  reached on the last step. Solved by iterating policy -> visits -> soft Q.
* ``observed``: the state shows the steps left and the cut is terminal: an exact
  finite-horizon soft Bellman recursion (backward induction).

``python -m tests.test_learners_sac_soft_optimal`` prints the table of docs/learning.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from autotelic.core.time_limit import DEFAULT_TIME_LIMIT, TIME_LIMITS, TimeLimit
from autotelic.learners.sac import SACConfig

ACTIONS = 4
GOAL_ACTION = 0
"""Index of the goal-path action in every state (``Go to obj``, then ``Grasp``)."""


@dataclass(frozen=True)
class Task:
    """A deterministic goal-reaching task: start in state 0, reach the goal within ``horizon``.

    ``nxt[s, a]`` is the next state, ``reward[s, a]`` the reward and ``goal[s, a]``
    whether (s, a) achieves the goal (terminated: nothing follows).
    """

    nxt: np.ndarray
    reward: np.ndarray
    goal: np.ndarray
    horizon: int

    @property
    def num_states(self) -> int:
        return int(self.nxt.shape[0])


def grasp_task(reward: float = 1.0, horizon: int = 3) -> Task:
    """Playground's ``Grasp <obj>``: state 0 stands elsewhere, state 1 on the object.

    In state 0, ``Go to obj`` reaches state 1 and the three other ``Go to ...``
    lead to another object (state 0 again); in state 1, ``Grasp`` achieves the
    goal and the three ``Go to ...`` leave the object (state 0).
    """
    nxt = np.zeros((2, ACTIONS), dtype=np.int64)
    nxt[0, GOAL_ACTION] = 1
    rew = np.zeros((2, ACTIONS))
    rew[1, GOAL_ACTION] = reward
    goal = np.zeros((2, ACTIONS), dtype=bool)
    goal[1, GOAL_ACTION] = True
    return Task(nxt, rew, goal, horizon)


def chain_task(length: int, horizon: int, reward: float = 1.0) -> Task:
    """A ``length``-step plan (a Grow goal's shape): action 0 advances, the others waste a
    step where they are."""
    nxt = np.tile(np.arange(length)[:, None], (1, ACTIONS))
    nxt[:-1, GOAL_ACTION] = np.arange(1, length)
    rew = np.zeros((length, ACTIONS))
    rew[-1, GOAL_ACTION] = reward
    goal = np.zeros((length, ACTIONS), dtype=bool)
    goal[-1, GOAL_ACTION] = True
    return Task(nxt, rew, goal, horizon)


def soft_policy(q: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row: pi ∝ exp(Q / alpha) and V = alpha log sum exp(Q / alpha), stably."""
    top = q.max(axis=-1, keepdims=True)
    weights = np.exp((q - top) / alpha)
    total = weights.sum(axis=-1, keepdims=True)
    values: np.ndarray = (top + alpha * np.log(total))[..., 0]
    return weights / total, values


def entropy(pi: np.ndarray) -> np.ndarray:
    """Per row: Shannon entropy in nats."""
    logs = np.log(np.where(pi > 0, pi, 1.0))
    result: np.ndarray = -(pi * logs).sum(axis=-1)
    return result


@dataclass(frozen=True)
class Solution:
    """The soft-optimal behaviour from the start state.

    ``first_step``: pi(goal-path action | start) at the first step. ``grasp``:
    pi(goal action | the state before the goal) one step before the horizon's last
    (for the Grasp task, pi(Grasp | on obj) at step 2). ``success``: the probability
    of reaching the goal within the horizon acting with the soft-optimal policy.
    ``entropy``: the mean policy entropy over the states it visits (what a learned
    alpha is tuned against).
    """

    first_step: float
    grasp: float
    success: float
    entropy: float


def _rollout(task: Task, policy_at: list[np.ndarray]) -> tuple[float, float]:
    """Success within the horizon and mean entropy over visits; ``policy_at[t]`` is the
    [S, A] policy acting at step t."""
    dist = np.zeros(task.num_states)
    dist[0] = 1.0
    success, visits, entropy_sum = 0.0, 0.0, 0.0
    for t in range(task.horizon):
        flow = dist[:, None] * policy_at[t]  # [S, A] probability of (s, a) at step t
        visits += dist.sum()
        entropy_sum += float((dist * entropy(policy_at[t])).sum())
        success += float(flow[task.goal].sum())
        dist = np.zeros(task.num_states)
        np.add.at(dist, task.nxt[~task.goal], flow[~task.goal])
    return success, entropy_sum / visits


def _visits(task: Task, pi: np.ndarray) -> np.ndarray:
    """[horizon, S] probability of being in each state at each step, under a stationary pi."""
    out = np.zeros((task.horizon, task.num_states))
    dist = np.zeros(task.num_states)
    dist[0] = 1.0
    for t in range(task.horizon):
        out[t] = dist
        flow = dist[:, None] * pi
        dist = np.zeros(task.num_states)
        np.add.at(dist, task.nxt[~task.goal], flow[~task.goal])
    return out


def _stationary_q(
    task: Task, alpha: float, gamma: float, keep: np.ndarray, start: np.ndarray | None = None
) -> np.ndarray:
    """Soft Q of a stationary value: Q(s,a) = r + gamma * keep[s] * V(s'), by fixed-point
    iteration (a contraction: gamma * keep < 1), from ``start`` when given."""
    q = np.zeros(task.nxt.shape) if start is None else start.copy()
    scale = gamma * keep[:, None] * ~task.goal
    for _ in range(1_000_000):
        new: np.ndarray = task.reward + scale * soft_policy(q, alpha)[1][task.nxt]
        if np.abs(new - q).max() < 1e-12:
            return new
        q = new
    raise RuntimeError("soft value iteration did not converge")


def solve(mode: TimeLimit, alpha: float, gamma: float, task: Task | None = None) -> Solution:
    """The soft-optimal policy of ``task`` (default: the Grasp task) under one time-limit mode."""
    task = task if task is not None else grasp_task()
    before_goal = int(np.flatnonzero(task.goal.any(axis=1))[0])
    if mode == "observed":
        # Backward induction on the steps left; with none left nothing follows.
        values = np.zeros(task.num_states)
        policies: list[np.ndarray] = []
        for _ in range(task.horizon):
            q = task.reward + gamma * ~task.goal * values[task.nxt]
            pi, values = soft_policy(q, alpha)
            policies.append(pi)
        policy_at = policies[::-1]  # policy_at[t] acts with horizon - t steps left
    else:
        if mode == "bootstrap":
            q = _stationary_q(task, alpha, gamma, np.ones(task.num_states))
        else:  # terminal: keep[s] = share of the visits to s not on the last step.
            # Damped: the visits move with the policy, and undamped iteration can cycle
            # (gamma 0.99, alpha 0.01-0.02 on the Grasp task).
            pi = np.full(task.nxt.shape, 1.0 / ACTIONS)
            q = np.zeros(task.nxt.shape)
            for _ in range(20_000):
                visits = _visits(task, pi)
                total = visits.sum(axis=0)
                keep = np.where(total > 0, visits[:-1].sum(axis=0) / np.maximum(total, 1e-300), 1)
                q = _stationary_q(task, alpha, gamma, keep, start=q)
                new = soft_policy(q, alpha)[0]
                if np.abs(new - pi).max() < 1e-10:
                    break
                pi = 0.8 * pi + 0.2 * new
            else:
                raise RuntimeError("the terminal-mode fixed point did not converge")
        policy_at = [soft_policy(q, alpha)[0]] * task.horizon
    success, mean_entropy = _rollout(task, policy_at)
    last_choice = policy_at[max(0, task.horizon - 2)]
    return Solution(
        float(policy_at[0][0, GOAL_ACTION]),
        float(last_choice[before_goal, GOAL_ACTION]),
        success,
        mean_entropy,
    )


def tuned_alpha(mode: TimeLimit, gamma: float, kappa: float, task: Task | None = None) -> float:
    """The alpha a learned temperature settles at: mean entropy over visits = kappa log 4.

    Found by bisection on log alpha (the entropy of the soft-optimal policy grows
    with alpha).
    """
    target = kappa * math.log(ACTIONS)
    lo, hi = math.log(1e-4), math.log(10.0)
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if solve(mode, math.exp(mid), gamma, task).entropy > target:
            hi = mid
        else:
            lo = mid
    return math.exp(0.5 * (lo + hi))


# -- the tests -------------------------------------------------------------------------------------


SHIPPED = SACConfig()
SHIPPED_ALPHA = math.exp(SHIPPED.initial_log_alpha)
CHAINS = ((2, 3), (4, 6), (7, 10), (10, 15))
"""(plan length, horizon) of Playground's Grasp, Grow plant, herbivore, carnivore goals."""


def test_the_shipped_defaults_make_the_soft_optimal_policy_seek_the_goal() -> None:
    """gamma 0.99, alpha exp(initial_log_alpha), the default time-limit mode, reward 1.

    "Seeks the goal": the soft-optimal policy's paths from the first step reach the
    goal (P > 0.95) and it grasps when on the object. Which single action it takes
    first is nearly free at gamma 0.99: one step of slack costs 1% of value, so
    pi(Go to obj) at the first step is only the largest of the four (it exceeds
    0.8 only below alpha 0.003; docs/learning.md).
    """
    got = solve(DEFAULT_TIME_LIMIT, SHIPPED_ALPHA, SHIPPED.gamma)
    assert got.success > 0.95, got
    assert got.grasp > 0.95, got
    assert got.first_step > (1.0 - got.first_step) / (ACTIONS - 1), got
    for length, horizon in CHAINS:  # the Grow goals' shapes too
        chain = solve(DEFAULT_TIME_LIMIT, SHIPPED_ALPHA, SHIPPED.gamma, chain_task(length, horizon))
        assert chain.success > 0.95, (length, chain)


def test_bootstrapped_time_limits_at_alpha_0_05_avoid_the_goal() -> None:
    """The failure the default mode avoids: wandering is worth more than the goal."""
    got = solve("bootstrap", 0.05, 0.99)
    assert got.grasp < 0.01 and got.success < 0.01, got
    assert solve("observed", 0.05, 0.99).success > 0.99
    # A much smaller alpha makes bootstrapping goal-seeking again (the design's 0.91).
    assert solve("bootstrap", 0.005, 0.99).grasp == pytest.approx(0.91, abs=0.01)


def test_an_unobserved_terminal_limit_loses_the_long_plans() -> None:
    """Why the default shows the steps left: without them, a terminal cut is non-Markov and
    at alpha 0.05 the fixed point wanders on a Grow-carnivore-shaped plan."""
    carnivore = chain_task(10, 15)
    assert solve("terminal", 0.05, 0.99, carnivore).success < 0.05
    assert solve("observed", 0.05, 0.99, carnivore).success > 0.95


def test_a_learned_alpha_at_the_shipped_kappa_keeps_the_goal() -> None:
    """Alpha is learned against kappa log |A|: where it settles, the policy still succeeds."""
    kappa = SHIPPED.target_entropy_ratio
    for task in (grasp_task(), *(chain_task(n, h) for n, h in CHAINS)):
        alpha = tuned_alpha(DEFAULT_TIME_LIMIT, SHIPPED.gamma, kappa, task)
        got = solve(DEFAULT_TIME_LIMIT, alpha, SHIPPED.gamma, task)
        assert got.entropy == pytest.approx(kappa * math.log(ACTIONS), abs=1e-3)
        assert got.success > 0.95, (task.horizon, alpha, got)


@pytest.mark.parametrize("mode", TIME_LIMITS)
def test_a_near_greedy_policy_reaches_the_goal_in_every_mode(mode: TimeLimit) -> None:
    """As alpha -> 0 every mode is goal-seeking: the modes differ through the entropy term."""
    got = solve(mode, 1e-3, 0.99)
    assert got.grasp > 0.99 and got.success > 0.99


def test_the_solver_agrees_with_a_hand_computation() -> None:
    """Observed mode on the Grasp task, by hand."""
    alpha, gamma = 0.5, 0.9
    got = solve("observed", alpha, gamma)
    # Two steps left on the object: Grasp earns 1; leaving earns gamma * V_1(start), and
    # V_1(start) = alpha log 4 (every action earns 0 and nothing follows).
    q_leave = gamma * alpha * math.log(4)
    pi_grasp = math.exp(1 / alpha) / (math.exp(1 / alpha) + 3 * math.exp(q_leave / alpha))
    assert got.grasp == pytest.approx(pi_grasp)
    # Bootstrap: V(start) exceeds the value of wandering among the three other objects
    # forever, alpha log 3 / (1 - gamma), which exceeds the goal's reward.
    boot = _stationary_q(grasp_task(), 0.05, 0.99, np.ones(2))
    assert soft_policy(boot[0], 0.05)[1] > 0.05 * math.log(3) / 0.01 > 1.0


def table(
    alphas: tuple[float, ...] = (0.1, 0.05, 0.02, 0.01, 0.005, 0.002),
    gammas: tuple[float, ...] = (0.9, 0.95, 0.99),
) -> str:
    """The measurement table (markdown) of docs/learning.md: per mode, P(success) within
    the horizon, then pi(Go to obj | start) at the first step and pi(Grasp | on obj)."""
    lines = [
        "| gamma | alpha (log alpha) | " + " | ".join(TIME_LIMITS) + " |",
        "| --- | --- | " + " | ".join("---" for _ in TIME_LIMITS) + " |",
    ]
    for gamma in gammas:
        for alpha in alphas:
            cells = []
            for mode in TIME_LIMITS:
                s = solve(mode, alpha, gamma)
                cells.append(f"**{s.success:.2f}** ({s.first_step:.2f}, {s.grasp:.2f})")
            lines.append(
                f"| {gamma} | {alpha} ({math.log(alpha):.1f}) | " + " | ".join(cells) + " |"
            )
    return "\n".join(lines)


def tuned_table(kappas: tuple[float, ...] = (0.2, 0.3, 0.5, 0.7), gamma: float = 0.99) -> str:
    """Where a learned alpha settles for each kappa, and what the policy does there."""
    lines = [
        "| kappa | mode | settled alpha (log) | pi(Go to obj) first step | pi(Grasp) | P(success) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for kappa in kappas:
        for mode in TIME_LIMITS:
            alpha = tuned_alpha(mode, gamma, kappa)
            s = solve(mode, alpha, gamma)
            lines.append(
                f"| {kappa} | {mode} | {alpha:.4f} ({math.log(alpha):.1f}) | "
                f"{s.first_step:.2f} | {s.grasp:.2f} | {s.success:.2f} |"
            )
    return "\n".join(lines)


def chain_table(alphas: tuple[float, ...] = (0.05, 0.01, 0.005, 0.002), gamma: float = 0.99) -> str:
    """P(success) on chains shaped like Playground's goals (wrong actions waste a step)."""
    lines = [
        "| alpha (log alpha) | mode | "
        + " | ".join(f"{n} steps, horizon {h}" for n, h in CHAINS)
        + " |",
        "| --- | --- | " + " | ".join("---" for _ in CHAINS) + " |",
    ]
    for alpha in alphas:
        for mode in TIME_LIMITS:
            cells = [
                f"{solve(mode, alpha, gamma, chain_task(n, h)).success:.2f}" for n, h in CHAINS
            ]
            lines.append(
                f"| {alpha} ({math.log(alpha):.1f}) | {mode} | " + " | ".join(cells) + " |"
            )
    return "\n".join(lines)


def tuned_chain_table(kappas: tuple[float, ...] = (0.3, 0.5), gamma: float = 0.99) -> str:
    """P(success) where a learned alpha settles, on the chains shaped like Playground's goals."""
    lines = [
        "| kappa | mode | " + " | ".join(f"{n} steps, horizon {h}" for n, h in CHAINS) + " |",
        "| --- | --- | " + " | ".join("---" for _ in CHAINS) + " |",
    ]
    for kappa in kappas:
        for mode in TIME_LIMITS:
            cells = []
            for n, h in CHAINS:
                task = chain_task(n, h)
                alpha = tuned_alpha(mode, gamma, kappa, task)
                cells.append(f"{solve(mode, alpha, gamma, task).success:.2f} (alpha {alpha:.4f})")
            lines.append(f"| {kappa} | {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
    print()
    print(tuned_table())
    print()
    print(chain_table())
    print()
    print(tuned_chain_table())
