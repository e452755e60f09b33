"""The service end to end: `autotelic run` in a subprocess with a tiny model, a real
Mosquitto, a real Prometheus; goals injected over MQTT; outages, signals and kills."""

from __future__ import annotations

import json
import random
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from autotelic.envs.playground import GoalError, all_goals, canonical_goal
from autotelic.runtime.commands.cli import app
from autotelic.runtime.config import deep_merge
from autotelic.runtime.startup import gpu_present
from autotelic.runtime.transport.messages import RequestError, Topics, parse_inject_request
from autotelic.storage import EpisodeStore
from tests.runtime_fixtures import TINY_SERVICE, Mosquitto, Probe, Prometheus, ServiceProcess

AGENT = "e2e"
TOPICS = Topics(AGENT)
HELD_OUT = set(all_goals("test"))
"""The goals the goal space lists as held out (the curriculum's test split)."""
DEFAULT_METRICS_PORT = 9477
"""``metrics.port``'s default."""
DASHBOARD = Path(__file__).resolve().parents[1] / "ops/grafana/dashboards/autotelic.json"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()


@pytest.fixture(scope="module")
def service(
    broker: Mosquitto, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    config = deep_merge(
        TINY_SERVICE,
        {
            "run": {"agent": AGENT},
            "mqtt": {"url": broker.url, "reconnect_max_s": 1.0},
            # Evaluations often enough for the dashboard's evaluation panels to have data.
            "eval": {
                "interval_env_steps": 200,
                "episodes_per_category": 1,
                "max_cost_fraction": 0.5,
            },
        },
    )
    proc = ServiceProcess(tmp_path_factory.mktemp("service"), config)
    proc.start()
    proc.wait_connected()  # the tests below need the goal topic and the retained status
    yield proc
    if proc.alive():
        proc.kill()


@pytest.fixture(scope="module")
def probe(broker: Mosquitto, service: ServiceProcess) -> Iterator[Probe]:
    client = Probe(broker.port, [TOPICS.accepted, TOPICS.rejected, TOPICS.results, TOPICS.status])
    yield client
    client.close()


def request_reply(
    probe: Probe, payload: bytes | str, timeout: float = 10.0
) -> tuple[str, dict[str, Any]]:
    probe.publish(TOPICS.inject, payload)
    while True:
        topic, data, _ = probe.next(timeout)
        if topic in (TOPICS.accepted, TOPICS.rejected):
            return topic, data


def test_retained_status_is_online(service: ServiceProcess, broker: Mosquitto) -> None:
    late = Probe(broker.port, [TOPICS.status])  # subscribes after the fact: sees the retained one
    try:
        _, status, retain = late.next(topic=TOPICS.status)
    finally:
        late.close()
    assert retain and status["state"] == "online" and status["agent"] == AGENT
    assert status["pid"] == service.endpoints["pid"]


def test_injected_goal_is_accepted_and_every_episode_result_arrives(
    service: ServiceProcess, probe: Probe
) -> None:
    probe.drain()
    topic, reply = request_reply(
        probe, json.dumps({"goal": "grasp  Cow", "episodes": 3, "request_id": "r1"})
    )
    assert topic == TOPICS.accepted, reply
    assert reply["goal"] == "Grasp cow" and reply["episodes"] == 3 and reply["request_id"] == "r1"
    assert reply["feasible"] is True  # the goal space's word, from the agent
    results = []
    while True:
        _, data, _ = probe.next(timeout=120, topic=TOPICS.results)
        if data["injection_id"] != reply["injection_id"]:
            continue
        results.append(data)
        if data["status"] != "episode":
            break
    episodes = [r for r in results if r["status"] == "episode"]
    assert [r["episode_index"] for r in episodes] == [0, 1, 2]
    assert results[-1]["status"] == "completed" and results[-1]["episodes_done"] == 3
    assert results[-1]["successes"] == sum(r["success"] for r in episodes)
    assert all(r["goal"] == "Grasp cow" and 1 <= r["steps"] <= 3 for r in episodes)
    # Each reported episode is really stored, under that goal and injection.
    with EpisodeStore(service.run_dir / "store", readonly=True) as store:
        for r in episodes:
            stored = store.get(r["episode_id"])
            assert stored.goal == "Grasp cow" and stored.injection_id == reply["injection_id"]
            assert stored.goal_source == "injected" and len(stored.steps) == r["steps"]


def test_an_injected_held_out_goal_runs_is_reported_and_never_practised(
    service: ServiceProcess, probe: Probe
) -> None:
    """A test-split goal injected over MQTT runs its episodes; the curriculum never draws it."""
    probe.drain()
    topic, reply = request_reply(
        probe, json.dumps({"goal": "Grasp tiger", "episodes": 2, "priority": 1000})
    )
    assert topic == TOPICS.accepted, reply
    while True:
        _, data, _ = probe.next(timeout=120, topic=TOPICS.results)
        if data["injection_id"] == reply["injection_id"] and data["status"] != "episode":
            break
    assert data["status"] == "completed" and data["episodes_done"] == 2
    with EpisodeStore(service.run_dir / "store", readonly=True) as store:
        after = len(store.ids())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # ~200 self-chosen episodes: ~2 would pick it if it could
        time.sleep(2)
        with EpisodeStore(service.run_dir / "store", readonly=True) as store:
            if len(store.ids()) >= after + 200:
                held_out = [e for e in store.iter_episodes() if e.goal in HELD_OUT]
                break
    else:
        pytest.fail("the service collected fewer than 200 episodes in 120 s")
    mine = [e for e in held_out if e.injection_id == reply["injection_id"]]
    assert len(mine) == 2
    assert all(e.injection_id is not None for e in held_out), "a held-out goal was self-chosen"


def test_the_cli_injects_and_follows_every_episode_to_completion(service: ServiceProcess) -> None:
    """``autotelic inject --wait`` finds the agent through the run's endpoints file."""
    runner = CliRunner()
    run = ["--run", str(service.run_dir)]
    done = runner.invoke(app, ["inject", "grasp lamp", "--episodes", "2", "--wait", *run])
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert re.fullmatch(r"accepted: 'Grasp lamp' x2 \(injection \S+\)", lines[0]), lines
    assert [line.split(":")[0] for line in lines[1:3]] == ["episode 1/2", "episode 2/2"]
    assert re.fullmatch(r"completed: [0-2]/2 successes", lines[3]), lines
    refused = runner.invoke(app, ["inject", "Grasp unicorn", *run])
    assert refused.exit_code == 1 and "rejected: " in refused.output
    assert "unicorn" in refused.output


def expected_verdict(payload: bytes) -> bool:
    """What the service should answer: True to accept."""
    try:
        request = parse_inject_request(payload)
    except RequestError:
        return False
    try:
        canonical_goal(request.goal)
    except GoalError:
        return False
    return True


GOALS = all_goals("all", include_impossible=True)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
requests = st.fixed_dictionaries(
    {},
    optional={
        "goal": st.sampled_from(GOALS) | st.text(max_size=30) | json_values,
        "episodes": st.integers(-5, 20_000) | json_values,
        "priority": st.integers(-2000, 2000) | json_values,
        "ttl_s": st.floats(-10, 1e8) | json_values,
        "request_id": st.text(max_size=10) | json_values,
        "extra": json_values,
    },
)
payloads = st.one_of(
    st.binary(max_size=64),  # garbage, often not UTF-8
    json_values.map(lambda v: json.dumps(v).encode()),  # JSON, usually not an object
    requests.map(lambda d: json.dumps(d).encode()),  # objects with wrong or right types
    st.sampled_from(GOALS).map(lambda g: json.dumps({"goal": g}).encode()),  # valid
    st.text(max_size=20).map(lambda g: json.dumps({"goal": "Grow " + g}).encode()),  # unknown goals
    st.integers(16 * 1024 + 1, 40_000).map(lambda n: b'{"goal": "' + b"x" * n + b'"}'),  # oversized
)


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(payloads, min_size=20, max_size=20))
def test_malformed_payloads_are_rejected_with_reasons_and_valid_ones_accepted(
    service: ServiceProcess, probe: Probe, batch: list[bytes]
) -> None:
    """50 examples of 20 payloads: 1,000 requests, published back to back, answered in order."""
    probe.drain()
    for payload in batch:
        probe.publish(TOPICS.inject, payload, wait=False)
    for payload in batch:
        while True:
            topic, reply, _ = probe.next(timeout=30)
            if topic in (TOPICS.accepted, TOPICS.rejected):
                break
        if expected_verdict(payload):
            assert topic == TOPICS.accepted, (payload[:200], reply)
        else:
            assert topic == TOPICS.rejected, (payload[:200], reply)
            assert isinstance(reply["reason"], str) and len(reply["reason"]) > 5


