"""Several MoCert instances behind one HAProxy, on one PostgreSQL and one Redis, started here:
``python -m deploy.several_instances`` (``make several-instances``). It migrates the database, starts N
gunicorn instances on 127.0.0.1 and HAProxy in front of them (``deploy/haproxy.cfg``), prints the address,
and stops everything on Ctrl-C. README: "Running several instances".

Every instance gets the same environment: this process's own ``MOCERT_*`` settings (the database, Redis,
the secrets, the OIDC keys directory, the instance directory), with PostgreSQL and Redis on 127.0.0.1 by
default and ``MOCERT_PUBLIC_URL`` the address HAProxy listens on. Each instance runs in a process group of
its own, so that one can be killed whole (gunicorn's master and its workers) and the others go on.

Python rather than a shell script: the tests start the same topology with :class:`Topology`
(tests/deploy/test_several_instances.py), and process groups, signals and waiting for health are plainer here.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = Path(__file__).with_name("haproxy.cfg")
DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/mocert"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
START_TIMEOUT = 60  # seconds for an instance (migrations done) or HAProxy to answer /healthz


class TopologyError(Exception):
    """The topology cannot start: a setting that cannot work with several instances, a service that does
    not answer, a process that exited. The text says which."""


def shared_environment(environ: Mapping[str, str], *, public_url: str) -> dict[str, str]:
    """The environment every instance gets: ``environ`` with the defaults filled in. Raises
    :class:`TopologyError` for what several instances cannot share: a SQLite file (each machine would have
    its own), rate limits counted per process (``memory://``)."""
    env = dict(environ)
    env.setdefault("MOCERT_DATABASE_URL", DEFAULT_DATABASE_URL)
    env.setdefault("MOCERT_RATELIMIT_STORAGE_URI", DEFAULT_REDIS_URL)
    env.setdefault("MOCERT_PUBLIC_URL", public_url)
    env.setdefault("MOCERT_TRUSTED_PROXIES", "1")  # HAProxy: the client's address is its X-Forwarded-For
    # One directory for all: development's secrets (secret_key, national_id_hmac_key, …), the demo PKI and the
    # OIDC signing keys are files in it unless the environment names them.
    env.setdefault("MOCERT_INSTANCE_DIR", str(ROOT / "instance"))
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    if not env["MOCERT_DATABASE_URL"].startswith("postgresql"):
        raise TopologyError("MOCERT_DATABASE_URL must be a PostgreSQL database all instances reach, "
                            f"not {env['MOCERT_DATABASE_URL']!r}")
    if not env["MOCERT_RATELIMIT_STORAGE_URI"].startswith(("redis://", "rediss://")):
        raise TopologyError("MOCERT_RATELIMIT_STORAGE_URI must be a Redis all instances reach (each instance "
                            f"would count alone), not {env['MOCERT_RATELIMIT_STORAGE_URI']!r}")
    return env


def haproxy_config(*, bind: str, socket: Path, servers: list[tuple[str, str]], maxconn: int) -> str:
    """deploy/haproxy.cfg filled in: ``servers`` are (name, host:port)."""
    lines = "\n".join(f"    server {name} {address}" for name, address in servers)
    return string.Template(TEMPLATE.read_text()).substitute(bind=bind, socket=socket, servers=lines, maxconn=maxconn)


def ensure_database(url: str) -> bool:
    """Create the PostgreSQL database ``url`` names when it does not exist; True if it was made."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect():
            return False
    except sa.exc.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise TopologyError(f"PostgreSQL at {sa.make_url(url).render_as_string()} does not answer: {exc}") from None
    finally:
        engine.dispose()
    target = sa.make_url(url)
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as connection:
            name = connection.dialect.identifier_preparer.quote(target.database)
            connection.execute(sa.text(f"CREATE DATABASE {name}"))
    finally:
        admin.dispose()
    return True


def check_redis(url: str) -> None:
    import redis

    connection = redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        connection.ping()
    except redis.RedisError as exc:
        raise TopologyError(f"Redis at {url} does not answer: {exc}") from None
    finally:
        connection.close()


def answers(url: str, timeout: float = 2) -> bool:
    """Whether ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


class Process:
    """A child in a process group of its own (gunicorn's master and workers, or HAProxy), its output in a file."""

    def __init__(self, name: str, args: list[str], *, env: Mapping[str, str], log_path: Path) -> None:
        self.name, self.args, self.env, self.log_path = name, args, dict(env), log_path
        self.popen: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the whole group: gunicorn's workers go with their master."""
        if self.running():
            os.killpg(self.popen.pid, sig)

    def wait_gone(self, timeout: float = 10) -> None:
        """Return once no process of the group is alive (zombies aside): until then the kernel still
        accepts connections on the instance's port, which then fail."""
        self.popen.wait(timeout=timeout)
        deadline = time.monotonic() + timeout
        while _group_alive(self.popen.pid) and time.monotonic() < deadline:
            time.sleep(0.005)

    def stop(self, timeout: float = 15) -> None:
        if self.popen is None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)  # the group: a worker its master left behind goes too
        except ProcessLookupError:
            pass
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)
            self.popen.wait(timeout=10)
        else:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)  # a straggler of the group, if any
            except ProcessLookupError:
                pass

    def log(self, chars: int | None = 4000) -> str:
        """The end of the instance's output (``chars`` None: all of it)."""
        try:
            text = self.log_path.read_text(errors="replace")
            return text if chars is None else text[-chars:]
        except FileNotFoundError:
            return ""


