"""``python -m webauthn.phone``: bind, login, sp and list, against the test double of MoCert's phone API."""

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


# -- sp: agencies' requests (TW FidO) ----------------------------------------------------------------------


@pytest.fixture
def bound(phone_api, key_file, capsys, monkeypatch):
    """This phone bound to the double's person; no server from the environment; the output so far dropped."""
    monkeypatch.delenv("MOCERT_SERVER", raising=False)
    assert main(["bind", phone_api.bind_url("tok"), "--key-file", str(key_file)]) == 0
    capsys.readouterr()
    phone_api.requests.clear()


def _sp(phone_api, key_file, sp_ticket: str, *options: str) -> int:
    return main(["sp", sp_ticket, "--server", phone_api.public_url, *options, "--key-file", str(key_file)])


def test_sp_with_yes_shows_the_agency_and_its_hint_and_approves_a_login(phone_api, key_file, bound, capsys):
    assert _sp(phone_api, key_file, phone_api.sp_ticket("ATH", hint="登入臺灣雲市集"), "--yes") == 0

    out, err = capsys.readouterr()
    assert json.loads(out) == {"status": "approved"}
    assert f"Request from 臺灣雲市集 (via {phone_api.public_url})" in err
    assert "Hint: 登入臺灣雲市集" in err and "To log in (ATH)" in err and "Expires at 20" in err
    assert list(phone_api.sp_answers.values()) == ["approved"]


def test_sp_shows_the_text_a_signing_request_signs(phone_api, key_file, bound, capsys):
    assert _sp(phone_api, key_file, phone_api.sp_ticket("SIGN", sign_data="我同意第 3 條"), "--yes") == 0

    assert "To sign (SIGN): 我同意第 3 條" in capsys.readouterr().err


def test_sp_lists_every_text_a_batch_signs(phone_api, key_file, bound, capsys):
    sp_ticket = phone_api.sp_ticket("BATSIGN", sign_data_set=["契約 A", "契約 B", "契約 C"])

    assert _sp(phone_api, key_file, sp_ticket, "--yes") == 0

    assert "To sign 3 texts (BATSIGN):\n  1. 契約 A\n  2. 契約 B\n  3. 契約 C\n" in capsys.readouterr().err


def test_sp_shows_what_would_hide_in_the_text_as_escapes(phone_api, key_file, bound, capsys):
    sp_ticket = phone_api.sp_ticket("SIGN", sign_data="轉帳 100,000 元\r\x1b[2K轉帳 1 元\u202e")

    assert _sp(phone_api, key_file, sp_ticket, "--decline") == 0

    assert r"To sign (SIGN): 轉帳 100,000 元\r\x1b[2K轉帳 1 元\u202e" + "\n" in capsys.readouterr().err


def test_sp_with_decline_tells_the_agency_no(phone_api, key_file, bound, capsys):
    assert _sp(phone_api, key_file, phone_api.sp_ticket("SIGN", sign_data="轉帳 1,000 元"), "--decline") == 0

    out, err = capsys.readouterr()
    assert json.loads(out) == {"status": "declined"}
    assert "To sign (SIGN): 轉帳 1,000 元" in err and "approve?" not in err
    assert list(phone_api.sp_answers.values()) == ["declined"]


@pytest.mark.parametrize("answer, approved", [("y\n", True), ("n\n", False), ("", False)])
def test_sp_asks_before_approving_and_leaves_a_request_not_approved_unanswered(
    phone_api, key_file, bound, capsys, monkeypatch, answer, approved
):
    monkeypatch.setattr(sys, "stdin", io.StringIO(answer))

    status = _sp(phone_api, key_file, phone_api.sp_ticket())

    out, err = capsys.readouterr()
    assert err.index("Request from 臺灣雲市集") < err.index("approve? [y/N]")
    assert (status == 0) is approved
    assert list(phone_api.sp_answers.values()) == (["approved"] if approved else [])
    if not approved:
        assert out == "" and "Not approved; the request was left unanswered" in err
        assert phone_api.requests[-1]["path"] == "/api/v1/m/sp-requests/options"


def test_sp_follows_an_mweb2app_link_and_says_where_to_go_back(phone_api, key_file, bound, capsys):
    link = phone_api.sp_link(phone_api.sp_ticket(), rtn_url="https://market.example.tw/back", rtn_val="s-1")

    assert main(["sp", link, "--yes", "--key-file", str(key_file)]) == 0

    err = capsys.readouterr().err
    assert f"(via {phone_api.public_url})" in err
    assert "Back to the agency: https://market.example.tw/back  (rtn_val: s-1)" in err


def test_sp_asks_the_server_in_the_environment_for_a_bare_ticket(phone_api, key_file, bound, monkeypatch, capsys):
    monkeypatch.setenv("MOCERT_SERVER", phone_api.public_url + "/")

    assert main(["sp", phone_api.sp_ticket(), "--yes", "--key-file", str(key_file)]) == 0
    assert json.loads(capsys.readouterr().out) == {"status": "approved"}


def test_sp_of_a_bare_ticket_without_a_server_is_a_usage_error(phone_api, key_file, bound, capsys):
    assert main(["sp", phone_api.sp_ticket(), "--yes", "--key-file", str(key_file)]) == 2

    out, err = capsys.readouterr()
    assert out == "" and "usage error: a bare sp_ticket does not say which server" in err and "--server" in err
    assert phone_api.requests == []


def test_sp_refuses_yes_and_decline_together(phone_api, key_file, capsys):
    with pytest.raises(SystemExit) as raised:
        _sp(phone_api, key_file, phone_api.sp_ticket(), "--yes", "--decline")
    assert raised.value.code == 2


def test_sp_refuses_a_cut_ticket_before_asking_anything(phone_api, key_file, bound, capsys):
    assert _sp(phone_api, key_file, phone_api.sp_ticket()[:-6], "--yes") == 1

    assert "error: not a well-formed sp_ticket" in capsys.readouterr().err
    assert phone_api.requests == []


def test_sp_shows_the_servers_refusal_and_exits_1(phone_api, key_file, bound, capsys):
    sp_ticket = phone_api.sp_ticket()
    assert _sp(phone_api, key_file, sp_ticket, "--yes") == 0
    capsys.readouterr()

    assert _sp(phone_api, key_file, sp_ticket, "--yes") == 1

    out, err = capsys.readouterr()
    assert out == ""
    assert "error: This request has been answered already. (sp_request_answered, HTTP 409)" in err


def test_sp_of_a_missing_qr_image_says_so(phone_api, key_file, tmp_path, capsys):
    assert _sp(phone_api, key_file, str(tmp_path / "ticket.png")) == 1
    assert "ticket.png: no such QR image file" in capsys.readouterr().err


def test_sp_from_a_qr_image_of_the_ticket(phone_api, key_file, bound, tmp_path):
    try:
        import qrcode
        import zxingcpp  # noqa: F401
    except ImportError as exc:
        from tests.support import missing

        missing(f"QR round trip needs qrcode, zxing-cpp and Pillow: {exc}")
    sp_ticket = phone_api.sp_ticket("SIGN", sign_data="我同意第 3 條")
    png = tmp_path / "ticket-qr.png"
    qrcode.make(sp_ticket).save(png)  # the agency's QR code holds the ticket itself, not a URL

    result = _run("sp", str(png), "--server", phone_api.public_url, "--yes", "--key-file", str(key_file))

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"status": "approved"}
    assert f"QR code: {sp_ticket}" in result.stderr and "To sign (SIGN): 我同意第 3 條" in result.stderr
