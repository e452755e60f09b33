"""The bind shim: wildcard TCP listeners of a preloaded process bind one address.

Each check runs a fresh interpreter under the shim (a preload applies only from a
process's start) that binds sockets the way Ray's servers do and prints where they
ended up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autotelic.distributed import bind_shim
from autotelic.distributed.plugin import process_environment
from autotelic.runtime.config import load_settings

pytestmark = pytest.mark.skipif(not bind_shim.supported(), reason="LD_PRELOAD is Linux's")

PROBE = r"""
import json, socket
def bound(family, kind, address, v6only=None):
    s = socket.socket(family, kind)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
    try:
        s.bind((address, 0))
    except OSError as err:
        return "refused: " + err.strerror
    return s.getsockname()[0]
print(json.dumps({
    "tcp4 wildcard": bound(socket.AF_INET, socket.SOCK_STREAM, "0.0.0.0"),
    "tcp6 wildcard": bound(socket.AF_INET6, socket.SOCK_STREAM, "::", v6only=0),
    "tcp6-only wildcard": bound(socket.AF_INET6, socket.SOCK_STREAM, "::", v6only=1),
    "tcp4 loopback": bound(socket.AF_INET, socket.SOCK_STREAM, "127.0.0.1"),
    "udp4 wildcard": bound(socket.AF_INET, socket.SOCK_DGRAM, "0.0.0.0"),
}))
"""


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "autotelic"


def probe(env: dict[str, str]) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, str] = json.loads(done.stdout)
    return result


def test_wildcard_tcp_binds_become_binds_to_the_nodes_address_and_nothing_else_changes(
    cache: Path,
) -> None:
    seen = probe(bind_shim.environment("127.0.0.2", base={}))
    assert seen == {
        "tcp4 wildcard": "127.0.0.2",
        "tcp6 wildcard": "::ffff:127.0.0.2",
        "tcp6-only wildcard": "refused: Cannot assign requested address",
        "tcp4 loopback": "127.0.0.1",
        "udp4 wildcard": "0.0.0.0",
    }
    assert [p.name for p in cache.iterdir()] == [bind_shim.shim_path().name]


def test_without_the_shim_the_same_binds_take_every_interface(cache: Path) -> None:
    seen = probe({})
    assert seen["tcp4 wildcard"] == "0.0.0.0"
    assert seen["tcp6 wildcard"] == "::"


def test_the_shim_is_built_once_and_other_preloads_are_kept_after_it(cache: Path) -> None:
    first = bind_shim.environment("127.0.0.5", base={"LD_PRELOAD": "/opt/other.so"})
    built = bind_shim.shim_path().stat().st_mtime_ns
    again = bind_shim.environment("127.0.0.5", base={"LD_PRELOAD": first["LD_PRELOAD"]})
    assert first["LD_PRELOAD"].split() == [str(bind_shim.shim_path()), "/opt/other.so"]
    assert again == first
    assert bind_shim.shim_path().stat().st_mtime_ns == built


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "node-1"])
def test_a_wildcard_or_a_name_is_refused_as_a_bind_address(address: str, cache: Path) -> None:
    with pytest.raises(bind_shim.BindShimError, match="bind address"):
        bind_shim.environment(address, base={})


def test_no_compiler_is_one_error_that_says_what_to_install(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CC", "")
    monkeypatch.setenv("PATH", str(cache))
    with pytest.raises(bind_shim.BindShimError, match="needs a C compiler"):
        bind_shim.shim_path()
    assert not cache.exists() or not list(cache.glob("*.so"))


def test_the_ray_backend_asks_for_the_shim_at_the_configured_address_unless_turned_off(
    cache: Path, tmp_path: Path
) -> None:
    ray = {"node_ip_address": "127.0.0.4"}
    run = {"backend": "ray", "dir": str(tmp_path), "mode": "concurrent"}
    settings = load_settings(run=run, ray=ray)
    env = process_environment(settings)
    assert env[bind_shim.ADDRESS_VARIABLE] == "127.0.0.4"
    assert env["LD_PRELOAD"].split()[0] == str(bind_shim.shim_path())
    off = load_settings(run=run, ray={**ray, "bind_own_address": False})
    assert process_environment(off) == {}


def test_the_printed_variables_start_an_operators_node_under_the_shim(cache: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "autotelic.distributed.bind_shim", "127.0.0.6"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LD_PRELOAD": ""},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    env = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert probe(env)["tcp4 wildcard"] == "127.0.0.6"