def _group_alive(group: int) -> bool:
    """Whether a thread of a process of ``group`` runs (Linux's /proc; a zombie, exited but not reaped, does
    not). Every thread, not only the process's first: a process whose main thread is already a zombie still
    holds its sockets open while its other threads (gunicorn's gthread workers) are being torn down."""
    for stat in Path("/proc").glob("[0-9]*/task/[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == group:
            return True
    return False


class Topology:
    """N gunicorn instances of MoCert on 127.0.0.1 and HAProxy in front, all with the same environment."""

    def __init__(
        self,
        environ: Mapping[str, str],
        *,
        run_dir: Path,
        instances: int = 2,
        port: int = 8000,
        instance_ports: list[int] | None = None,
        workers: int = 2,
        threads: int = 4,
        haproxy: str = "haproxy",
        python: str = sys.executable,
    ) -> None:
        if instances < 1:
            raise TopologyError("at least one instance")
        self.run_dir, self.port, self.python, self.haproxy = Path(run_dir), port, python, haproxy
        self.workers, self.threads = workers, threads
        self.url = f"http://localhost:{port}"
        self.env = shared_environment(environ, public_url=self.url)
        ports = instance_ports or [port + number for number in range(1, instances + 1)]
        if len(ports) != instances:
            raise TopologyError("one port per instance")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.instances = [
            Process(f"instance{number}", self._gunicorn(instance_port), env=self.env,
                    log_path=self.run_dir / f"instance{number}.log")
            for number, instance_port in enumerate(ports, start=1)
        ]
        self.instance_ports = ports
        self.instance_urls = [f"http://localhost:{instance_port}" for instance_port in ports]
        self.config_path = self.run_dir / "haproxy.cfg"
        self.socket_path = self.run_dir / "haproxy.sock"
        self.balancer = Process("haproxy", [haproxy, "-db", "-f", str(self.config_path)], env=self.env,
                                log_path=self.run_dir / "haproxy.log")

    def _gunicorn(self, port: int) -> list[str]:
        return [self.python, "-m", "gunicorn", "wsgi:app", "--bind", f"127.0.0.1:{port}",
                "--workers", str(self.workers), "--threads", str(self.threads), "--worker-class", "gthread",
                "--timeout", "60", "--graceful-timeout", "10", "--error-logfile", "-", "--access-logfile", "-",
                "--no-control-socket"]

    def flask(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """``flask --app wsgi ARGS`` with the instances' environment."""
        return subprocess.run([self.python, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def prepare(self) -> None:
        """Before any instance starts: the database made if missing and migrated, Redis answering, and in
        development the demo PKI and the OIDC signing keys (made once, in the directories all share)."""
        if shutil.which(self.haproxy) is None:
            raise TopologyError(f"{self.haproxy} is not installed (Debian: apt-get install haproxy)")
        ensure_database(self.env["MOCERT_DATABASE_URL"])
        check_redis(self.env["MOCERT_RATELIMIT_STORAGE_URI"])
        steps = [("db", "upgrade")]
        if self.env.get("MOCERT_ENV", "development") != "production" and not self._demo_made():
            steps.append(("pki", "init-demo"))
        for step in steps:
            done = self.flask(*step)
            if done.returncode != 0:
                raise TopologyError(f"flask {' '.join(step)} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")

    def _demo_made(self) -> bool:
        """Whether development's demo PKI and OIDC signing keys are there already (config.py's defaults)."""
        instance = Path(self.env["MOCERT_INSTANCE_DIR"])
        demo = Path(self.env.get("MOCERT_DEMO_PKI_DIR") or instance / "demo-pki")
        keys = Path(self.env.get("MOCERT_OIDC_KEYS_DIR") or instance / "oidc-keys")
        return (demo / "manifest.json").is_file() and any(keys.glob("*.pem"))

    def start(self) -> None:
        """The instances, each answering /healthz, then HAProxy answering through them."""
        servers = [(p.name, f"127.0.0.1:{port}") for p, port in zip(self.instances, self.instance_ports)]
        self.config_path.write_text(haproxy_config(bind=f"127.0.0.1:{self.port}", socket=self.socket_path,
                                                   servers=servers, maxconn=self.workers * self.threads))
        checked = subprocess.run([self.haproxy, "-c", "-q", "-f", str(self.config_path)], capture_output=True,
                                 text=True)
        if checked.returncode != 0:
            raise TopologyError(f"HAProxy refuses {self.config_path}: {checked.stdout}{checked.stderr}")
        for instance in self.instances:
            instance.start()
        for instance, url in zip(self.instances, self.instance_urls):
            self._wait(instance, f"{url}/healthz")
        self.balancer.start()
        self._wait(self.balancer, f"{self.url}/healthz")
        self._wait_balanced()

    def _wait(self, process: Process, url: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if not process.running():
                raise TopologyError(f"{process.name} exited:\n{process.log()}")
            if answers(url):
                return
            time.sleep(0.2)
        raise TopologyError(f"{process.name} did not answer {url} within {START_TIMEOUT} s:\n{process.log()}")

    def balanced(self) -> dict[str, str]:
        """Each instance's state as HAProxy sees it ("UP", "DOWN", "UP 1/2" while coming back, …)."""
        with socket.socket(socket.AF_UNIX) as connection:
            connection.settimeout(5)
            connection.connect(str(self.socket_path))
            connection.sendall(b"show stat\n")
            answer = b"".join(iter(lambda: connection.recv(65536), b""))
        header, *rows = csv.reader(answer.decode().lstrip("# ").splitlines())
        stats = [dict(zip(header, row)) for row in rows if row]
        return {row["svname"]: row["status"] for row in stats if row.get("pxname") == "instances"
                and row["svname"] not in ("BACKEND", "FRONTEND")}

    def revive(self) -> None:
        """Start again every instance that is not running, and wait until HAProxy sends to each."""
        for instance, url in zip(self.instances, self.instance_urls):
            if not instance.running():
                instance.start()
                self._wait(instance, f"{url}/healthz")
        self._wait_balanced()

    def _wait_balanced(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while set(self.balanced().values()) != {"UP"}:
            if time.monotonic() > deadline:
                raise TopologyError(f"HAProxy does not send to every instance: {self.balanced()}")
            time.sleep(0.2)

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Kill instance ``index`` (from 0), master and workers at once; returns when they are gone."""
        self.instances[index].kill(sig)
        self.instances[index].wait_gone()

    def stop(self) -> None:
        self.balancer.stop()
        for instance in self.instances:
            instance.stop()

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    instance_dir = Path(os.environ.get("MOCERT_INSTANCE_DIR") or ROOT / "instance")
    try:
        topology = Topology(os.environ, run_dir=args.run_dir or instance_dir / "several-instances",
                            instances=args.instances, port=args.port, workers=args.workers, threads=args.threads)
        print(f"migrating {_without_password(topology.env['MOCERT_DATABASE_URL'])} …", flush=True)
        topology.prepare()
    except TopologyError as exc:
        print(exc, file=sys.stderr)
        return 1
    # Ctrl-C reaches this process only (the others have process groups of their own): it stops them.
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        topology.start()
        print(f"MoCert on {topology.url} (HAProxy, {topology.config_path}), {len(topology.instances)} instances:")
        for instance, url in zip(topology.instances, topology.instance_urls):
            print(f"  {instance.name}  {url}  process group {instance.pid}  log {instance.log_path}")
        print(f"HAProxy log {topology.balancer.log_path}. Ctrl-C stops everything.", flush=True)
        reported: set[str] = set()
        while topology.balancer.running():
            for instance in topology.instances:
                if not instance.running() and instance.name not in reported:
                    reported.add(instance.name)
                    print(f"{instance.name} exited ({_status(instance.popen.returncode)}); HAProxy sends its "
                          "requests to the others", flush=True)
            time.sleep(1)
        print(f"HAProxy exited ({_status(topology.balancer.popen.returncode)}):\n{topology.balancer.log()}",
              file=sys.stderr)
        return 1
    except TopologyError as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping …", flush=True)
        return 0
    finally:
        topology.stop()


def _interrupted(signum, frame) -> None:
    raise KeyboardInterrupt


def _status(code: int | None) -> str:
    if code is not None and code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"status {code}"


def _without_password(url: str) -> str:
    import sqlalchemy as sa

    return sa.make_url(url).render_as_string(hide_password=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deploy.several_instances", description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=2, help="gunicorn instances (2)")
    parser.add_argument("--port", type=int, default=8000,
                        help="HAProxy's port (8000); the instances listen on the next ones (8001, 8002, …)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per instance (2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (4)")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="HAProxy's configuration and the logs (instance/several-instances)")
    return parser


if __name__ == "__main__":
    sys.exit(main())
