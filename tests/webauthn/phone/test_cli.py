"""``python -m webauthn.phone``: bind, login and list, against the test double of MoCert's phone API."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from webauthn.phone.__main__ import main

ROOT = Path(__file__).resolve().parents[3]


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real entry point, in another process."""
    return subprocess.run(
        [sys.executable, "-m", "webauthn.phone", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )


def test_bind_prints_the_device_and_keeps_the_key(phone_api, key_file):
    result = _run("bind", phone_api.bind_url("tok"), "--name", "My phone", "--key-file", str(key_file))

    assert result.returncode == 0, result.stderr
    device = json.loads(result.stdout)
    assert device["name"] == "My phone" and device == phone_api.devices[0]
    assert "王*明" in result.stderr and "A12****789" in result.stderr and "MoCert (test double)" in result.stderr
    assert json.loads(key_file.read_text())["credentials"][0]["rp_id"] == "localhost"


def test_the_key_file_comes_from_the_environment_when_not_given(phone_api, tmp_path, monkeypatch, capsys):
    key_file = tmp_path / "from-env.json"
    monkeypatch.setenv("MOCERT_PHONE_KEY_FILE", str(key_file))

    assert main(["bind", phone_api.bind_url("tok")]) == 0
    assert key_file.is_file()
    assert json.loads(capsys.readouterr().out)["name"].startswith("Software phone on ")


def test_bind_shows_the_servers_message_and_exits_1(phone_api, key_file, capsys):
    assert main(["bind", f"{phone_api.public_url}/m/bind/unknown", "--key-file", str(key_file)]) == 1

    out, err = capsys.readouterr()
    assert out == ""
    assert "error: This link is unknown or has expired. (bind_not_found, HTTP 404)" in err


def test_binding_a_phone_already_bound_exits_1(phone_api, key_file, capsys):
    assert main(["bind", phone_api.bind_url("tok"), "--key-file", str(key_file)]) == 0
    assert main(["bind", phone_api.bind_url("tok-2"), "--key-file", str(key_file)]) == 1
    assert "(InvalidStateError)" in capsys.readouterr().err


def test_bind_refuses_a_login_url(phone_api, key_file, capsys):
    assert main(["bind", phone_api.login_url("login-1"), "--key-file", str(key_file)]) == 1
    assert "not a binding URL" in capsys.readouterr().err
    assert phone_api.requests == []


def test_login_with_yes_shows_the_match_code_and_approves(phone_api, key_file, capsys):
    main(["bind", phone_api.bind_url("tok"), "--key-file", str(key_file)])
    capsys.readouterr()

    assert main(["login", phone_api.login_url("login-1"), "--yes", "--key-file", str(key_file)]) == 0

    out, err = capsys.readouterr()
    assert json.loads(out) == {"status": "approved"}
    assert "Demo Bank" in err and "Match code: 42" in err
    assert phone_api.approved == ["login-1"]


@pytest.mark.parametrize("answer, approved", [("y\n", True), ("n\n", False), ("", False)])
def test_login_asks_before_approving(phone_api, key_file, capsys, monkeypatch, answer, approved):
    main(["bind", phone_api.bind_url("tok"), "--key-file", str(key_file)])
    monkeypatch.setattr(sys, "stdin", io.StringIO(answer))

    status = main(["login", phone_api.login_url("login-1"), "--key-file", str(key_file)])

    assert "approve? [y/N]" in capsys.readouterr().err
    assert (status == 0) is approved
    assert phone_api.approved == (["login-1"] if approved else [])


def test_list_shows_the_credentials_held(phone_api, key_file):
    _run("bind", phone_api.bind_url("tok"), "--key-file", str(key_file))

    result = _run("list", env={"MOCERT_PHONE_KEY_FILE": str(key_file)})

    assert result.returncode == 0, result.stderr
    [credential] = json.loads(result.stdout)
    assert credential["rp_id"] == "localhost" and credential["user_name"] == "A12****789"
    assert credential["sign_count"] == 0
    assert "private_key" not in credential


def test_bind_from_a_qr_image_of_the_binding_url(phone_api, key_file, tmp_path):
    try:
        import qrcode
        import zxingcpp  # noqa: F401
    except ImportError as exc:
        from tests.support import missing

        missing(f"QR round trip needs qrcode, zxing-cpp and Pillow: {exc}")
    png = tmp_path / "binding-qr.png"
    qrcode.make(phone_api.bind_url("tok")).save(png)

    result = _run("bind", str(png), "--name", "From QR", "--key-file", str(key_file))

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["name"] == "From QR"
    assert f"QR code: {phone_api.public_url}/m/bind/tok" in result.stderr


def test_neither_a_url_nor_a_file_is_an_error(tmp_path, capsys):
    assert main(["bind", str(tmp_path / "missing.png"), "--key-file", str(tmp_path / "k.json")]) == 1
    assert "neither a URL nor a QR image file" in capsys.readouterr().err
