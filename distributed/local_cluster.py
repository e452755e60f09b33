"""A Ray cluster of several nodes on this machine's loopback addresses.

Tests, the scale-out bench and docs/scale.md's local rehearsal need real Ray nodes
(separate raylets, object stores and worker processes) that talk over loopback only.
Ray replaces ``127.0.0.1`` and ``localhost`` by the host's interface address, so the
head listens on ``127.0.0.2`` and each further node on ``127.0.0.3``, ``127.0.0.4``...;
every port is chosen free, token authentication is on, usage statistics are off, and
every process of a node runs with the bind shim (bind_shim.py), so each listener binds
its node's loopback address, none the wildcard.

Each node is ``ray start --block`` in a session of its own, so stopping it ends exactly
the processes it started (the ``ray start`` process first, then its process group),
never another cluster on the machine.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from autotelic.distributed import bind_shim
from autotelic.runtime.transport.broker import free_port

READY_TEXT = "Ray runtime started"


@dataclass
class Node:
    """One ``ray start --block`` process and where it writes."""

    ip: str
    temp_dir: Path
    log: Path
    proc: subprocess.Popen[bytes]


@dataclass
class LocalCluster:
    """A head on ``127.0.0.2`` and ``workers`` more nodes on ``127.0.0.3``...;
    ``num_cpus`` logical CPUs declared on each node (generous: actors ask for fractions)."""

    workdir: Path
    workers: int = 1
    num_cpus: float = 4
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    head_ip: str = "127.0.0.2"
    bind_own_address: bool = True
    """Start each node under the bind shim (Linux): no listener on all interfaces."""
    port: int = 0
    nodes: list[Node] = field(default_factory=list)

    @property
    def address(self) -> str:
        """The GCS address drivers and nodes join (``ray.address``)."""
        return f"{self.head_ip}:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """Environment every node and driver of this cluster runs with."""
        return {
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": self.token,
            "RAY_USAGE_STATS_ENABLED": "0",
        }

    def _ray(self) -> str:
        return str(Path(sys.executable).parent / "ray")

    def _start_node(self, ip: str, name: str, head: bool) -> Node:
        temp_dir = Path(f"/tmp/ray-{os.getpid()}-{name}-{secrets.token_hex(3)}")
        # Ray's socket paths must stay short (sun_path is 107 bytes): /tmp, not workdir.
        log = self.workdir / f"ray-{name}.log"
        ports = {
            "--node-manager-port": free_port(ip),
            "--object-manager-port": free_port(ip),
            "--metrics-export-port": free_port(ip),
            "--runtime-env-agent-port": free_port(ip),
            "--dashboard-agent-listen-port": free_port(ip),
            "--dashboard-agent-grpc-port": free_port(ip),
        }
        args = [
            self._ray(),
            "start",
            "--block",
            f"--node-ip-address={ip}",
            f"--num-cpus={self.num_cpus}",
            f"--temp-dir={temp_dir}",
            "--disable-usage-stats",
            *(f"{k}={v}" for k, v in ports.items()),
        ]
        if head:
            args += [
                "--head",
                f"--port={self.port}",
                "--include-dashboard=false",
                f"--ray-client-server-port={free_port(ip)}",
                f"--dashboard-port={free_port(ip)}",
            ]
        else:
            args.append(f"--address={self.address}")
        with log.open("wb") as out:
            proc = subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env, **self._bind_env(ip)},
                start_new_session=True,
            )
        node = Node(ip=ip, temp_dir=temp_dir, log=log, proc=proc)
        self.nodes.append(node)
        return node

    def _bind_env(self, ip: str) -> dict[str, str]:
        if not (self.bind_own_address and bind_shim.supported()):
            return {}
        return bind_shim.environment(ip)

    def _wait_ready(self, node: Node, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if READY_TEXT in node.log.read_text(errors="replace"):
                return
            if node.proc.poll() is not None:
                break
            time.sleep(0.2)
        tail = node.log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"ray node {node.ip} did not start:\n{tail}")

    def start(self, timeout: float = 120.0) -> LocalCluster:
        """Start the head, then the other nodes; each up when this returns."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port(self.head_ip)
        try:
            self._wait_ready(self._start_node(self.head_ip, "head", head=True), timeout)
            extra = [
                self._start_node(f"127.0.0.{3 + i}", f"node{i + 1}", head=False)
                for i in range(self.workers)
            ]
            for node in extra:
                self._wait_ready(node, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 20.0) -> None:
        """Stop every node this object started: ``ray start`` tears its node down on
        SIGTERM; what is left of its process group after ``timeout`` is killed."""
        for node in reversed(self.nodes):
            if node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for node in reversed(self.nodes):
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(node.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.proc.wait(timeout=5)
        for node in self.nodes:
            subprocess.run(["rm", "-rf", str(node.temp_dir)], check=False)
        self.nodes.clear()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
