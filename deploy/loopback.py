"""The production topology on one machine, without containers: Debian's nginx, rendered from the
shipped ``deploy/nginx`` files, on a loopback port in front of N ``cdshooks serve`` instances that
share one database.

The topology integration test and ``bench/topology.py`` drive it; an operator can try it by hand::

    python deploy/loopback.py --database-url postgresql://postgres@127.0.0.1/test --instances 2

Every process listens on 127.0.0.1 only, runs in its own session (so killing an "instance" kills
its gunicorn master and workers at once, as a container runtime would) and logs to files under the
working folder; nothing outlives :meth:`Topology.stop`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NGINX_DIR = ROOT / "deploy" / "nginx"
_PLACEHOLDER = re.compile(r"\$\{([A-Z0-9_]+)\}")
_ACCESS = re.compile(r'"(?P<method>\S+) (?P<path>\S+)" (?P<status>\d{3}) '
                     r'.* upstream=(?P<upstream>.*?) upstream_status=')


def nginx_binary() -> str | None:
    """Debian installs nginx in /usr/sbin, which is not on every user's PATH."""
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def render(template: str, values: dict[str, str]) -> str:
    """Substitute ``${NAME}`` as envsubst does; a placeholder without a value is an error."""
    def value(match):
        name = match.group(1)
        if name not in values:
            raise KeyError(f"no value for ${{{name}}} in the nginx template")
        return str(values[name])
    return _PLACEHOLDER.sub(value, template)


def upstream_servers(addresses: list[str]) -> str:
    """The shipped upstream list with its addresses replaced and its parameters kept."""
    shipped = [line.split() for line in (NGINX_DIR / "upstreams.conf").read_text().splitlines()
               if line.strip().startswith("server ")]
    parameters = " ".join(shipped[0][2:]).rstrip(";")
    return "".join(f"server {address} {parameters};\n" for address in addresses)


