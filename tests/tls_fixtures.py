"""A Mosquitto broker as deployments run it: TLS, passwords and an ACL, on a free loopback port.

Certificates are made here with ``cryptography`` (a CA, a server certificate for
127.0.0.1 and client certificates), the password file with ``mosquitto_passwd -U``
and the ACL gives each user read and write on ``autotelic/<user>/#`` only, so an
agent's user name is its agent name.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import queue
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from autotelic.runtime.transport.broker import free_port
from tests.runtime_fixtures import Probe, find_binary, wait_for_port

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


class CertificateAuthority:
    """A self-signed CA (EC P-256, fast to make) that issues server and client certificates."""

    def __init__(self, directory: Path, name: str = "autotelic test CA") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        public = self._key.public_key()
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.cert = directory / "ca.pem"
        self.cert.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, *, server: bool) -> KeyPair:
        """A certificate for ``name``: for a server, valid for 127.0.0.1 and localhost."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
        )
        if server:
            names: list[x509.GeneralName] = [
                x509.IPAddress(ipaddress.ip_address(LOOPBACK)),
                x509.DNSName("localhost"),
            ]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        pair = KeyPair(self.directory / f"{name}.pem", self.directory / f"{name}.key")
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pair.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        pair.key.chmod(0o600)
        return pair


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


class SecureMosquitto:
    """Mosquitto with one TLS listener on a free loopback port, passwords and a per-agent ACL.

    ``users`` maps user (= agent) names to passwords. With ``require_certificate`` the
    listener also wants a client certificate signed by the CA (mutual TLS):
    :meth:`client_pair` makes one.
    """

    def __init__(
        self, workdir: Path, users: dict[str, str], *, require_certificate: bool = True
    ) -> None:
        self.workdir = workdir
        self.users = dict(users)
        self.port = free_port()
        self.binary = find_binary("mosquitto")
        self.ca = CertificateAuthority(workdir / "pki")
        self.server = self.ca.issue("server", server=True)
        self._clients: dict[str, KeyPair] = {}
        self.passwords = workdir / "passwords"
        self.passwords.write_text("".join(f"{u}:{p}\n" for u, p in self.users.items()))
        self.passwords.chmod(0o600)
        subprocess.run(  # hashes the plain-text passwords in place
            [find_binary("mosquitto_passwd"), "-U", str(self.passwords)],
            check=True,
            capture_output=True,
        )
        self.acl = workdir / "acl"
        self.acl.write_text(
            "# each agent reads and writes its own topics, nothing else\n"
            "pattern readwrite autotelic/%u/#\n"
        )
        lines = [
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {self.passwords}",
            f"acl_file {self.acl}",
            "persistence false",
            f"listener {self.port} {LOOPBACK}",
            f"cafile {self.ca.cert}",
            f"certfile {self.server.cert}",
            f"keyfile {self.server.key}",
            f"require_certificate {'true' if require_certificate else 'false'}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if os.geteuid() == 0:  # as root Mosquitto would drop to a user who cannot read tmp_path
            lines.append("user root")
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtts://{LOOPBACK}:{self.port}"

    def client_pair(self, name: str) -> KeyPair:
        """The client certificate of ``name``, signed by the broker's CA (made once)."""
        if name not in self._clients:
            self._clients[name] = self.ca.issue(f"client-{name}", server=False)
        return self._clients[name]

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(self.conf)], stderr=log, stdout=log
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                wait_for_port(self.port, timeout=0.2)
                return
            except TimeoutError:
                pass
        self.stop()
        raise AssertionError(f"Mosquitto did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


def client_context(ca: Path, pair: KeyPair | None = None) -> ssl.SSLContext:
    """A TLS context trusting ``ca`` (and presenting ``pair``), as a test client's."""
    context = ssl.create_default_context(cafile=str(ca))
    if pair is not None:
        context.load_cert_chain(str(pair.cert), str(pair.key))
    return context


class SecureProbe(Probe):
    """:class:`Probe` over TLS, logged in as ``user`` (MQTT 5, so that the broker says
    which publications it refused)."""

    def __init__(
        self, broker: SecureMosquitto, user: str, topics: list[str], pair: KeyPair | None = None
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages = queue.Queue()
        self.refused: dict[int, str] = {}  # publication id -> the broker's reason
        connected = threading.Event()
        self.connack = ""
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"probe-{user}-{time.monotonic_ns()}",
            protocol=mqtt.MQTTv5,
        )
        self.client.tls_set_context(
            client_context(broker.ca.cert, pair or broker.client_pair(user))
        )
        self.client.username_pw_set(user, broker.users[user])
        self.client.on_message = lambda _c, _u, m: self.messages.put(
            (m.topic, bytes(m.payload), bool(m.retain))
        )

        def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            self.connack = str(reason)
            connected.set()

        def on_publish(_c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
            if reason.is_failure:
                self.refused[mid] = str(reason)

        self.client.on_connect = on_connect
        self.client.on_publish = on_publish
        self.client.connect(LOOPBACK, broker.port)
        self.client.loop_start()
        if not connected.wait(10) or self.connack != "Success":
            self.close()
            raise AssertionError(f"probe {user!r} could not log in: {self.connack or 'no CONNACK'}")
        for topic in topics:
            self.client.subscribe(topic, qos=1)
        time.sleep(0.2)  # let the subscriptions settle

    def publish_refused(self, topic: str, payload: bytes | str) -> str | None:
        """Publish with QoS 1; the broker's reason if it refused the message, else None."""
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=10)
        return self.refused.get(info.mid)
