"""The README's curl and openssl examples for agencies, run as written against a live MoCert: a ticket made
with curl, approved by the reference software phone, polled, and its signature checked with openssl alone."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from app.wiring import parts

ROOT = Path(__file__).resolve().parents[2]


def _block(name: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"<!-- agency-api: {name} .*?-->\n```sh\n(.*?)```", readme, re.S)
    assert match, f"the README has no agency-api block {name!r}"
    return match.group(1)


def _run(script: str, cwd: Path, env: dict, *, check: bool = True) -> subprocess.CompletedProcess:
    """``script`` in bash as one terminal session would run it: what an earlier block set (variables,
    functions) is there, and what this one sets is kept for the next."""
    session = cwd / "session.sh"
    saved = f"source {session}\n" if session.exists() else ""
    keep = f"\n{{ declare -p | grep -E '^declare -[-x] (TXN|TICKET|TICKET_ID|SUM)='; declare -f; }} > {session}.new\n"
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", saved + script + keep], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    if check:
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    if done.returncode == 0:
        (cwd / "session.sh.new").replace(session)
    return done


@pytest.fixture
def shell(tmp_path, app, issuer):
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))  # the README's .venv/bin/python, this run's
    with app.app_context():
        agency, key = parts().agencies.add(actor="test", name="臺灣雲市集")
        sp_service_id = agency.sp_service_id
    env = {**os.environ, "MOCERT": issuer, "SP": sp_service_id, "KEY": key, "ID": "A123456789",
           "PYTHONPATH": str(ROOT)}
    return tmp_path, env


def test_the_readmes_curl_and_openssl_examples_run_as_written(shell, phone, issuer):
    cwd, env = shell
    out = _run(_block("ticket") + 'echo "$TICKET"\n', cwd, env).stdout
    assert out.splitlines()[0] == "holds"
    assert phone.approve_sp(phone.sp_request(issuer, out.splitlines()[-1])) == {"status": "approved"}
    done = _run(_block("result"), cwd, env)
    lines = done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == "0" and "holds" in lines and "phone.pem: OK" in lines
    assert "phone.pem: good" in lines
    out = _run(_block("signature"), cwd, env)
    assert "Verified OK" in out.stdout and "challenge matches" in out.stdout


def test_the_readmes_openssl_check_fails_on_a_signature_not_over_the_signed_bytes(shell, phone, issuer):
    cwd, env = shell
    ticket = _run(_block("ticket") + 'echo "$TICKET"\n', cwd, env).stdout.splitlines()[-1]
    phone.approve_sp(phone.sp_request(issuer, ticket))
    _run(_block("result"), cwd, env)
    tampered = _block("signature").replace("> signed.bin", "> signed.bin; printf x >> signed.bin", 1)
    assert tampered != _block("signature")
    done = _run(tampered, cwd, env, check=False)
    assert done.returncode != 0 and "Verification failure" in done.stdout + done.stderr
