"""python-fido2's example server, the yardstick of the login benchmark: the ``examples/server`` that
PyPI's ``fido2`` sdist ships, of the version requirements.txt pins, checked against its hashes there and
run as published (its Flask app under gunicorn, its credentials in a list in memory, its state in the
session cookie). Nothing of it is copied into this repository: the sdist is fetched once with pip into a
cache outside it.

Its ceremony is its login: ``POST /api/authenticate/begin``, the software authenticator signs,
``POST /api/authenticate/complete``. Each client registers a credential first (``/api/register/begin`` and
``complete``), after a restart: the list grows with every registration and every login looks through it.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from .client import AnswerError, HttpBrowser, expect

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mocert-bench"


def pinned(requirements: Path = ROOT / "requirements.txt") -> tuple[str, list[str]]:
    """The version of fido2 requirements.txt pins and the sha256 hashes it allows."""
    text = requirements.read_text()
    block = re.search(r"^fido2==(\S+)((?:\s*\\\n\s*--hash=sha256:[0-9a-f]{64})+)", text, re.MULTILINE)
    if block is None:
        raise RuntimeError("requirements.txt pins no fido2 with hashes")
    return block.group(1), re.findall(r"sha256:([0-9a-f]{64})", block.group(2))


def example_dir(cache: Path = DEFAULT_CACHE) -> tuple[Path, str]:
    """The sdist's ``examples/server`` directory (fetched and unpacked into ``cache`` if need be) and a
    line saying where it came from."""
    version, hashes = pinned()
    sdist = cache / f"fido2-{version}.tar.gz"
    if not sdist.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=cache, delete=False) as pin:
            pin.write(f"fido2=={version} " + " ".join(f"--hash=sha256:{h}" for h in hashes) + "\n")
        try:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                            "--require-hashes", "-r", pin.name, "-d", str(cache)], check=True, timeout=300)
        finally:
            os.unlink(pin.name)
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest not in hashes:
        raise RuntimeError(f"{sdist}: sha256 {digest} is none of requirements.txt's for fido2=={version}")
    unpacked = cache / f"fido2-{version}"
    server = unpacked / "examples" / "server"
    if not (server / "server" / "server.py").is_file():
        prefix = f"fido2-{version}/examples/server/"
        with tarfile.open(sdist) as archive:
            members = [m for m in archive.getmembers() if m.name.startswith(prefix)]
            if not members:
                raise RuntimeError(f"{sdist} has no examples/server")
            archive.extractall(cache, members=members, filter="data")
    return server, f"python-fido2 {version}'s examples/server from PyPI's sdist (sha256 {digest[:16]}…)"


def register(browser: HttpBrowser, phone, origin: str) -> None:
    """Register ``phone``'s credential with the example (as its register page does). The example asks for
    a cross-platform authenticator; the software authenticator plays one (the attachment is the only
    option dropped before it answers)."""
    options = expect("register begin", 200, browser.post_json("/api/register/begin", {})).json()
    public_key = dict(options["publicKey"])
    selection = dict(public_key.get("authenticatorSelection") or {})
    selection.pop("authenticatorAttachment", None)
    public_key["authenticatorSelection"] = selection
    expect("register complete", 200, browser.post_json("/api/register/complete",
                                                       phone.create(public_key, origin=origin)))


def authenticate(browser: HttpBrowser, phone, origin: str) -> None:
    """The example's login: begin, sign, complete."""
    options = expect("authenticate begin", 200, browser.post_json("/api/authenticate/begin", {})).json()
    credential = phone.get(options["publicKey"], origin=origin)
    done = expect("authenticate complete", 200, browser.post_json("/api/authenticate/complete", credential))
    if done.json().get("status") != "OK":
        raise AnswerError("authenticate complete", done)
