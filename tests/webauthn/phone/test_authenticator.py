"""The software authenticator, checked by python-fido2's server and parsers (which it does not use to build)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from fido2.attestation import AttestationType, PackedAttestation
from fido2.cose import ES256
from fido2.webauthn import AttestationObject, AuthenticatorData

from webauthn.phone import (
    AAGUID,
    InvalidStateError,
    KeyFileError,
    NotAllowedError,
    PhoneBrowser,
    SoftwareAuthenticator,
)
from webauthn.phone.encoding import b64url_decode, b64url_encode

from .support import ORIGIN, USER

ROOT = Path(__file__).resolve().parents[3]


def _attestation_object(answer: dict) -> AttestationObject:
    return AttestationObject(b64url_decode(answer["response"]["attestationObject"]))


def test_registration_passes_fido2_server_with_up_uv_at_and_the_phones_aaguid(relying_party, browser):
    auth_data = relying_party.register(browser)

    assert auth_data.is_user_present() and auth_data.is_user_verified() and auth_data.is_attested()
    assert not auth_data.is_backup_eligible() and not auth_data.is_backed_up()
    assert auth_data.counter == 0
    assert auth_data.rp_id_hash == hashlib.sha256(b"localhost").digest()
    assert auth_data.credential_data.aaguid == AAGUID.bytes
    assert len(auth_data.credential_data.credential_id) == 32
    assert isinstance(auth_data.credential_data.public_key, ES256)


def test_packed_self_attestation_is_signed_by_the_new_credential_key(relying_party, browser):
    options, _ = relying_party.creation_options()
    answer = browser.create(options, origin=ORIGIN)
    attestation = _attestation_object(answer)
    client_data_hash = hashlib.sha256(b64url_decode(answer["response"]["clientDataJSON"])).digest()

    assert attestation.fmt == "packed"
    assert set(attestation.att_stmt) == {"alg", "sig"}  # self-attestation: no x5c
    assert attestation.att_stmt["alg"] == -7
    result = PackedAttestation().verify(attestation.att_stmt, attestation.auth_data, client_data_hash)
    assert result.attestation_type == AttestationType.SELF
    assert answer["response"]["authenticatorData"] == b64url_encode(attestation.auth_data)


def test_none_attestation_format_has_an_empty_statement(relying_party, key_file):
    browser = PhoneBrowser(SoftwareAuthenticator(key_file, attestation_format="none"))
    options, state = relying_party.creation_options()
    answer = browser.create(options, origin=ORIGIN)

    attestation = _attestation_object(answer)
    assert (attestation.fmt, attestation.att_stmt) == ("none", {})
    assert relying_party.server.register_complete(state, answer).is_user_verified()


def test_the_spki_public_key_in_the_answer_is_the_credential_key(relying_party, browser):
    options, state = relying_party.creation_options()
    answer = browser.create(options, origin=ORIGIN)
    credential_key = relying_party.server.register_complete(state, answer).credential_data.public_key

    spki = serialization.load_der_public_key(b64url_decode(answer["response"]["publicKey"]))
    assert ES256.from_cryptography_key(spki) == credential_key


def test_backup_flags_are_configurable_and_bs_needs_be(relying_party, key_file):
    synced = PhoneBrowser(SoftwareAuthenticator(key_file, backup_eligible=True, backed_up=True))
    auth_data = relying_party.register(synced)
    assert auth_data.is_backup_eligible() and auth_data.is_backed_up()

    with pytest.raises(ValueError, match="backup_eligible"):
        SoftwareAuthenticator(key_file, backed_up=True)


def test_each_authentication_passes_and_increments_the_sign_count(relying_party, browser, authenticator):
    relying_party.register(browser)

    counters = []
    for _ in range(3):
        credential, answer = relying_party.authenticate(browser)
        assert credential == relying_party.credentials[0]
        auth_data = AuthenticatorData(b64url_decode(answer["response"]["authenticatorData"]))
        assert auth_data.is_user_present() and auth_data.is_user_verified() and not auth_data.is_attested()
        counters.append(auth_data.counter)

    assert counters == [1, 2, 3]
    assert authenticator.credentials()[0].sign_count == 3


def test_a_phone_without_a_counter_always_reports_zero(relying_party, key_file):
    browser = PhoneBrowser(SoftwareAuthenticator(key_file, counter=False))
    relying_party.register(browser)
    _, answer = relying_party.authenticate(browser)
    assert AuthenticatorData(b64url_decode(answer["response"]["authenticatorData"])).counter == 0


def test_a_discoverable_login_with_no_allow_list_returns_the_user_handle(relying_party, browser):
    registered = relying_party.register(browser)

    credential, answer = relying_party.authenticate(browser, allow=False)

    assert credential.credential_id == registered.credential_data.credential_id
    assert b64url_decode(answer["response"]["userHandle"]) == USER.id
    assert b64url_decode(answer["rawId"]) == registered.credential_data.credential_id


def test_an_excluded_credential_is_refused_and_nothing_is_created(relying_party, browser, authenticator):
    relying_party.register(browser)
    options, _ = relying_party.creation_options()  # excludes the credential just registered
    assert options["excludeCredentials"]

    with pytest.raises(InvalidStateError):
        browser.create(options, origin=ORIGIN)
    assert len(authenticator.credentials()) == 1


def test_a_new_credential_for_the_same_user_replaces_the_old_one(relying_party, browser, authenticator):
    first = relying_party.register(browser, exclude=False)
    second = relying_party.register(browser, exclude=False)

    held = authenticator.credentials()
    assert [c.credential_id for c in held] == [second.credential_data.credential_id]
    assert first.credential_data.credential_id != second.credential_data.credential_id


def test_a_phone_without_biometrics_has_uv_off_and_a_server_requiring_uv_rejects_it(relying_party, key_file):
    browser = PhoneBrowser(SoftwareAuthenticator(key_file, user_verified=False))

    options, state = relying_party.creation_options(user_verification="required")
    with pytest.raises(ValueError, match="User verification required"):
        relying_party.server.register_complete(state, browser.create(options, origin=ORIGIN))

    auth_data = relying_party.register(browser, user_verification="preferred")
    assert auth_data.is_user_present() and not auth_data.is_user_verified()
    with pytest.raises(ValueError, match="(?i)user verification required"):
        relying_party.authenticate(browser, user_verification="required")
    credential, _ = relying_party.authenticate(browser, user_verification="preferred")
    assert credential == auth_data.credential_data


def test_no_matching_credential_is_not_allowed(relying_party, browser):
    options, _ = relying_party.request_options(allow=False)
    with pytest.raises(NotAllowedError):
        browser.get(options, origin=ORIGIN)

    relying_party.register(browser)
    options, _ = relying_party.request_options()
    options["allowCredentials"] = [{"type": "public-key", "id": b64url_encode(b"\x01" * 32)}]
    with pytest.raises(NotAllowedError):
        browser.get(options, origin=ORIGIN)


def test_the_key_file_is_0600_and_holds_a_pkcs8_key(relying_party, browser, key_file):
    registered = relying_party.register(browser)

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    record = json.loads(key_file.read_text())["credentials"][0]
    assert record["private_key"].startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8
    private_key = serialization.load_pem_private_key(record["private_key"].encode(), password=None)
    assert ES256.from_cryptography_key(private_key.public_key()) == registered.credential_data.public_key
    assert b64url_decode(record["credential_id"]) == registered.credential_data.credential_id
    assert (record["rp_id"], b64url_decode(record["user_handle"])) == ("localhost", USER.id)


def test_a_new_instance_on_the_same_key_file_logs_in(relying_party, browser, key_file):
    relying_party.register(browser)
    relying_party.authenticate(browser)

    reopened = PhoneBrowser(SoftwareAuthenticator(key_file))
    _, answer = relying_party.authenticate(reopened)

    assert AuthenticatorData(b64url_decode(answer["response"]["authenticatorData"])).counter == 2


def test_another_process_logs_in_with_the_credential_the_first_registered(relying_party, browser, key_file):
    relying_party.register(browser)
    options, state = relying_party.request_options()
    script = (
        "import json, sys\n"
        "from webauthn.phone import PhoneBrowser, SoftwareAuthenticator\n"
        "browser = PhoneBrowser(SoftwareAuthenticator(sys.argv[1]))\n"
        "print(json.dumps(browser.get(json.load(sys.stdin), origin=sys.argv[2])))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(key_file), ORIGIN],
        input=json.dumps(options),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr

    credential = relying_party.server.authenticate_complete(state, relying_party.credentials, json.loads(result.stdout))
    assert credential == relying_party.credentials[0]


def test_a_key_file_other_users_may_read_is_refused(relying_party, browser, key_file):
    relying_party.register(browser)
    os.chmod(key_file, 0o644)

    with pytest.raises(KeyFileError, match="chmod 600"):
        SoftwareAuthenticator(key_file).credentials()


def test_a_file_that_is_not_a_phone_key_file_is_refused(key_file):
    key_file.write_text('{"hello": "world"}')
    os.chmod(key_file, 0o600)

    with pytest.raises(KeyFileError, match="not a MoCert phone key file"):
        SoftwareAuthenticator(key_file).credentials()


def test_a_memory_only_phone_writes_no_file(relying_party, tmp_path):
    browser = PhoneBrowser(SoftwareAuthenticator(None))
    relying_party.register(browser)
    relying_party.authenticate(browser)

    assert browser.authenticator.credentials()[0].sign_count == 1
    assert list(tmp_path.iterdir()) == []
