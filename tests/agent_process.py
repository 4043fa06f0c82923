"""``python -m iccard.agent`` run as a person runs it: a process of its own, with its own environment.

A PKCS#11 module is loaded and initialized once per process, with the environment of that moment
(SoftHSM's SOFTHSM2_CONF, OpenSC's HOME): an agent of its own process reads exactly the tokens it is given.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import requests

from tests.support import free_port

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 30.0


class AgentProcess:
    """The agent started with ``args`` (``--pkcs11 MODULE``, ...) on a free port; :meth:`stop` ends it."""

    def __init__(self, args: list[str], *, state_dir: Path, env: dict[str, str], trusted: tuple[str, ...] = ()):
        self.port = free_port()
        self.state_dir = state_dir
        self.url = f"http://localhost:{self.port}"
        command = [sys.executable, "-m", "iccard.agent", *args, "--port", str(self.port), "--state-dir", str(state_dir)]
        for site in trusted:
            command += ["--trust", site]
        self.output: list[str] = []
        self._process = subprocess.Popen(
            command, cwd=ROOT, env={**env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(lines,), daemon=True).start()
        while True:
            try:
                line = lines.get(timeout=STARTUP_TIMEOUT)
            except queue.Empty:
                self.stop()
                raise AssertionError(f"the agent did not start in {STARTUP_TIMEOUT} s:\n{self.log()}") from None
            if line is None:
                raise AssertionError(f"the agent exited ({self._process.wait()}):\n{self.log()}")
            if line.startswith("MoCert card agent on"):
                return

    def _read(self, lines: queue.Queue) -> None:
        for line in self._process.stdout:
            self.output.append(line)
            lines.put(line)
        lines.put(None)

    def log(self) -> str:
        return "".join(self.output)

    @property
    def trust(self):
        """The agent's trust list as it keeps it on disk (read afresh: the process changes it)."""
        from iccard.agent.trust import TrustList

        return TrustList(self.state_dir / "trusted-sites.json")

    def pkcs11info(self) -> dict:
        return requests.get(f"{self.url}/pkcs11info?withcert=true", timeout=60).json()

    def sign(self, **request) -> dict:
        """A MakeSignature from a program on this computer (no Origin: no trust needed)."""
        package = {"func": "MakeSignature", "tbsEncoding": "NONE", "hashAlgorithm": "SHA256", **request}
        return requests.post(f"{self.url}/sign", data={"tbsPackage": json.dumps(package)}, timeout=60).json()

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


def run_agent(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The agent run to its end (it stops at once when it cannot start)."""
    return subprocess.run([sys.executable, "-m", "iccard.agent", *args], cwd=ROOT, env=env or dict(os.environ),
                          capture_output=True, text=True, timeout=60)
