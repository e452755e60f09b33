"""One two-node Ray cluster on loopback addresses per test module, and run settings for it.

A head node on 127.0.0.2 and a second node on 127.0.0.3 with token authentication;
importing this module sets Ray's authentication mode, which Ray reads on import.
"""

from __future__ import annotations

import os
import secrets

# Ray reads its authentication mode when it is imported: set it first.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from autotelic.distributed.local_cluster import LocalCluster
from autotelic.runtime.config import deep_merge
from autotelic.runtime.loop.agent import Agent
from tests.runtime_fixtures import TINY_SAC

HEAD = "127.0.0.2"
NODES = {HEAD, "127.0.0.3"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    local = LocalCluster(
        tmp_path_factory.mktemp("ray"), workers=1, num_cpus=4, token=os.environ["RAY_AUTH_TOKEN"]
    )
    local.start()
    try:
        ray.init(address=local.address, _node_ip_address=HEAD, include_dashboard=False)
        yield local
    finally:
        if ray.is_initialized():
            ray.shutdown()
        local.stop()


def ray_config(cluster: LocalCluster, run_dir: Path, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "run": {"dir": str(run_dir), "backend": "ray", "torch_threads": 1, "agent": "ray"},
        "model": {"path": "tiny-causal"},
        "env": {"num_envs": 4},
        "algorithm": TINY_SAC,
        "replay": {"capacity_transitions": 20000},
        "eval": {"enabled": False},
        "service": {"mqtt_enabled": False},
        "ray": {
            "address": cluster.address,
            "node_ip_address": HEAD,
            "num_collectors": 2,
            "collector_num_cpus": 0.5,
            "steps_per_call": 2,
        },
    }
    return deep_merge(base, extra)


def wait_until(agent: Agent, done: Any, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert not agent.stopping.is_set(), f"the run stopped: {agent.error!r}"
        assert time.monotonic() < deadline, f"not reached within {timeout}s: {agent.snapshot()}"
        time.sleep(0.2)
