"""Registration responses recorded from real authenticators: they verify, and spoiled copies do not."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json

import pytest
from cryptography import x509
from fido2 import cbor

from tests.webauthn import recorded
from tests.webauthn.recorded import NAMES, attestation_object, flip, load, now_of, verify, with_attestation_object
from tests.webauthn.softkey import b64url, cose_key, make_key, unb64url
from webauthn import RegistrationRejected, public_key_from_cose

EXPECTED = {
    # name: (fmt, attestation type, AAGUID, sign count, user verified)
    "packed": ("packed", "basic", "6d44ba9b-f6ec-2e49-b930-0c8fe920cb73", 52, True),
    "packed-self": ("packed", "self", "adce0002-35bc-c60a-648b-0b25f1f05503", 1643485352, True),
    "fido-u2f": ("fido-u2f", "basic", "00000000-0000-0000-0000-000000000000", 0, False),
    "tpm": ("tpm", "attca", "08987058-cadc-4b81-b6e1-30de50dcbe96", 0, True),
    "android-key": ("android-key", "basic", "b93fd961-f2e6-462f-b122-82002247de78", 0, True),
    "android-safetynet": ("android-safetynet", "basic", "b93fd961-f2e6-462f-b122-82002247de78", 0, True),
    "apple": ("apple", "anonca", "f24a8e70-d0d3-f82c-2937-32523cc4de5a", 0, True),
    "none": ("none", "none", "00000000-0000-0000-0000-000000000000", 23, True),
}
SIGNED = [n for n in NAMES if n != "none"]  # formats whose statement covers the authenticator data


def rejected(recording, reason: str, **kwargs) -> RegistrationRejected:
    with pytest.raises(RegistrationRejected) as caught:
        verify(recording, **kwargs)
    assert caught.value.reason == reason, str(caught.value)
    return caught.value


def test_every_format_has_a_recording_with_its_source_and_time():
    for name in NAMES:
        recording = load(name)
        assert recording["source"]["repository"] and recording["source"]["path"]
        assert now_of(recording).tzinfo is not None
        assert recording["credential"]["response"]["clientDataJSON"]
    assert {load(n)["fmt"] for n in NAMES} == {
        "packed",
        "fido-u2f",
        "tpm",
        "android-key",
        "android-safetynet",
        "apple",
        "none",
    }


@pytest.mark.parametrize("name", NAMES)
def test_real_authenticator_registration_verifies_at_the_time_it_was_made(name):
    recording = load(name)
    fmt, attestation_type, aaguid, sign_count, user_verified = EXPECTED[name]

    result = verify(recording)

    assert result.fmt == fmt
    assert result.attestation_type == attestation_type
    assert result.aaguid == aaguid
    assert result.sign_count == sign_count
    assert result.user_present is True
    assert result.user_verified is user_verified
    assert result.credential_id == unb64url(recording["credential"]["rawId"])
    assert result.attestation_trusted is False  # the default policy requires no root
    assert result.transports == tuple(recording["credential"]["response"].get("transports", ()))
    public_key_from_cose(result.public_key)  # a usable key for the logins to come
    certificates = recorded.statement_certificates(recording)
    if attestation_type in ("self", "none"):
        assert result.attestation_certificates == ()
    else:
        assert result.attestation_certificates == tuple(certificates)
        assert x509.load_der_x509_certificate(result.attestation_certificates[0])


@pytest.mark.parametrize("name", ["packed", "packed-self", "fido-u2f", "tpm", "android-key"])
def test_flipped_byte_in_attestation_signature_is_attestation_invalid(name):
    recording = load(name)
    attestation = attestation_object(recording["credential"])
    attestation["attStmt"]["sig"] = flip(attestation["attStmt"]["sig"], -5)
    rejected(recording, "attestation_invalid", credential=with_attestation_object(recording, attestation))


def test_flipped_byte_in_safetynet_jws_signature_is_attestation_invalid():
    recording = load("android-safetynet")
    attestation = attestation_object(recording["credential"])
    header, payload, signature = attestation["attStmt"]["response"].split(b".")
    spoiled = b64url(flip(unb64url(signature.decode()), 10)).encode()
    attestation["attStmt"]["response"] = b".".join([header, payload, spoiled])
    rejected(recording, "attestation_invalid", credential=with_attestation_object(recording, attestation))


@pytest.mark.parametrize("name", [n for n in SIGNED if n != "fido-u2f"])
def test_flipped_byte_in_signed_authenticator_data_is_attestation_invalid(name):
    # The signature counter: covered by every statement except fido-u2f's (U2F signs no counter).
    recording = load(name)
    attestation = attestation_object(recording["credential"])
    attestation["authData"] = flip(attestation["authData"], 35)
    rejected(recording, "attestation_invalid", credential=with_attestation_object(recording, attestation))


@pytest.mark.parametrize("name", SIGNED)
def test_swapped_credential_public_key_is_attestation_invalid(name):
    recording = load(name)
    attestation = attestation_object(recording["credential"])
    auth_data = attestation["authData"]
    id_length = int.from_bytes(auth_data[53:55], "big")
    start = 55 + id_length
    alg = cbor.decode(auth_data[start:])[3]
    attestation["authData"] = auth_data[:start] + cose_key(alg, make_key(alg))
    rejected(recording, "attestation_invalid", credential=with_attestation_object(recording, attestation))


@pytest.mark.parametrize("name", NAMES)
def test_flipped_byte_in_rp_id_hash_is_rp_id_mismatch(name):
    recording = load(name)
    attestation = attestation_object(recording["credential"])
    attestation["authData"] = flip(attestation["authData"], 3)
    rejected(recording, "rp_id_mismatch", credential=with_attestation_object(recording, attestation))


def _with_client_data(recording, client_data: bytes):
    credential = copy.deepcopy(recording["credential"])
    credential["response"]["clientDataJSON"] = b64url(client_data)
    return credential


@pytest.mark.parametrize("name", NAMES)
def test_flipped_byte_in_client_data_challenge_is_challenge_mismatch(name):
    recording = load(name)
    client_data = unb64url(recording["credential"]["response"]["clientDataJSON"])
    challenge = json.loads(client_data)["challenge"]
    at = client_data.index(challenge.encode()) + 2
    spoiled = client_data[:at] + (b"A" if client_data[at : at + 1] != b"A" else b"B") + client_data[at + 1 :]
    rejected(recording, "challenge_mismatch", credential=_with_client_data(recording, spoiled))


@pytest.mark.parametrize("name", NAMES)
def test_flipped_byte_in_client_data_origin_is_origin_mismatch(name):
    recording = load(name)
    client_data = unb64url(recording["credential"]["response"]["clientDataJSON"])
    at = client_data.index(b'"origin":"') + len(b'"origin":"https') - 1
    rejected(recording, "origin_mismatch", credential=_with_client_data(recording, flip(client_data, at)))


@pytest.mark.parametrize("name", SIGNED)
def test_client_data_changed_after_signing_is_attestation_invalid(name):
    # Same challenge, origin and type, one more member: the client data hash no longer matches.
    recording = load(name)
    client_data = unb64url(recording["credential"]["response"]["clientDataJSON"])
    spoiled = client_data.rstrip()[:-1] + b',"extra":"x"}'
    assert json.loads(spoiled)["challenge"] == json.loads(client_data)["challenge"]
    rejected(recording, "attestation_invalid", credential=_with_client_data(recording, spoiled))


@pytest.mark.parametrize(
    "name, when",
    [
        ("apple", dt.datetime(2021, 9, 4, tzinfo=dt.timezone.utc)),  # the leaf lived three days
        ("apple", dt.datetime(2021, 8, 30, tzinfo=dt.timezone.utc)),
        ("android-key", dt.datetime(2025, 2, 3, tzinfo=dt.timezone.utc)),  # its intermediate expired
        ("tpm", dt.datetime(2025, 6, 1, tzinfo=dt.timezone.utc)),
        ("android-safetynet", dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)),
    ],
)
def test_statement_certificates_are_judged_at_the_given_time(name, when):
    error = rejected(load(name), "attestation_invalid", now=when)
    assert "not at" in str(error) or "stale" in str(error)


def test_real_clock_is_the_default_time():
    # The Apple leaf expired in 2021: without `now`, today's clock decides and refuses it.
    rejected(load("apple"), "attestation_invalid", now=None)
    assert verify(load("packed"), now=None).fmt == "packed"  # valid until 2050


@pytest.mark.parametrize("seconds, ok", [(5, True), (55, True), (120, False), (-120, False)])
def test_safetynet_response_must_be_fresh_at_now(seconds, ok):
    recording = load("android-safetynet")
    made = dt.datetime.fromtimestamp(1630703240.057, tz=dt.timezone.utc)
    when = made + dt.timedelta(seconds=seconds)
    if ok:
        assert verify(recording, now=when).fmt == "android-safetynet"
    else:
        rejected(recording, "attestation_invalid", now=when)


def test_android_key_chain_with_a_missing_link_is_attestation_invalid():
    recording = load("android-key")
    attestation = attestation_object(recording["credential"])
    del attestation["attStmt"]["x5c"][1]
    error = rejected(recording, "attestation_invalid", credential=with_attestation_object(recording, attestation))
    assert "not issued by" in str(error)


def test_fido_u2f_with_more_than_one_certificate_is_attestation_invalid():
    recording = load("fido-u2f")
    attestation = attestation_object(recording["credential"])
    attestation["attStmt"]["x5c"].append(attestation["attStmt"]["x5c"][0])
    rejected(recording, "attestation_invalid", credential=with_attestation_object(recording, attestation))


def test_tpm_statement_of_another_version_is_attestation_invalid():
    recording = load("tpm")
    attestation = attestation_object(recording["credential"])
    attestation["attStmt"]["ver"] = "1.2"
    rejected(recording, "attestation_invalid", credential=with_attestation_object(recording, attestation))


@pytest.mark.parametrize("fmt", ["fizzbuzz", "android-key-v2", ""])
def test_unknown_attestation_format_is_unsupported(fmt):
    recording = load("packed")
    attestation = attestation_object(recording["credential"])
    attestation["fmt"] = fmt
    rejected(recording, "unsupported_attestation_format", credential=with_attestation_object(recording, attestation))


def test_ecdaa_packed_statement_is_unsupported():
    recording = load("packed")
    attestation = attestation_object(recording["credential"])
    attestation["attStmt"]["ecdaaKeyId"] = b"\x01" * 32
    rejected(recording, "unsupported_attestation_format", credential=with_attestation_object(recording, attestation))


def test_none_statement_must_be_empty():
    recording = load("none")
    attestation = attestation_object(recording["credential"])
    attestation["attStmt"] = {"sig": b"\x00"}
    rejected(recording, "attestation_invalid", credential=with_attestation_object(recording, attestation))


def test_packed_statement_presented_as_another_format_is_attestation_invalid():
    recording = load("packed")
    attestation = attestation_object(recording["credential"])
    attestation["fmt"] = "tpm"
    rejected(recording, "attestation_invalid", credential=with_attestation_object(recording, attestation))


def test_recorded_client_data_hash_is_what_the_statements_sign():
    # A guard on the fixtures themselves: the client data we store is byte-for-byte what was signed.
    recording = load("android-key")
    client_data = unb64url(recording["credential"]["response"]["clientDataJSON"])
    certificate = x509.load_der_x509_certificate(recorded.statement_certificates(recording)[0])
    from webauthn.android_key import OID_KEY_DESCRIPTION, parse_key_description

    description = certificate.extensions.get_extension_for_oid(OID_KEY_DESCRIPTION).value.value
    assert parse_key_description(description)[0] == hashlib.sha256(client_data).digest()
