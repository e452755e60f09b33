"""Real services for the runtime tests: Mosquitto and Prometheus on free loopback ports."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autotelic.runtime.config import deep_merge
from autotelic.runtime.transport.broker import free_port


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def find_binary(name: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if Path(p).exists()), None
    )
    if path is None:
        pytest.fail(f"{name} is not installed: run ./scripts/setup.sh (it installs it with apt)")
    return path


class Mosquitto:
    """A Mosquitto broker process that can be stopped and started again on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.binary = find_binary("mosquitto")
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "log_dest stderr\nlog_type error\nlog_type warning\n"
        )
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(self.conf)], stderr=log, stdout=log
            )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path)
    broker.start()
    yield broker
    broker.stop()


class Prometheus:
    """A Prometheus server scraping given targets every second."""

    def __init__(self, workdir: Path, targets: list[str]) -> None:
        self.port = free_port()
        self.binary = find_binary("prometheus")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "autotelic", "static_configs": [{"targets": targets}]}],
        }
        self.conf = workdir / "prometheus.yml"
        self.conf.write_text(json.dumps(config))  # JSON is YAML
        self.data = workdir / "prometheus-data"
        self.log = workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.conf}",
                    f"--storage.tsdb.path={self.data}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=log,
            )
        wait_for_port(self.port, timeout=30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the port opens before the API is ready
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"Prometheus not ready after 60s: {self.log.read_text()[-2000:]}")

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise AssertionError(f"query {promql!r} failed: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def targets_up(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=10) as response:
            active = json.load(response)["data"]["activeTargets"]
        return bool(active) and all(t["health"] == "up" for t in active)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        self.proc = None


class Probe:
    """A synchronous MQTT client for tests: subscribe, publish, wait for messages."""

    def __init__(self, port: int, topics: list[str]) -> None:
        import queue

        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"probe-{time.monotonic_ns()}"
        )
        self.client.on_message = lambda _c, _u, m: self.messages.put(
            (m.topic, bytes(m.payload), bool(m.retain))
        )
        self.client.connect("127.0.0.1", port)
        for topic in topics:
            self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        time.sleep(0.2)  # let the subscriptions settle

    def publish(self, topic: str, payload: bytes | str, wait: bool = True) -> None:
        info = self.client.publish(topic, payload, qos=1)
        if wait:
            info.wait_for_publish(timeout=10)

    def next(
        self, timeout: float = 10.0, topic: str | None = None
    ) -> tuple[str, dict[str, Any], bool]:
        import queue

        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no message{' on ' + topic if topic else ''} within {timeout}s")
            try:
                got_topic, payload, retain = self.messages.get(timeout=remaining)
            except queue.Empty:
                continue
            if topic is None or got_topic == topic:
                return got_topic, json.loads(payload), retain

    def drain(self) -> None:
        while not self.messages.empty():
            self.messages.get_nowait()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


TINY_SAC = {
    "name": "sac",
    "batch_size": 16,
    "learning_starts": 32,
    "update_every": 8,
    "critic_hidden": [64, 64],
}
TINY_PPO = {"name": "ppo", "value_hidden": [64, 64], "steps_per_update": 64, "minibatch_size": 32}
TINY_SERVICE = {
    "model": {"path": "tiny-causal"},
    "env": {"num_envs": 4},
    "algorithm": TINY_SAC,
    "replay": {"capacity_transitions": 20000},
    "metrics": {"port": 0},
    "service": {"progress_interval_s": 2},
    "checkpoint": {"interval_s": 5},
    "run": {"torch_threads": 1},
}


class ServiceProcess:
    """``autotelic run`` in a subprocess, with a tiny model, as a user would start it."""

    def __init__(
        self, workdir: Path, config: dict[str, Any], env: dict[str, str] | None = None
    ) -> None:
        import yaml

        self.workdir = workdir
        self.env = {**os.environ, **(env or {})}
        self.run_dir = workdir / "run"
        self.config_file = workdir / "autotelic.yaml"
        self.config_file.write_text(
            yaml.safe_dump(deep_merge({"run": {"dir": str(self.run_dir)}}, config))
        )
        self.log = workdir / "service.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoints: dict[str, Any] = {}

    @staticmethod
    def executable() -> str:
        import sys

        return str(Path(sys.executable).parent / "autotelic")

    def start(self, timeout: float = 180.0, wait: bool = True) -> dict[str, Any]:
        """Launch the service; unless ``wait`` is False, until it published its endpoints."""
        endpoints_file = self.run_dir / "endpoints.json"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.executable(), "run", "-c", str(self.config_file)],
                stdout=log,
                stderr=log,
                cwd=self.workdir,
                env=self.env,
            )
        if not wait:
            return {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"service exited with {self.proc.returncode}:\n{self.tail()}")
            if endpoints_file.is_file():
                try:
                    data: dict[str, Any] = json.loads(endpoints_file.read_text())
                except json.JSONDecodeError:
                    data = {}
                if data.get("pid") == self.proc.pid:
                    self.endpoints = data
                    return data
            time.sleep(0.2)
        raise TimeoutError(f"service did not start within {timeout}s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def metrics(self) -> dict[str, float]:
        """Every sample of the /metrics endpoint, keyed 'name{label="v",...}'."""
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(self.endpoints["metrics"], timeout=10) as response:
            text = response.read().decode()
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return out

    def wait_for(self, predicate: Any, timeout: float = 120.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"service died while waiting for {what}:\n{self.tail()}")
            if predicate():
                return
            time.sleep(0.5)
        raise TimeoutError(f"{what} not reached within {timeout}s:\n{self.tail()}")

    def wait_connected(self, connected: bool = True, timeout: float = 120.0) -> None:
        """Until the MQTT bridge is connected (or not), as the service's metrics say.

        Connected means the retained ``online`` status is stored and the goal topic
        subscribed: ``endpoints.json`` appears before that, since training never waits
        for a broker.
        """
        self.wait_for(
            lambda: self.metrics().get("autotelic_mqtt_connected") == int(connected),
            timeout,
            what="MQTT connected" if connected else "MQTT disconnected",
        )

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)
