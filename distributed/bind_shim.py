"""Ray's listeners on the node's own address: the bind shim, built and preloaded.

Ray binds its gRPC servers and several Python servers (the GCS, each raylet and object
manager, every worker, the autoscaler's metrics) to the wildcard address, and has no
setting that changes it: ``--node-ip-address`` says where a node is reached, not where it
listens. ``bind_shim.c``, preloaded into a process, turns its TCP binds to the wildcard
into binds to the address in ``AUTOTELIC_BIND_ADDRESS``. Every process of a cluster that
autotelic starts runs with it: the nodes of :class:`~autotelic.distributed.local_cluster.
LocalCluster`, and the service itself, whose private cluster's processes inherit its
environment (the service re-executes itself once under the shim before anything starts,
:func:`process_environment`). For nodes an operator starts, ``python -m
autotelic.distributed.bind_shim ADDRESS`` prints the two variables to start them with.

The shim is compiled once per source version with the system C compiler into the user's
cache directory (a scratch name renamed into place, so concurrent first builds are
safe). Linux only: elsewhere a private cluster keeps Ray's wildcard listeners.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from autotelic.core.errors import UserError
from autotelic.files import scratch_beside

ADDRESS_VARIABLE = "AUTOTELIC_BIND_ADDRESS"
"""The address the shim binds wildcard listeners to (read by bind_shim.c)."""
SOURCE = Path(__file__).with_name("bind_shim.c")


class BindShimError(UserError, RuntimeError):
    """The shim cannot be built or the address is not one a listener can bind."""


def supported() -> bool:
    """Whether this platform preloads shared objects with ``LD_PRELOAD`` (Linux/glibc)."""
    return sys.platform.startswith("linux")


def cache_dir() -> Path:
    """Where built shims are kept (``$XDG_CACHE_HOME/autotelic``, else ``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "autotelic"


def shim_path() -> Path:
    """The shared object for this source, built if it is not there yet."""
    source = SOURCE.read_bytes()
    target = cache_dir() / f"bind-shim-{hashlib.sha256(source).hexdigest()[:16]}.so"
    if not target.exists():
        _build(target)
    return target


def _build(target: Path) -> None:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise BindShimError(
            "binding Ray's listeners to the node's address needs a C compiler (cc or gcc) "
            "to build bind_shim.c once; install one (e.g. `apt-get install gcc`) or set "
            "ray.bind_own_address: false"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with scratch_beside(target) as tmp:
        done = subprocess.run(
            [compiler, "-shared", "-fPIC", "-O2", "-o", str(tmp), str(SOURCE), "-ldl"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise BindShimError(f"building {SOURCE.name} failed: {done.stderr.strip()}")
        tmp.replace(target)


def check_address(address: str) -> str:
    """``address`` if a listener can bind it: one host's address, not a wildcard."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise BindShimError(f"the bind address {address!r} is not an IP address") from None
    if ip.is_unspecified:
        raise BindShimError(f"the bind address {address} is the wildcard; name one address")
    return str(ip)


def environment(address: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The two variables a process needs so its wildcard listeners bind ``address``:
    ``LD_PRELOAD`` with the shim first (others kept after it) and the address."""
    shim = str(shim_path())
    preload = (base if base is not None else os.environ).get("LD_PRELOAD", "")
    rest = [p for p in preload.replace(":", " ").split() if p and p != shim]
    return {"LD_PRELOAD": " ".join([shim, *rest]), ADDRESS_VARIABLE: check_address(address)}


def is_loaded(address: str) -> bool:
    """Whether this process already runs with the shim for ``address`` (so its own
    listeners, e.g. the Ray driver's, bind it)."""
    return os.environ.get(ADDRESS_VARIABLE) == address and _mapped()


def _mapped() -> bool:
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return False
    return "bind-shim-" in maps


def main(argv: list[str]) -> int:
    """Print ``NAME=value`` lines for starting a Ray node that binds ``argv[0]``."""
    if len(argv) != 1:
        print("usage: python -m autotelic.distributed.bind_shim ADDRESS", file=sys.stderr)
        return 2
    try:
        for name, value in environment(argv[0], base={}).items():
            print(f"{name}={value}")
    except BindShimError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
