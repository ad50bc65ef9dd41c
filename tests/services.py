"""Real PostgreSQL and Redis servers on loopback for the tests that need them.

Each starts from the Debian packages' binaries (``.ci/run`` installs ``postgresql`` and
``redis-server`` when missing) in a throw-away folder, on a free port, and is stopped after the
test session. Where one cannot start, :func:`start_or_skip` prints why and the test is skipped;
nothing here is mocked.
"""
from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

__all__ = ["postgres_server", "redis_server", "start_or_skip", "free_port"]


class ServiceUnavailable(RuntimeError):
    """The server's binary is missing or it did not start; the message says which."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A redis-server without persistence; yields its ``redis://`` URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceUnavailable("no redis-server binary (Debian package redis-server)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="dialab-redis-") as folder:
        yield from _running([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", folder],
                            f"redis://127.0.0.1:{port}/0", _redis_ping, "redis-server")


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A PostgreSQL cluster made by initdb in a temporary folder (trust auth on loopback,
    fsync off); yields a ``postgresql://`` URL of its ``postgres`` database. As root, the
    server runs as the ``postgres`` user (PostgreSQL refuses to run as root)."""
    bin_dir = _postgres_bin_dir()
    run_as: list[str] = []
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise ServiceUnavailable("running as root and no 'postgres' user to run "
                                     "PostgreSQL as") from None
        run_as = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    folder = tempfile.mkdtemp(prefix="dialab-postgres-")
    data = Path(folder) / "data"
    try:
        if owner is not None:
            os.chown(folder, owner.pw_uid, owner.pw_gid)
        initdb = subprocess.run(run_as + [str(bin_dir / "initdb"), "-D", str(data), "-A",
                                          "trust", "-U", "dialab", "--no-sync"],
                                capture_output=True, text=True)
        if initdb.returncode != 0:
            raise ServiceUnavailable(f"initdb failed: {initdb.stderr.strip()[-500:]}")
        yield from _running(run_as + [str(bin_dir / "postgres"), "-D", str(data), "-p",
                                      str(port), "-h", "127.0.0.1", "-k", folder, "-c",
                                      "fsync=off", "-c", "max_connections=200"],
                            f"postgresql://dialab@127.0.0.1:{port}/postgres", _postgres_ping,
                            "postgres")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def start_or_skip(stack: contextlib.ExitStack, server: Callable[[], contextlib.AbstractContextManager[str]],
                  name: str) -> str:
    """Start ``server`` on ``stack``; skip the test, printing the reason, where it cannot."""
    try:
        return stack.enter_context(server())
    except ServiceUnavailable as err:
        print(f"skipping the {name} tests: {err}")
        pytest.skip(f"{name} is not available here: {err}")


# ---- helpers -------------------------------------------------------------------------------------
def _running(command: list[str], url: str, ping: Callable[[str], bool], name: str
             ) -> Iterator[str]:
    """Start ``command``, yield ``url`` once ``ping(url)`` answers, stop it afterwards."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        _wait_until(lambda: ping(url), process, name)
        yield url
    finally:
        _stop(process)


def _postgres_bin_dir() -> Path:
    initdb = shutil.which("initdb")
    if initdb:
        return Path(os.path.realpath(initdb)).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise ServiceUnavailable("no PostgreSQL server binaries (Debian package postgresql)")
    return Path(found[-1]).parent


def _redis_ping(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.exceptions.ConnectionError:
        return False


def _postgres_ping(url: str) -> bool:
    try:
        import psycopg
    except ImportError:
        raise ServiceUnavailable("psycopg is not installed (pip install 'psycopg[binary]')") \
            from None
    try:
        psycopg.connect(url, connect_timeout=1).close()
        return True
    except psycopg.OperationalError:
        return False


def _wait_until(ready: Callable[[], bool], process: subprocess.Popen, name: str,
                timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if process.poll() is not None:
            raise ServiceUnavailable(f"{name} exited with code {process.returncode}")
        if time.monotonic() > deadline:
            _stop(process)
            raise ServiceUnavailable(f"{name} did not answer within {timeout_s:g} s")
        time.sleep(0.1)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
