"""The options JSON is what parseCreationOptionsFromJSON / parseRequestOptionsFromJSON take."""

from __future__ import annotations

import json

import pytest

from tests.webauthn.softkey import b64url, unb64url
from webauthn import authentication_options, registration_options

CHALLENGE = bytes(range(32))


def creation(**overrides):
    arguments = dict(
        rp_id="mocert.example",
        rp_name="MoCert",
        user_id=b"\x00\x01user-42",
        user_name="A123456789",
        user_display_name="王小明",
        challenge=CHALLENGE,
    )
    arguments.update(overrides)
    return registration_options(**arguments)


def test_creation_options_have_the_json_shape_the_browser_parses():
    options = creation(exclude_credentials=[(b"\x01\x02\x03", ["hybrid", "internal"]), (b"\xff" * 16, [])])
    assert set(options) == {"publicKey"}
    public_key = options["publicKey"]
    assert json.loads(json.dumps(options, ensure_ascii=False)) == options  # plain JSON types only
    assert public_key["challenge"] == b64url(CHALLENGE) and unb64url(public_key["challenge"]) == CHALLENGE
    assert public_key["rp"] == {"id": "mocert.example", "name": "MoCert"}
    assert public_key["user"] == {"id": b64url(b"\x00\x01user-42"), "name": "A123456789", "displayName": "王小明"}
    assert public_key["pubKeyCredParams"] == [
        {"type": "public-key", "alg": -7},
        {"type": "public-key", "alg": -257},
        {"type": "public-key", "alg": -8},
    ]
    selection = public_key["authenticatorSelection"]
    assert selection["residentKey"] == "required" and selection["requireResidentKey"] is True
    assert selection["userVerification"] == "required"
    assert selection["authenticatorAttachment"] == "platform"
    assert public_key["attestation"] == "direct"
    assert public_key["timeout"] == 300_000
    assert public_key["excludeCredentials"] == [
        {"type": "public-key", "id": b64url(b"\x01\x02\x03"), "transports": ["hybrid", "internal"]},
        {"type": "public-key", "id": b64url(b"\xff" * 16)},
    ]
    assert all("=" not in value for value in (public_key["challenge"], public_key["user"]["id"]))


def test_transports_unknown_to_fido2_are_passed_as_stored():
    options = creation(exclude_credentials=[(b"\x01", ["smart-card", "usb"])])
    assert options["publicKey"]["excludeCredentials"][0]["transports"] == ["smart-card", "usb"]


def test_creation_options_without_exclusions_or_attachment_leave_them_out():
    public_key = creation(authenticator_attachment=None)["publicKey"]
    assert "excludeCredentials" not in public_key
    assert "authenticatorAttachment" not in public_key["authenticatorSelection"]


def test_creation_options_carry_other_requirements_when_asked():
    public_key = creation(
        resident_key="preferred",
        user_verification="preferred",
        attestation="none",
        timeout_ms=60_000,
        authenticator_attachment="cross-platform",
    )["publicKey"]
    assert public_key["authenticatorSelection"] == {
        "authenticatorAttachment": "cross-platform",
        "residentKey": "preferred",
        "userVerification": "preferred",
        "requireResidentKey": False,
    }
    assert (public_key["attestation"], public_key["timeout"]) == ("none", 60_000)


@pytest.mark.parametrize(
    "overrides, error",
    [
        ({"challenge": b"short"}, ValueError),
        ({"challenge": "text-is-not-a-challenge"}, TypeError),
        ({"user_id": b"x" * 65}, ValueError),
        ({"user_id": "text"}, TypeError),
        ({"resident_key": "sometimes"}, ValueError),
        ({"attestation": "enterprise-ish"}, ValueError),
        ({"timeout_ms": 0}, ValueError),
        ({"exclude_credentials": [("text", [])]}, TypeError),
    ],
)
def test_caller_mistakes_in_creation_options_raise(overrides, error):
    with pytest.raises(error):
        creation(**overrides)


def test_request_options_have_the_json_shape_the_browser_parses():
    options = authentication_options(
        rp_id="mocert.example", challenge=CHALLENGE, allow_credentials=[(b"\x09" * 20, ["internal", "hybrid"])]
    )
    assert options == {
        "publicKey": {
            "challenge": b64url(CHALLENGE),
            "timeout": 120_000,
            "rpId": "mocert.example",
            "allowCredentials": [
                {"type": "public-key", "id": b64url(b"\x09" * 20), "transports": ["internal", "hybrid"]}
            ],
            "userVerification": "required",
        }
    }
    assert json.loads(json.dumps(options)) == options


def test_request_options_for_a_discoverable_credential_have_no_allow_list():
    public_key = authentication_options(rp_id="mocert.example", challenge=CHALLENGE)["publicKey"]
    assert "allowCredentials" not in public_key
    assert public_key["userVerification"] == "required"


def test_the_challenge_is_the_callers_and_never_made_up():
    first = authentication_options(rp_id="mocert.example", challenge=CHALLENGE)
    second = authentication_options(rp_id="mocert.example", challenge=CHALLENGE)
    assert first == second
    with pytest.raises(ValueError):
        authentication_options(rp_id="mocert.example", challenge=b"")
