"""The service against Mosquitto as deployments run it: TLS with client certificates,
passwords and a per-agent ACL. Bad settings are named in one log line each while
training goes on."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from autotelic.core.errors import UserError
from autotelic.runtime.config import deep_merge
from autotelic.runtime.loop.control import Accepted, AgentStatus
from autotelic.runtime.transport.messages import Topics
from autotelic.runtime.transport.mqtt import MQTTBridge, diagnose
from autotelic.runtime.transport.mqtt_config import MQTTConfig, TLSSettingError
from tests.runtime_fixtures import TINY_SERVICE, ServiceProcess
from tests.tls_fixtures import CertificateAuthority, SecureMosquitto, SecureProbe

AGENT = "bravo"
OTHER = "alpha"
PASSWORDS = {AGENT: "bravo-secret", OTHER: "alpha-secret"}
TOPICS = Topics(AGENT)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureMosquitto]:
    mosquitto = SecureMosquitto(tmp_path_factory.mktemp("secure-mosquitto"), PASSWORDS)
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()


def service_config(broker: SecureMosquitto, **mqtt: Any) -> dict[str, Any]:
    """The tiny service as agent ``bravo``, over TLS with a client certificate and password."""
    pair = broker.client_pair(AGENT)
    settings = {
        "url": broker.url,
        "tls_ca_file": str(broker.ca.cert),
        "tls_cert_file": str(pair.cert),
        "tls_key_file": str(pair.key),
        "username": AGENT,
        "password": PASSWORDS[AGENT],
        "reconnect_min_s": 0.2,
        "reconnect_max_s": 1.0,
        **mqtt,
    }
    return deep_merge(TINY_SERVICE, {"run": {"agent": AGENT}, "mqtt": settings})


@pytest.fixture(scope="class")
def service(
    broker: SecureMosquitto, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """The service, properly configured; gone before the next tests start theirs (two
    training services on a 2-core runner would slow each other down)."""
    proc = ServiceProcess(tmp_path_factory.mktemp("tls-service"), service_config(broker))
    proc.start()
    proc.wait_connected(timeout=60)
    yield proc
    if proc.alive():
        proc.kill()


def request(goal: str, request_id: str) -> str:
    return json.dumps({"goal": goal, "episodes": 1, "request_id": request_id})


def reply_to(probe: SecureProbe, request_id: str, timeout: float) -> dict[str, Any] | None:
    """The reply (accepted or rejected) to ``request_id``, or None if none comes in time."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            topic, data, _ = probe.next(remaining)
        except TimeoutError:
            return None
        if topic in (TOPICS.accepted, TOPICS.rejected) and data.get("request_id") == request_id:
            return data
    return None


class TestAServiceWithTLSPasswordsAndACL:
    """One service start, configured right, for the tests of this class."""

    def test_is_online_and_accepts_an_injected_goal_over_tls(
        self, service: ServiceProcess, broker: SecureMosquitto
    ) -> None:
        probe = SecureProbe(broker, AGENT, [TOPICS.status, TOPICS.accepted, TOPICS.rejected])
        try:
            _, status, retained = probe.next(10, topic=TOPICS.status)
            assert retained and status["state"] == "online" and status["agent"] == AGENT
            probe.publish(TOPICS.inject, request("Grow carrot", "over-tls"))
            _, reply, _ = probe.next(10, topic=TOPICS.accepted)
            assert reply["request_id"] == "over-tls" and reply["goal"] == "Grow carrot"
        finally:
            probe.close()
        assert service.metrics()['autotelic_injected_goals_total{status="accepted"}'] >= 1

    def test_whose_acl_keeps_another_agent_from_publishing_into_its_topics(
        self, service: ServiceProcess, broker: SecureMosquitto
    ) -> None:
        bravo = SecureProbe(broker, AGENT, [TOPICS.accepted, TOPICS.rejected])
        alpha = SecureProbe(broker, OTHER, [f"{TOPICS.prefix}/#"])  # may not read them either
        try:
            refused = alpha.publish_refused(TOPICS.inject, request("Grasp cow", "from-alpha"))
            assert refused == "Not authorized"
            assert bravo.publish_refused(TOPICS.inject, request("Grasp cow", "from-bravo")) is None
            reply = reply_to(bravo, "from-bravo", 10)
            assert reply is not None and reply["status"] == "accepted"
            assert reply_to(bravo, "from-alpha", 2) is None  # it never reached the agent
            assert alpha.messages.empty()  # and alpha saw nothing of bravo's
        finally:
            bravo.close()
            alpha.close()


