"""Registering the marketplace at MoCert through MoCert's own CLI (``flask --app wsgi clients|agencies ...``):
as an OpenID Connect client, and as an agency (需用機關) of the TW FidO API for agencies.

Runs ``clients add`` only when the client does not exist yet, and keeps the printed
``{"client_id", "client_secret"}`` in ``instance/marketplace-client.json`` (mode 0600): MoCert shows the
secret only once. Likewise ``agencies add`` only when the agency kept in ``instance/marketplace-agency.json``
(``{"sp_service_id", "api_key"}``, mode 0600) is not at MoCert.
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
AGENCY_NAME = CLIENT_NAME  # shown to the person on the phone
AGENCY_CALLBACK_PATH = "/login/mobile"
BACKCHANNEL_LOGOUT_PATH = "/backchannel-logout"  # where MoCert posts its logout tokens  # the agency's registered origin: where a phone may send the person back

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
        # OpenID Connect Back-Channel Logout: MoCert posts a logout token here when the person's session there
        # ends (a logout, the phone revoked...), and the marketplace ends its own.
        "--backchannel-logout-uri", f"{public_url}{BACKCHANNEL_LOGOUT_PATH}",
        "--client-id", client_id,
    ])
    if code != 0:
        raise RegistrationError(f"`flask clients add` failed:\n{output}")
    credentials = json.loads(output.strip().splitlines()[-1])
    _write_private(client_file, json.dumps(credentials) + "\n")
    return f"client {client_id} registered at MoCert; its credentials are in {client_file}"


def registered_agencies(run: FlaskCli) -> list[dict]:
    """``agencies list``: one object per agency (``sp_service_id``, ``name``, ``callback_url``, ``state``...)."""
    code, output = run(["agencies", "list"])
    if code != 0:
        raise RegistrationError(f"`flask agencies list` failed (is MoCert's database migrated?):\n{output}")
    agencies = []
    for line in output.splitlines():
        try:
            agency = json.loads(line)
        except ValueError:
            continue  # not a listing line (a warning of the command's)
        if isinstance(agency, dict) and "sp_service_id" in agency:
            agencies.append(agency)
    return agencies


def register_agency(run: FlaskCli, *, public_url: str, agency_file: Path, name: str = AGENCY_NAME) -> str:
    """Register the marketplace as an agency unless the one in ``agency_file`` is at MoCert already; returns
    what happened, in one line.

    MoCert chooses the ``sp_service_id`` and shows the key once, so the file is what says which agency is
    ours. Without it (or when MoCert's database no longer has that agency), an active agency of this name and
    callback URL is taken back with a new key (``agencies rotate-key``) rather than registered twice; else
    one is added. Raises :class:`RegistrationError` when MoCert cannot be asked or our agency is disabled.
    """
    agency_file = Path(agency_file)
    callback_url = public_url.rstrip("/") + AGENCY_CALLBACK_PATH
    agencies = registered_agencies(run)
    stored = _stored_agency(agency_file)
    ours = next((a for a in agencies if stored and a["sp_service_id"] == stored["sp_service_id"]), None)
    if ours is not None:
        if ours.get("state") != "active":
            raise RegistrationError(f"agency {ours['sp_service_id']} is {ours.get('state')} at MoCert")
        return f"agency {ours['sp_service_id']} already registered; its key is in {agency_file}"
    same = next((a for a in agencies if a.get("state") == "active" and a.get("name") == name
                 and a.get("callback_url") == callback_url), None)
    if same is not None:
        command = ["agencies", "rotate-key", same["sp_service_id"]]
        done = f"its key was not in {agency_file}: key rotated"
    else:
        command = ["agencies", "add", "--name", name, "--callback-url", callback_url]
        done = "registered at MoCert"
    code, output = run(command)
    if code != 0:
        raise RegistrationError(f"`flask {' '.join(command[:2])}` failed:\n{output}")
    answer = json.loads(output.strip().splitlines()[-1])
    credentials = {"sp_service_id": answer["sp_service_id"], "api_key": answer["api_key"]}
    _write_private(agency_file, json.dumps(credentials) + "\n")
    return f"agency {credentials['sp_service_id']} {done}; its key is in {agency_file}"


def _stored_agency(agency_file: Path) -> dict | None:
    try:
        stored = json.loads(agency_file.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or not all(isinstance(stored.get(k), str) for k in ("sp_service_id", "api_key")):
        return None
    return stored


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