def test_service_survived_the_fuzzing(service: ServiceProcess, probe: Probe) -> None:
    assert service.alive()
    topic, reply = request_reply(
        probe, json.dumps({"goal": "Grow carrot", "request_id": "after-fuzz"})
    )
    assert topic == TOPICS.accepted and reply["request_id"] == "after-fuzz"
    assert service.metrics()['autotelic_injected_goals_total{status="rejected"}'] > 100


def test_prometheus_scrapes_and_every_dashboard_query_returns_data(
    service: ServiceProcess, probe: Probe, tmp_path: Path
) -> None:
    # The injected-episode panels need an injected episode: this test injects its own, so it
    # passes alone as well as after the injection tests above.
    probe.drain()
    topic, _ = request_reply(
        probe, json.dumps({"goal": "Grasp cow", "episodes": 1, "request_id": "dashboard"})
    )
    assert topic == TOPICS.accepted

    def injected_episodes() -> float:
        return sum(
            v
            for k, v in service.metrics().items()
            if k.startswith("autotelic_episodes_total{") and 'source="injected"' in k
        )

    service.wait_for(lambda: injected_episodes() >= 1, what="an injected episode")
    service.wait_for(
        lambda: service.metrics().get("autotelic_learner_updates_total", 0) >= 3, what="updates"
    )
    service.wait_for(
        lambda: service.metrics().get("autotelic_evaluations_total", 0) >= 1,
        what="a periodic evaluation",
    )
    target = service.endpoints["metrics"].split("//")[1].split("/")[0]
    prometheus = Prometheus(tmp_path, [target])
    prometheus.start()
    try:
        deadline = time.monotonic() + 60
        while not prometheus.targets_up() and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(4)  # a few scrapes, so rates have two points
        dashboard = json.loads(DASHBOARD.read_text())
        panels = [p for p in dashboard["panels"] if p["type"] != "row"]
        queries = [t["expr"] for panel in panels for t in panel["targets"]]
        assert len(queries) >= 28
        titles = [p["title"] for p in panels]
        assert sum(t.startswith("Evaluation") for t in titles) >= 5
        assert any(t.startswith("Generalisation gap") for t in titles)
        training = [p for p in panels if "autotelic_episodes_total" in str(p["targets"])]
        training += [p for p in panels if "autotelic_success_rate_ratio" in str(p["targets"])]
        assert training and all(p["title"].startswith("Training episodes") for p in training)
        empty = []
        for expr in queries:
            promql = expr.replace("$__rate_interval", "1m").replace("$__range", "5m")
            if not prometheus.query(promql):
                empty.append(expr)
        assert not empty, f"dashboard queries without data: {empty}"
        assert prometheus.query('autotelic_episodes_total{source="injected"}')
        for split in ("train", "test"):
            for acting in ("greedy", "sampled"):
                found = prometheus.query(
                    f'autotelic_eval_success_ratio{{split="{split}",acting="{acting}"}}'
                )
                assert {r["metric"]["category"] for r in found} >= {"grasp", "grow_plant"}
    finally:
        prometheus.stop()


