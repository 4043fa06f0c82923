"""gunicorn serving a WSGI app for the benchmark, both MoCert and python-fido2's example."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .client import HttpBrowser


class Gunicorn:
    """gunicorn (gthread) serving ``app`` from ``cwd`` on 127.0.0.1:``port``; ``pid`` is the master's."""

    def __init__(self, app: str, *, cwd: Path, port: int, environment: dict[str, str], log: Path) -> None:
        self.app, self.cwd, self.port, self.log = app, cwd, port, log
        self.environment = {k: v for k, v in os.environ.items() if not k.startswith("MOCERT_")} | environment
        self.environment["PYTHONDONTWRITEBYTECODE"] = "1"
        self._process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        return self._process.pid

    def start(self, *, workers: int, threads: int, ready: str) -> None:
        """Start and wait until a GET of ``ready`` answers below 500."""
        with open(self.log, "ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", self.app, "--bind", f"127.0.0.1:{self.port}",
                 "--workers", str(workers), "--threads", str(threads), "--worker-class", "gthread",
                 "--timeout", "60", "--graceful-timeout", "5", "--error-logfile", "-", "--no-control-socket"],
                cwd=self.cwd, env=self.environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + 60
        probe = HttpBrowser(self.port, timeout=5)
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.tail()}")
            try:
                if probe.get(ready).status < 500:
                    probe.close()
                    return
            except OSError:
                pass
            probe.close()
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer within 60 s: {self.tail()}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(timeout=10)
        self._process = None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
