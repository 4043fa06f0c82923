"""Registering the demo client at MoCert through MoCert's own CLI (``flask --app wsgi clients ...``).

Runs ``clients add`` only when the client does not exist yet, and keeps the printed
``{"client_id", "client_secret"}`` in ``instance/marketplace-client.json`` (mode 0600): MoCert shows the
secret only once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

CLIENT_ID = "marketplace-demo"
CLIENT_NAME = "臺灣雲市集（示範）"

# Runs one MoCert CLI command (the words after ``flask --app wsgi``); returns (exit code, output).
FlaskCli = Callable[[list[str]], tuple[int, str]]


class RegistrationError(Exception):
    """The client cannot be registered (or its secret is lost); the message says what to do."""


def mocert_cli(mocert_dir: Path) -> FlaskCli:
    """MoCert's CLI run as a subprocess in ``mocert_dir``, with this environment (its ``MOCERT_*``)."""

    def run(args: list[str]) -> tuple[int, str]:
        done = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", *args],
            cwd=mocert_dir, capture_output=True, text=True, check=False,
        )
        return done.returncode, done.stdout + (done.stderr if done.returncode else "")

    return run


def registered_clients(run: FlaskCli) -> dict[str, str]:
    """``{client_id: "active" | "disabled"}`` from ``clients list``."""
    code, output = run(["clients", "list"])
    if code != 0:
        raise RegistrationError(f"`flask clients list` failed (is MoCert's database migrated?):\n{output}")
    return {line.split("\t")[0]: line.split("\t")[1] for line in output.splitlines() if line.count("\t") >= 3}


def register(run: FlaskCli, *, public_url: str, client_file: Path, client_id: str = CLIENT_ID) -> str:
    """Register the marketplace at MoCert unless it is already; returns what happened, in one line.

    Raises :class:`RegistrationError` when MoCert cannot be asked, the client is disabled, or it exists
    but its secret is not in ``client_file`` (MoCert cannot show it again).
    """
    client_file = Path(client_file)
    state = registered_clients(run).get(client_id)
    if state is not None:
        if state != "active":
            raise RegistrationError(f"client {client_id} is {state} at MoCert")
        if _stored_client_id(client_file) == client_id:
            return f"client {client_id} already registered; its credentials are in {client_file}"
        raise RegistrationError(
            f"client {client_id} exists at MoCert but its secret is not in {client_file}; "
            f"register another one with --client-id NEW_ID (and MARKETPLACE_CLIENT_FILE for several)"
        )
    public_url = public_url.rstrip("/")
    code, output = run([
        "clients", "add", "--name", CLIENT_NAME,
        "--redirect-uri", f"{public_url}/callback",
        "--post-logout-redirect-uri", f"{public_url}/",
        "--client-id", client_id,
    ])
    if code != 0:
        raise RegistrationError(f"`flask clients add` failed:\n{output}")
    credentials = json.loads(output.strip().splitlines()[-1])
    _write_private(client_file, json.dumps(credentials) + "\n")
    return f"client {client_id} registered at MoCert; its credentials are in {client_file}"


def _stored_client_id(client_file: Path) -> str | None:
    try:
        return json.loads(client_file.read_text()).get("client_id")
    except (OSError, ValueError, AttributeError):
        return None


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)  # an older file keeps its mode otherwise
        handle.write(text)
