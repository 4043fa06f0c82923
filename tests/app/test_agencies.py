"""Agencies (需用機關) of the TW FidO service-provider API: ``flask agencies`` and the service behind it.

An agency gets its sp_service_id and API key once, from ``flask agencies add``; MoCert keeps the key sealed
(AES-256-GCM under MOCERT_AGENCY_KEY_ENCRYPTION_KEY), opens it to check the agency's checksums, and audits
every change. Bad input changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import func, select

from app.extensions import db
from app.models import Agency, AuditEvent
from app.services import agencies as agency_service
from app.services.agencies import Agencies, AgencyKeyUnreadable
from app.services.refusals import Refusal
from app.wiring import parts
from twfido import checksum

GET_SP_TICKET = ("transaction_id", "sp_service_id", "id_num", "op_code", "op_mode", "hint", "sign_data")


def _cli(app, *args: str):
    return app.test_cli_runner().invoke(args=["agencies", *args])


def _add(app, *args: str) -> dict:
    result = _cli(app, "add", *(args or ("--name", "臺灣雲市集 Marketplace")))
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _agency_checksum(api_key_b64: str, values: dict) -> str:
    """sp_checksum as an agency computes it from the contract alone, with cryptography and its printed key."""
    text = "".join("" if values.get(name) is None else str(values[name]) for name in GET_SP_TICKET)
    iv = os.urandom(12)
    sealed = AESGCM(base64.b64decode(api_key_b64)).encrypt(iv, hashlib.sha256(text.encode()).hexdigest().encode(), None)
    return (iv + sealed).hex()


def _request(sp_service_id: str) -> dict:
    return {"transaction_id": "TX-0001", "sp_service_id": sp_service_id, "id_num": "A123456789",
            "op_code": "ATH", "op_mode": "I-SCAN", "hint": "登入臺灣雲市集"}


def _events(tag: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.tag == tag).order_by(AuditEvent.id)))


# -- registering -------------------------------------------------------------------------------------------


def test_add_prints_one_json_object_with_the_service_id_and_the_key_shown_once(app):
    printed = _add(app, "--name", "臺灣雲市集", "--allow-ip", "203.0.113.0/24", "--allow-ip", "2001:db8::1",
                   "--callback-url", "https://market.example.tw/twfido/callback")
    assert set(printed) == {"sp_service_id", "api_key", "name", "allowed_ips", "callback_url"}
    assert re.fullmatch(r"SP[A-Z0-9]{12}", printed["sp_service_id"])
    assert len(base64.b64decode(printed["api_key"], validate=True)) == 32
    assert printed["name"] == "臺灣雲市集"
    assert printed["allowed_ips"] == ["203.0.113.0/24", "2001:db8::1/128"]
    assert printed["callback_url"] == "https://market.example.tw/twfido/callback"
    with app.app_context():
        [event] = _events("agency:added")
        assert event.actor == "cli"
        assert event.details["agency"] == printed["sp_service_id"]
        assert printed["api_key"] not in json.dumps(event.details)

    listed = _cli(app, "list")
    assert listed.exit_code == 0, listed.output
    [line] = listed.output.splitlines()
    assert json.loads(line)["sp_service_id"] == printed["sp_service_id"]
    assert json.loads(line)["state"] == "active"
    assert printed["api_key"] not in listed.output


def test_each_agency_gets_its_own_service_id_and_key(app):
    first, second = _add(app), _add(app)
    assert first["sp_service_id"] != second["sp_service_id"]
    assert first["api_key"] != second["api_key"]


def test_a_checksum_the_agency_computes_with_its_printed_key_verifies_with_key_of(app):
    printed = _add(app)
    values = _request(printed["sp_service_id"])
    sp_checksum = _agency_checksum(printed["api_key"], values)
    with app.app_context():
        agency = agency_service.by_service_id(printed["sp_service_id"])
        key = parts().agencies.key_of(agency)
        assert key == base64.b64decode(printed["api_key"])
        checksum.verify(key, checksum.fields_of(values, GET_SP_TICKET), sp_checksum)
        with pytest.raises(checksum.ChecksumError):  # and the check can fail: another hint
            checksum.verify(key, checksum.fields_of({**values, "hint": "轉帳"}, GET_SP_TICKET), sp_checksum)


# -- the key at rest -------------------------------------------------------------------------------------


def test_the_api_key_is_sealed_at_rest_and_opens_under_no_other_key(app):
    printed = _add(app)
    key = base64.b64decode(printed["api_key"])
    with app.app_context():
        stored = db.session.execute(sa.text("SELECT api_key_sealed FROM agencies")).scalar_one()
        stored = bytes(stored)
        assert key not in stored
        assert printed["api_key"].encode() not in stored and key.hex().encode() not in stored
        assert len(stored) == 12 + 32 + 16  # IV, the sealed key, the tag
        agency = agency_service.by_service_id(printed["sp_service_id"])
        with pytest.raises(AgencyKeyUnreadable):
            Agencies(os.urandom(32)).key_of(agency)


def test_a_sealed_key_copied_to_another_agency_does_not_open_there(app):
    first, second = _add(app), _add(app)
    with app.app_context():
        one = agency_service.by_service_id(first["sp_service_id"])
        other = agency_service.by_service_id(second["sp_service_id"])
        other.api_key_sealed = one.api_key_sealed
        with pytest.raises(AgencyKeyUnreadable):
            parts().agencies.key_of(other)
        db.session.rollback()


# -- rotating, disabling -----------------------------------------------------------------------------------


def test_rotate_key_prints_a_new_key_once_and_the_old_one_stops_working(app):
    printed = _add(app)
    result = _cli(app, "rotate-key", printed["sp_service_id"])
    assert result.exit_code == 0, result.output
    rotated = json.loads(result.output)
    assert rotated["sp_service_id"] == printed["sp_service_id"]
    assert rotated["api_key"] != printed["api_key"]
    values = _request(printed["sp_service_id"])
    with app.app_context():
        agency = agency_service.by_service_id(printed["sp_service_id"])
        key = parts().agencies.key_of(agency)
        assert key == base64.b64decode(rotated["api_key"])
        assert agency.key_rotated_at is not None
        checksum.verify(key, checksum.fields_of(values, GET_SP_TICKET), _agency_checksum(rotated["api_key"], values))
        with pytest.raises(checksum.ChecksumError):
            checksum.verify(key, checksum.fields_of(values, GET_SP_TICKET), _agency_checksum(printed["api_key"], values))
        [event] = _events("agency:key_rotated")
        assert event.details["agency"] == printed["sp_service_id"]
        assert rotated["api_key"] not in json.dumps(event.details)


def test_disable_marks_the_agency_disabled_once_and_audits_it(app):
    printed = _add(app)
    for _ in range(2):
        result = _cli(app, "disable", printed["sp_service_id"])
        assert result.exit_code == 0, result.output
    with app.app_context():
        agency = agency_service.by_service_id(printed["sp_service_id"])
        assert agency.disabled_at is not None
        assert len(_events("agency:disabled")) == 1  # disabling a disabled agency changes nothing
    assert json.loads(_cli(app, "list").output)["state"] == "disabled"


# -- bad input changes nothing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--allow-ip", "not-a-network"), "not-a-network"),
        (("--allow-ip", "203.0.113.5/24"), "203.0.113.0/24"),  # host bits set: a typo, and the network is named
        (("--allow-ip", "10.0.0.0/33"), "10.0.0.0/33"),
        (("--callback-url", "market.example.tw/callback"), "invalid_callback_url"),
        (("--callback-url", "ftp://market.example.tw/callback"), "invalid_callback_url"),
        (("--callback-url", "http://market.example.tw/callback"), "invalid_callback_url"),  # plain HTTP, not local
        (("--callback-url", "https://market.example.tw/cb#frag"), "invalid_callback_url"),
        (("--callback-url", "https://[::1/cb"), "invalid_callback_url"),
    ],
)
def test_add_with_a_bad_network_or_url_says_so_and_registers_nothing(app, args, said):
    result = _cli(app, "add", "--name", "臺灣雲市集", *args)
    assert result.exit_code != 0
    assert said in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count(Agency.id))) == 0
        assert _events("agency:added") == []


def test_add_without_a_name_registers_nothing(app):
    result = _cli(app, "add", "--name", "   ")
    assert result.exit_code != 0 and "invalid_name" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count(Agency.id))) == 0


@pytest.mark.parametrize("command", ["disable", "rotate-key"])
def test_an_unknown_agency_is_named_and_nothing_changes(app, command):
    printed = _add(app)
    result = _cli(app, command, "SPNOSUCHAGENCY")
    assert result.exit_code != 0
    assert "agency_unknown" in result.output and "SPNOSUCHAGENCY" in result.output
    with app.app_context():
        agency = agency_service.by_service_id(printed["sp_service_id"])
        assert agency.disabled_at is None and agency.key_rotated_at is None
        assert parts().agencies.key_of(agency) == base64.b64decode(printed["api_key"])
        assert [event.tag for event in db.session.scalars(select(AuditEvent))
                if event.tag.startswith("agency:")] == ["agency:added"]


# -- the service, for the API to come --------------------------------------------------------------------


def test_allowed_ips_are_normalized_networks_each_once(app):
    with app.app_context():
        agency, _ = parts().agencies.add(
            actor="test", name="機關", allowed_ips=["198.51.100.7", "198.51.100.7/32", " 2001:DB8::/32 "]
        )
        assert agency.allowed_ips == ["198.51.100.7/32", "2001:db8::/32"]


def test_calls_come_from_the_listed_networks_only_or_from_anywhere_without_a_list(app):
    with app.app_context():
        listed, _ = parts().agencies.add(actor="test", name="機關", allowed_ips=["203.0.113.0/24", "2001:db8::/32"])
        assert agency_service.allows_address(listed, "203.0.113.77")
        assert agency_service.allows_address(listed, "::ffff:203.0.113.77")  # a dual-stack socket's form
        assert agency_service.allows_address(listed, "2001:db8::5")
        assert not agency_service.allows_address(listed, "198.51.100.1")
        assert not agency_service.allows_address(listed, "not an address")
        assert not agency_service.allows_address(listed, None)
        unlisted, _ = parts().agencies.add(actor="test", name="另一機關")
        assert agency_service.allows_address(unlisted, "198.51.100.1")


def test_a_loopback_callback_may_be_plain_http(app):
    with app.app_context():
        agency, _ = parts().agencies.add(actor="test", name="機關", callback_url="http://127.0.0.1:8000/cb")
        assert agency.callback_url == "http://127.0.0.1:8000/cb"


def test_by_service_id_finds_the_agency_and_nothing_for_anything_else(app):
    with app.app_context():
        agency, _ = parts().agencies.add(actor="test", name="機關")
        assert agency_service.by_service_id(agency.sp_service_id) is agency
        for other in ("SPNOSUCHAGENCY", "", None, 42, agency.sp_service_id.lower(), "S" * 100):
            assert agency_service.by_service_id(other) is None
        with pytest.raises(Refusal) as refused:
            agency_service.get("SPNOSUCHAGENCY")
        assert refused.value.code == "agency_unknown"


def test_the_refusals_have_zh_tw_messages(app):
    from app import refusals

    with app.test_request_context(headers={"Accept-Language": "zh-TW"}):
        try:
            parts().agencies.add(actor="test", name="機關", allowed_ips=["nope"])
        except Refusal as refusal:
            assert refusals.message(refusal) == "nope 不是 IP 位址，也不是 CIDR 表示的網段（例如 203.0.113.0/24）。"
        else:
            pytest.fail("a bad network was accepted")


def test_a_key_encryption_key_that_is_no_32_byte_base64_is_refused():
    for bad in (None, "", "not base64!", base64.b64encode(os.urandom(16)).decode()):
        with pytest.raises(ValueError, match="32 random bytes"):
            agency_service.key_encryption_key(bad)
    assert len(agency_service.key_encryption_key(base64.b64encode(os.urandom(32)).decode())) == 32