def test_metric_names_follow_prometheus_conventions(service: ServiceProcess) -> None:
    names = {re.sub(r"\{.*", "", k) for k in service.metrics()}
    assert names and all(n.startswith("autotelic_") for n in names)
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(service.endpoints["metrics"], timeout=10) as response:
        families = list(text_string_to_metric_families(response.read().decode()))
    for family in families:
        if family.type == "counter":
            assert any(s.name.endswith("_total") for s in family.samples), family.name
        for sample in family.samples:
            assert set(sample.labels) <= {
                "category",
                "split",
                "acting",
                "source",
                "outcome",
                "status",
                "version",
                "learner",
                "model",
                "le",
                "key",  # autotelic_learner_stat: the algorithm's stat names, at most 256
            }
            assert not any(goal in sample.labels.values() for goal in GOALS), sample


def test_broker_outage_training_continues_and_the_bridge_reconnects(
    service: ServiceProcess, broker: Mosquitto, probe: Probe
) -> None:
    probe.close()
    broker.stop()
    service.wait_connected(False, timeout=30)
    steps = service.metrics()["autotelic_env_steps_total"]
    service.wait_for(
        lambda: service.metrics()["autotelic_env_steps_total"] > steps + 50,
        timeout=60,
        what="training while offline",
    )
    broker.start()
    service.wait_connected(timeout=60)
    assert service.metrics()["autotelic_mqtt_reconnects_total"] >= 1
    again = Probe(broker.port, [TOPICS.accepted, TOPICS.rejected])
    try:
        topic, reply = request_reply(
            again, json.dumps({"goal": "Grasp lamp", "request_id": "later"})
        )
        assert topic == TOPICS.accepted and reply["request_id"] == "later"
        assert read_status(broker.port)["state"] == "online"  # republished, retained
    finally:
        again.close()