def test_a_wrong_ca_is_named_once_in_the_log_while_training_goes_on(
    broker: SecureMosquitto, tmp_path: Path
) -> None:
    """The real service with a CA that did not sign the broker's certificate: it trains
    anyway, retries with back-off, says why in one line, and stops cleanly on SIGTERM."""
    stranger = CertificateAuthority(tmp_path / "stranger", "some other CA")
    service = ServiceProcess(tmp_path, service_config(broker, tls_ca_file=str(stranger.cert)))
    try:
        service.start()
        steps = service.metrics()["autotelic_env_steps_total"]
        service.wait_for(
            lambda: (
                service.metrics()["autotelic_env_steps_total"] > steps + 20
                and service.metrics()["autotelic_mqtt_reconnects_total"] >= 3
            ),
            timeout=60,
            what="training and several connection attempts",
        )
        assert service.metrics()["autotelic_mqtt_connected"] == 0
        text = service.log.read_text(errors="replace")
        lines = [line for line in text.splitlines() if "MQTT: " in line]
        assert len(lines) == 1, service.tail()
        assert lines[0].endswith(
            "ERROR autotelic.runtime.transport.mqtt: MQTT: TLS handshake failed (certificate verify "
            "failed: self-signed certificate in certificate chain): check mqtt.tls_ca_file "
            "(the CA that signed the broker's certificate); retrying with back-off, training "
            "continues"
        ), lines[0]
        assert "Traceback" not in text
        assert service.terminate() == 0
    finally:
        if service.alive():
            service.kill()


def tls_bridge(broker: SecureMosquitto, user: str, password: str) -> MQTTBridge:
    """The service's bridge for agent ``bravo``, in-process, logged in as ``user``."""
    pair = broker.client_pair(user)
    config = MQTTConfig(
        url=broker.url,
        tls_ca_file=broker.ca.cert,
        tls_cert_file=pair.cert,
        tls_key_file=pair.key,
        username=user,
        password=password,
        reconnect_min_s=0.1,
        reconnect_max_s=0.2,
    )

    def accept(goal: str, episodes: int = 1, **_: Any) -> Accepted:
        raise AssertionError("no goal can reach this bridge")

    return MQTTBridge(
        config,
        TOPICS,
        accept,
        status=idle_status,
        client_id=f"autotelic-{AGENT}-as-{user}-{time.monotonic_ns()}",
    )


def idle_status() -> AgentStatus:
    return AgentStatus(
        agent=AGENT, pid=1, learner="sac", policy_version=0, env_steps=0, updates=0,
        episodes=0, results_pending=0, backend="local",
    )  # fmt: skip


def unused_inject(goal: str, episodes: int = 1, **_: Any) -> Accepted:
    raise AssertionError("unused")


def run_bridge_for(bridge: MQTTBridge, seconds: float) -> None:
    async def scenario() -> None:
        task = asyncio.create_task(bridge.run())
        await asyncio.sleep(seconds)
        bridge.stop()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())