def _main_config(folder: Path, site: Path) -> str:
    """The process-level nginx settings a distribution or image normally provides."""
    temp = {name: folder / f"{name}_temp" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir(exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""   # workers must read this folder
    return (
        f"{user}worker_processes 1;\ndaemon off;\npid {folder / 'nginx.pid'};\n"
        f"error_log {folder / 'nginx-error.log'} warn;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        + "".join(f"    {name}_temp_path {path};\n" for name, path in temp.items())
        + f"    include {site};\n}}\n"
    )


@contextmanager
def fresh_schema(postgres_url: str):
    """A new schema on a shared PostgreSQL server; yields a URL whose connections use it, then
    drops it (and only it): every instance of a topology gets the same, empty store."""
    import sqlalchemy

    from cdshooks.store.connect import engine_url

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(engine_url(postgres_url), connect_args={"connect_timeout": 2})
    try:
        with admin.begin() as conn:
            conn.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
        try:
            separator = "&" if "?" in postgres_url else "?"
            yield f"{postgres_url}{separator}options=-csearch_path%3D{schema}"
        finally:
            with admin.begin() as conn:
                conn.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
    finally:
        admin.dispose()


def _running_in_group(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies, dead but not yet reaped, do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def wait_http(port: int, path: str = "/healthz", timeout: float = 60.0) -> None:
    """Wait until ``GET path`` on the port answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
                if sock.recv(64).split(b" ", 2)[1:2] == [b"200"]:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"nothing answered 200 on 127.0.0.1:{port}{path} within {timeout:.0f} s")


class Topology:
    """nginx on ``self.port`` in front of ``instances`` cdshooks servers (``self.instance_ports``)."""

    def __init__(self, folder: Path, database_url: str, instances: int = 2, workers: int = 2,
                 env: dict[str, str] | None = None):
        self.folder = Path(folder)
        self.port = free_port()
        self.instance_ports = [free_port() for _ in range(instances)]
        self.workers = workers
        self.url = f"http://127.0.0.1:{self.port}"
        # One secret key for all instances, as a deployment must give them (form links).
        self.env = {**os.environ, "CDSHOOKS_DATABASE_URL": database_url, "CDSHOOKS_PUBLIC_BASE_URL": self.url,
                    "CDSHOOKS_SECRET_KEY": json.dumps(secrets.token_urlsafe(32)), **(env or {})}
        self.instances: list[subprocess.Popen | None] = []
        self.nginx: subprocess.Popen | None = None

    def __enter__(self) -> "Topology":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed (Debian: apt-get install nginx-light)")
        self.folder.mkdir(parents=True, exist_ok=True)
        for index, port in enumerate(self.instance_ports):
            # All at once, as replicas boot: creating the tables of an empty database must not race.
            runtime = self.folder / f"instance-{index}"
            runtime.mkdir(exist_ok=True)   # gunicorn's control socket: one per instance, not ~/.gunicorn
            self.instances.append(self._spawn(
                [sys.executable, "-m", "cdshooks.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port),
                 "--workers", str(self.workers)], f"instance-{index}.log",
                {**self.env, "XDG_RUNTIME_DIR": str(runtime)}))
        for port in self.instance_ports:
            wait_http(port)
        upstreams = self.folder / "upstreams.conf"
        upstreams.write_text(upstream_servers([f"127.0.0.1:{p}" for p in self.instance_ports]))
        site = self.folder / "cdshooks.conf"
        site.write_text(render((NGINX_DIR / "cdshooks.conf.template").read_text(), {
            "NGINX_PORT": f"127.0.0.1:{self.port}", "NGINX_UPSTREAMS": str(upstreams),
            "CDSHOOKS_MAX_BODY_BYTES": self.max_body_bytes(),
        }))
        main = self.folder / "nginx.conf"
        main.write_text(_main_config(self.folder, site))
        self.nginx = self._spawn([binary, "-p", str(self.folder), "-c", str(main), "-e", "stderr"],
                                 "nginx-access.log", os.environ)
        wait_http(self.port)

    def max_body_bytes(self) -> str:
        """The instances' limit: their environment's, else the service default."""
        from cdshooks.settings import Settings
        return self.env.get("CDSHOOKS_MAX_BODY_BYTES") or str(Settings.model_fields["MAX_BODY_BYTES"].default)

    def _spawn(self, command: list[str], log_name: str, env) -> subprocess.Popen:
        with open(self.folder / log_name, "ab") as log:
            return subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Kill instance ``index`` with its workers, as a container runtime would."""
        process = self.instances[index]
        if process is not None and process.poll() is None:
            os.killpg(process.pid, sig)
            process.wait(timeout=30)
            deadline = time.monotonic() + 30   # and its workers: until then, the port still accepts
            while _running_in_group(process.pid):
                if time.monotonic() > deadline:
                    raise subprocess.TimeoutExpired(f"instance {index}", 30)
                time.sleep(0.01)

    def stop(self) -> None:
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.send_signal(signal.SIGQUIT)   # graceful: finish what is in flight
            try:
                self.nginx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.nginx.kill()
                self.nginx.wait()
        for index, process in enumerate(self.instances):
            if process is not None and process.poll() is None:
                try:
                    self.kill(index, signal.SIGTERM)
                except subprocess.TimeoutExpired:
                    self.kill(index, signal.SIGKILL)

    def calls(self) -> list[dict]:
        """nginx's access log, parsed: method, path, status and the instances tried, in order."""
        calls = []
        for line in self.access_log_lines():
            match = _ACCESS.search(line)
            if match:
                tried = [a for a in re.split(r"\s*[,:]\s+", match["upstream"]) if a != "-"]
                calls.append({"method": match["method"], "path": match["path"],
                              "status": int(match["status"]), "upstreams": tried})
        return calls

    def access_log_lines(self) -> list[str]:
        path = self.folder / "nginx-access.log"
        return path.read_text(errors="replace").splitlines() if path.exists() else []

    def logs(self) -> str:
        """Everything every process wrote, for the privacy check."""
        return "".join(p.read_text(errors="replace") for p in sorted(self.folder.glob("*.log")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="shared by every instance (PostgreSQL)")
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--folder", type=Path, default=ROOT / "instance" / "loopback")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))   # leave nothing running
    with Topology(args.folder, args.database_url, args.instances, args.workers) as topology:
        print(f"nginx on {topology.url}; instances on {topology.instance_ports}; logs in {args.folder}")
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