# -- lifecycle: signals and kills -------------------------------------------------------------


def read_status(port: int) -> dict[str, Any]:
    """The retained status, as a newly subscribed client first receives it."""
    p = Probe(port, [TOPICS.status])
    try:
        _, status, retain = p.next(topic=TOPICS.status, timeout=10)
    finally:
        p.close()
    assert retain
    return status


def stored_ids(run_dir: Path) -> set[int]:
    with EpisodeStore(run_dir / "store", readonly=True) as store:
        return set(store.ids())


def test_sigterm_checkpoints_says_offline_and_a_restart_resumes(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = deep_merge(
        TINY_SERVICE,
        {
            "run": {"agent": AGENT},
            "mqtt": {"url": mosquitto.url},
            "checkpoint": {"interval_s": 3600},
        },
    )
    service = ServiceProcess(tmp_path, config)
    service.start()
    service.wait_connected()
    service.wait_for(
        lambda: service.metrics().get("autotelic_learner_updates_total", 0) >= 2, what="updates"
    )
    began = time.monotonic()
    assert service.terminate(timeout=30) == 0
    assert time.monotonic() - began < 30
    assert read_status(mosquitto.port)["state"] == "offline"
    checkpoints = sorted((service.run_dir / "checkpoints").glob("ckpt-*"))
    assert checkpoints, "SIGTERM must leave a checkpoint"
    counters = json.loads((checkpoints[-1] / "counters.json").read_text())
    assert counters["updates"] >= 2
    before = stored_ids(service.run_dir)

    service.start()
    log = service.tail(200)
    match = re.search(r"restart 1 at (\d+) env steps, (\d+) updates, policy v(\d+)", log)
    assert match, log
    env_steps, updates, version = map(int, match.groups())
    assert updates >= 2 and env_steps > 0 and version >= 0
    assert env_steps >= counters["env_steps"] and updates == counters["updates"]
    service.wait_for(
        lambda: service.metrics()["autotelic_env_steps_total"] > env_steps,
        what="progress after restart",
    )
    assert service.metrics()["autotelic_learner_updates_total"] >= updates
    assert service.terminate() == 0
    assert before <= stored_ids(service.run_dir)


def test_kill_9_loses_no_stored_episode_and_the_will_says_offline(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = deep_merge(TINY_SERVICE, {"run": {"agent": AGENT}, "mqtt": {"url": mosquitto.url}})
    service = ServiceProcess(tmp_path, config)
    announced = Probe(mosquitto.port, [TOPICS.episodes])
    service.start()
    try:
        service.wait_connected()  # else the broker has no will to publish
        service.wait_for(
            lambda: (
                service.metrics().get(
                    'autotelic_episodes_total{category="grasp",outcome="failure",source="configured"}',
                    0,
                )
                > 5
            ),
            what="episodes",
        )
        time.sleep(random.uniform(0, 3))
        service.kill()
        ids: set[int] = set()
        while True:
            try:
                ids.add(announced.next(timeout=1.0, topic=TOPICS.episodes)[1]["episode_id"])
            except TimeoutError:
                break
    finally:
        announced.close()
    assert ids, "episodes are announced only after they are stored"
    assert read_status(mosquitto.port)["state"] == "offline"  # the broker's last will
    assert ids <= stored_ids(service.run_dir)
    service.start()
    service.wait_connected()
    assert read_status(mosquitto.port)["state"] == "online"
    assert service.terminate() == 0
    assert ids <= stored_ids(service.run_dir)


def hold_port(port: int) -> socket.socket | None:
    """A listening socket on 127.0.0.1:``port`` (None when another process holds it): the
    port is taken either way while the caller keeps the socket."""
    held = socket.socket()
    try:
        held.bind(("127.0.0.1", port))
    except OSError:
        held.close()
        return None
    held.listen()
    return held


def test_default_run_without_any_configuration(tmp_path: Path) -> None:
    """`autotelic run` with nothing configured: the packaged model (SmolLM2 with a GPU, the
    packaged cpu configuration's tiny-words without one, which the log says), embedded
    broker, local run dir. Its metrics port (9477) is held here, by this test or by whatever
    holds it already, so the run falls back to a free port, says so, and records it in
    endpoints.json."""
    log = tmp_path / "default.log"
    held = hold_port(DEFAULT_METRICS_PORT)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [ServiceProcess.executable(), "run"], cwd=tmp_path, stdout=out, stderr=out
        )
    endpoints_file = tmp_path / "runs/default/endpoints.json"
    try:
        deadline = time.monotonic() + 300
        while not endpoints_file.is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert proc.poll() is None, log.read_text()
        endpoints = json.loads(endpoints_file.read_text())
        assert endpoints["mqtt"].startswith("mqtt://127.0.0.1:")
        metrics_url = endpoints["metrics"]
        port = int(metrics_url.split("//")[1].split("/")[0].rsplit(":", 1)[1])
        assert metrics_url == f"http://127.0.0.1:{port}/metrics"
        assert port != DEFAULT_METRICS_PORT
        assert f"metrics port 127.0.0.1:{DEFAULT_METRICS_PORT} is in use" in log.read_text()
        assert f"serving metrics on {metrics_url} instead" in log.read_text()

        def env_steps() -> float:
            with urllib.request.urlopen(metrics_url, timeout=10) as response:
                text = response.read().decode()
            found = re.search(r"^autotelic_env_steps_total (\S+)$", text, re.MULTILINE)
            return float(found.group(1)) if found else 0.0

        while env_steps() < 16 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(1)
        assert env_steps() >= 16, log.read_text()  # it acts with the packaged model
        status = subprocess.run(
            [ServiceProcess.executable(), "status", "--run", "runs/default", "--timeout", "30"],
            check=False,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert json.loads(status.stdout)["state"] == "online", status.stderr
        proc.terminate()
        assert proc.wait(timeout=45) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        if held is not None:
            held.close()
    assert any((tmp_path / "runs/default/checkpoints").glob("ckpt-*"))
    text = log.read_text()
    assert "embedded MQTT broker" in text or "autotelic running" in text
    if not gpu_present():
        assert "no GPU and no configuration: starting from the packaged 'cpu'" in text


def test_a_second_run_on_the_same_metrics_port_falls_back_to_a_free_one(tmp_path: Path) -> None:
    """Two runs on one machine configured with the same metrics port: the second serves
    its metrics on a free port, says so, and endpoints.json records where."""
    (tmp_path / "first").mkdir()
    first = ServiceProcess(tmp_path / "first", TINY_SERVICE)
    first.start()
    try:
        port = int(first.endpoints["metrics"].split("//")[1].split("/")[0].rsplit(":", 1)[1])
        (tmp_path / "second").mkdir()
        second = ServiceProcess(
            tmp_path / "second", deep_merge(TINY_SERVICE, {"metrics": {"port": port}})
        )
        second.start()
        try:
            url = second.endpoints["metrics"]
            assert url.startswith("http://127.0.0.1:") and not url.startswith(
                f"http://127.0.0.1:{port}/"
            )
            assert "autotelic_env_steps_total" in second.metrics()  # it serves there
            assert f"metrics port 127.0.0.1:{port} is in use" in second.log.read_text()
            assert first.metrics()  # the first run's endpoint is still its own
            assert second.terminate() == 0
        finally:
            if second.alive():
                second.kill()
        assert first.terminate() == 0
    finally:
        if first.alive():
            first.kill()
