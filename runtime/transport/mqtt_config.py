"""Settings of the MQTT bridge."""

from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from autotelic.core.errors import UserError


class TLSSettingError(UserError, ValueError):
    """A ``tls_*`` file that cannot be used; the message names the setting to fix."""


class MQTTConfig(BaseModel):
    """Where the broker is and how to talk to it."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        None,
        description="Broker URL, mqtt://host:1883 or mqtts://host:8883; none starts an "
        "embedded broker on 127.0.0.1.",
    )
    embedded_port: int = Field(
        0, ge=0, le=65535, description="Port of the embedded broker (0 picks a free one)."
    )
    username: str | None = Field(None, description="Username for brokers that require one.")
    password: SecretStr | None = Field(None, description="Password for that username.")
    tls_ca_file: Path | None = Field(None, description="CA bundle that signs the broker's cert.")
    tls_cert_file: Path | None = Field(None, description="Client certificate (mutual TLS).")
    tls_key_file: Path | None = Field(None, description="Client key (mutual TLS).")
    tls_insecure: bool = Field(
        False, description="Skip hostname checks (testing only: it defeats TLS)."
    )
    topic_root: str = Field("autotelic", description="First topic level; then the agent name.")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive interval.")
    reconnect_min_s: float = Field(0.5, gt=0, description="First delay before reconnecting.")
    reconnect_max_s: float = Field(30.0, gt=0, description="Longest delay between reconnects.")
    status_interval_s: float = Field(
        5.0, gt=0, description="How often the retained status is refreshed."
    )
    outbox_size: int = Field(
        100_000, ge=100, description="Messages kept for sending while the broker is away."
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"url scheme must be mqtt or mqtts, got {parts.scheme!r}")
        if not parts.hostname:
            raise ValueError(f"url {url!r} names no host")
        return url

    def endpoint(self) -> tuple[str, int, bool]:
        """Host, port and whether to use TLS, from ``url``."""
        if self.url is None:
            raise ValueError("no broker URL configured")
        parts = urlsplit(self.url)
        tls = parts.scheme in ("mqtts", "ssl") or self.tls_ca_file is not None
        return parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883), tls

    def credentials(self) -> tuple[str | None, str | None]:
        """Username and password, from the fields or else from the URL."""
        parts = urlsplit(self.url or "")
        user = self.username or parts.username
        password = self.password.get_secret_value() if self.password else parts.password
        return user, password

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context to connect with, or None for plain TCP.

        Raises :class:`TLSSettingError`, naming the ``mqtt.tls_*`` setting, when a
        certificate or key file is missing or unusable.
        """
        if self.url is None or not self.endpoint()[2]:
            return None
        for name in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
            path: Path | None = getattr(self, name)
            if path is not None and not path.is_file():
                raise TLSSettingError(f"mqtt.{name}: {path} does not exist or is not a file")
        if self.tls_key_file and not self.tls_cert_file:
            raise TLSSettingError("mqtt.tls_key_file is set but mqtt.tls_cert_file is not")
        try:
            context = ssl.create_default_context(
                cafile=str(self.tls_ca_file) if self.tls_ca_file else None
            )
        except (ssl.SSLError, OSError) as err:
            raise TLSSettingError(
                f"mqtt.tls_ca_file: {self.tls_ca_file} holds no usable CA certificate "
                f"({_reason(err)})"
            ) from None
        if self.tls_cert_file:
            try:
                context.load_cert_chain(
                    str(self.tls_cert_file), str(self.tls_key_file) if self.tls_key_file else None
                )
            except (ssl.SSLError, OSError) as err:
                raise TLSSettingError(
                    f"mqtt.tls_cert_file / mqtt.tls_key_file: cannot use {self.tls_cert_file} "
                    f"with key {self.tls_key_file or '(in the same file)'} ({_reason(err)})"
                ) from None
        if self.tls_insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def _reason(err: BaseException) -> str:
    """OpenSSL's words for a failure, without the library and source-line decoration."""
    if isinstance(err, ssl.SSLError):
        if err.reason:
            return str(err.reason).lower().replace("_", " ")
        return "not PEM, or a key that does not belong to the certificate"
    return str(getattr(err, "strerror", None) or err)