def test_a_wrong_password_is_named_once_and_the_bridge_keeps_retrying(
    broker: SecureMosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """In-process, as a service start costs seconds: the bridge retries with back-off
    (about ten times here) and logs the refusal once."""
    bridge = tls_bridge(broker, AGENT, "not-the-password")
    with caplog.at_level(logging.DEBUG, logger="autotelic.runtime.transport.mqtt"):
        run_bridge_for(bridge, 2.0)
    assert not bridge.connected.is_set()
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert lines == [
        "MQTT: the broker refused the credentials of user 'bravo' (not authorized): check "
        "mqtt.username and mqtt.password; retrying with back-off, training continues"
    ]
    retries = [r for r in caplog.records if r.getMessage().endswith("(again)")]
    assert len(retries) >= 3


def test_a_refused_subscription_to_the_goal_topic_is_named(
    broker: SecureMosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """Brokers whose ACL refuses a subscription say so in the SUBACK (Mosquitto 2.0.11
    grants it and delivers nothing): the bridge names the ACL to fix, once."""
    bridge = tls_bridge(broker, OTHER, PASSWORDS[OTHER])
    refused = [ReasonCode(PacketTypes.SUBACK, identifier=0x87)]
    with caplog.at_level(logging.INFO, logger="autotelic.runtime.transport.mqtt"):
        bridge._check_granted(refused)
        bridge._check_granted(refused)
    assert [r.getMessage() for r in caplog.records] == [
        f"MQTT: the broker does not let user 'alpha' subscribe to {TOPICS.inject} (not "
        "authorised), so no goal can be injected: check the broker's ACL for mqtt.username "
        "(it needs readwrite on autotelic/bravo/#)"
    ]


def test_a_missing_or_unusable_tls_file_is_a_configuration_error_naming_the_setting(
    broker: SecureMosquitto, tmp_path: Path
) -> None:
    """Caught when the service makes its bridge, before any connection attempt, and
    reported the way every user error is (a :class:`UserError`: ``autotelic run`` exits 2
    with its one line)."""
    assert issubclass(TLSSettingError, UserError)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    missing = tmp_path / "nowhere.pem"
    cases = [
        ({"tls_ca_file": missing}, r"^mqtt\.tls_ca_file: .*nowhere\.pem does not exist"),
        ({"tls_cert_file": missing}, r"^mqtt\.tls_cert_file: .*nowhere\.pem does not exist"),
        ({"tls_ca_file": junk}, r"^mqtt\.tls_ca_file: .*junk\.pem holds no usable CA"),
        ({"tls_cert_file": junk}, r"^mqtt\.tls_cert_file / mqtt\.tls_key_file: cannot use"),
        ({"tls_key_file": junk}, r"^mqtt\.tls_key_file is set but mqtt\.tls_cert_file is not"),
    ]
    for settings, expected in cases:
        config = MQTTConfig(url=broker.url, **settings)
        with pytest.raises(TLSSettingError, match=expected):
            MQTTBridge(
                config,
                TOPICS,
                unused_inject,
                idle_status,
                client_id="unused",
            )


def connack(code: int) -> aiomqtt.MqttError:
    from aiomqtt.exceptions import MqttConnectError

    return MqttConnectError(ReasonCode(PacketTypes.CONNACK, identifier=code))


TLS_CONFIG = MQTTConfig(
    url="mqtts://broker.example:8883", tls_ca_file=Path("ca.pem"), username=AGENT
)


@pytest.mark.parametrize(
    ("error", "socket_error", "expected"),
    [
        (
            aiomqtt.MqttError(
                "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed "
                "certificate in certificate chain (_ssl.c:1006)"
            ),
            None,
            r"^MQTT: TLS handshake failed \(certificate verify failed: self-signed certificate "
            r"in certificate chain\): check mqtt\.tls_ca_file",
        ),
        (
            aiomqtt.MqttError(
                "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: Hostname "
                "mismatch, certificate is not valid for 'broker.example'. (_ssl.c:1006)"
            ),
            None,
            r"not for 'broker\.example'; check the host in mqtt\.url",
        ),
        (
            aiomqtt.MqttError("Operation timed out"),
            "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required "
            "(_ssl.c:2580)",
            r"^MQTT: the broker rejected the TLS client certificate \(tlsv13 alert certificate "
            r"required\): check mqtt\.tls_cert_file and mqtt\.tls_key_file",
        ),
        (
            aiomqtt.MqttError("[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"),
            None,
            r"^MQTT: TLS handshake failed \(wrong version number\): check that mqtt\.url is "
            r"mqtts:// on the broker's TLS port",
        ),
        (connack(134), None, r"refused the credentials .*check mqtt\.username and mqtt\.password"),
        (
            aiomqtt.MqttError("[Errno 111] Connection refused"),
            None,
            r"^MQTT: nothing accepts connections at broker\.example:8883 \(connection refused\)"
            r": check mqtt\.url",
        ),
        (
            aiomqtt.MqttError("Operation timed out"),
            None,
            r"no answer from the broker at broker\.example:8883 \(timed out\): check that "
            r"mqtt\.url names a port that speaks TLS",
        ),
    ],
    ids=["wrong-ca", "wrong-host", "no-client-cert", "not-tls", "password", "refused", "timeout"],
)
def test_each_connection_failure_is_explained_with_the_setting_to_check(
    error: aiomqtt.MqttError, socket_error: str | None, expected: str
) -> None:
    message = diagnose(error, TLS_CONFIG, socket_error).message
    assert re.search(expected, message), message
    assert message.endswith("retrying with back-off, training continues")


def test_without_a_user_name_the_broker_asks_for_one() -> None:
    message = diagnose(connack(135), MQTTConfig(url="mqtt://broker.example")).message
    assert "wants a user name and password (not authorized): set mqtt.username" in message
