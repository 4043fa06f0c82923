"""Registration ceremonies against a software authenticator: each check of §7.1 on its own."""

from __future__ import annotations

import datetime as dt
import hashlib
import os

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.webauthn.softkey import SoftAuthenticator, TestCA, b64url, utc
from webauthn import RegistrationRejected, TrustPolicy, WebAuthnError, public_key_from_cose, verify_registration

ORIGIN = "https://mocert.example"
RP_ID = "mocert.example"
NOW = utc(2026, 6, 1)


@pytest.fixture
def challenge() -> bytes:
    return os.urandom(32)


def register(credential, challenge, **kwargs):
    arguments = dict(expected_challenge=challenge, expected_origin=ORIGIN, expected_rp_id=RP_ID, now=NOW)
    arguments.update(kwargs)
    return verify_registration(credential, **arguments)


def refused(credential, challenge, reason, **kwargs) -> RegistrationRejected:
    with pytest.raises(RegistrationRejected) as caught:
        register(credential, challenge, **kwargs)
    assert caught.value.reason == reason, str(caught.value)
    assert isinstance(caught.value, WebAuthnError)
    return caught.value


@pytest.mark.parametrize("alg", [-7, -257, -8])
def test_registration_with_each_accepted_algorithm_returns_the_credential(alg, challenge):
    authenticator = SoftAuthenticator(alg=alg)
    result = register(authenticator.create(challenge=challenge), challenge)
    assert result.credential_id == authenticator.credential_id
    assert result.public_key == authenticator.public_key  # the COSE key as sent, not re-encoded
    assert result.fmt == "packed" and result.attestation_type == "self"
    assert result.attestation_certificates == () and result.attestation_trusted is False
    assert result.aaguid == "6d6f6365-7274-7465-7374-617574680001"
    assert result.user_present and result.user_verified
    assert public_key_from_cose(result.public_key) is not None


def test_registration_with_x5c_attestation_returns_the_chain(challenge):
    authenticator = SoftAuthenticator(attestation="packed-x5c")
    result = register(authenticator.create(challenge=challenge), challenge)
    assert result.attestation_type == "basic"
    assert result.attestation_certificates == (authenticator.attestation_certificate.public_bytes(Encoding.DER),)


def test_registration_with_none_attestation(challenge):
    result = register(SoftAuthenticator(attestation="none").create(challenge=challenge), challenge)
    assert (result.fmt, result.attestation_type, result.attestation_certificates) == ("none", "none", ())


def test_transports_hybrid_and_internal_and_attachment_are_carried_through(challenge):
    credential = SoftAuthenticator().create(challenge=challenge, transports=["hybrid", "internal", "smart-card"])
    result = register(credential, challenge)
    assert result.transports == ("hybrid", "internal", "smart-card")
    assert result.authenticator_attachment == "platform"


@pytest.mark.parametrize("eligible, state", [(False, False), (True, False), (True, True)])
def test_backup_flags_are_carried_through(eligible, state, challenge):
    authenticator = SoftAuthenticator(backup_eligible=eligible, backup_state=state)
    result = register(authenticator.create(challenge=challenge), challenge)
    assert (result.backup_eligible, result.backup_state) == (eligible, state)


def test_backup_state_without_backup_eligibility_is_malformed(challenge):
    credential = SoftAuthenticator(backup_eligible=False, backup_state=True).create(challenge=challenge)
    refused(credential, challenge, "malformed")


def test_user_verification_required_and_not_done_is_user_not_verified(challenge):
    credential = SoftAuthenticator(user_verified=False).create(challenge=challenge)
    refused(credential, challenge, "user_not_verified")


def test_user_verification_not_required_accepts_a_response_without_uv(challenge):
    credential = SoftAuthenticator(user_verified=False).create(challenge=challenge)
    assert register(credential, challenge, require_user_verification=False).user_verified is False


def test_user_not_present_is_refused_even_when_uv_is_not_required(challenge):
    credential = SoftAuthenticator(user_present=False).create(challenge=challenge)
    refused(credential, challenge, "user_not_present", require_user_verification=False)


def test_wrong_origin_is_origin_mismatch(challenge):
    credential = SoftAuthenticator().create(challenge=challenge, origin="https://mocert.example.evil.tw")
    refused(credential, challenge, "origin_mismatch")


def test_origin_is_compared_exactly_not_as_a_prefix_or_by_host(challenge):
    for origin in ["https://mocert.example:8443", "http://mocert.example", "https://MOCERT.example"]:
        refused(SoftAuthenticator().create(challenge=challenge, origin=origin), challenge, "origin_mismatch")


def test_any_of_several_expected_origins_is_accepted(challenge):
    credential = SoftAuthenticator().create(challenge=challenge, origin="https://login.mocert.example")
    result = register(credential, challenge, expected_origin=[ORIGIN, "https://login.mocert.example"])
    assert result.fmt == "packed"


def test_wrong_rp_id_is_rp_id_mismatch(challenge):
    credential = SoftAuthenticator().create(challenge=challenge, rp_id="evil.example")
    refused(credential, challenge, "rp_id_mismatch")


def test_wrong_challenge_is_challenge_mismatch(challenge):
    credential = SoftAuthenticator().create(challenge=os.urandom(32))
    refused(credential, challenge, "challenge_mismatch")


def test_assertion_client_data_presented_as_registration_is_wrong_type(challenge):
    credential = SoftAuthenticator().create(challenge=challenge, type_="webauthn.get")
    refused(credential, challenge, "wrong_type")


def test_cross_origin_iframe_is_refused(challenge):
    credential = SoftAuthenticator().create(challenge=challenge, client_extra={"crossOrigin": True})
    refused(credential, challenge, "cross_origin")


def test_token_binding_present_is_refused_and_supported_is_fine(challenge):
    binding = {"tokenBinding": {"status": "present", "id": "x"}}
    present = SoftAuthenticator().create(challenge=challenge, client_extra=binding)
    refused(present, challenge, "token_binding_unsupported")
    supported = SoftAuthenticator().create(challenge=challenge, client_extra={"tokenBinding": {"status": "supported"}})
    assert register(supported, challenge).fmt == "packed"


@pytest.mark.parametrize(
    "token_binding",
    [{"status": "bogus"}, {"status": "not-supported"}, {}, {"status": None}, "supported", ["present"], 1, None],
)
def test_token_binding_that_is_not_an_object_with_a_known_status_is_refused(token_binding, challenge):
    """WebAuthn L2 §7.1 step 10: when present, tokenBinding.status is "present" or "supported"."""
    credential = SoftAuthenticator().create(challenge=challenge, client_extra={"tokenBinding": token_binding})
    refused(credential, challenge, "token_binding_invalid")


def test_id_and_raw_id_that_differ_are_credential_mismatch(challenge):
    credential = SoftAuthenticator().create(challenge=challenge)
    credential["id"] = b64url(os.urandom(32))
    refused(credential, challenge, "credential_mismatch")


def test_raw_id_other_than_the_attested_credential_is_credential_mismatch(challenge):
    credential = SoftAuthenticator().create(challenge=challenge)
    other = b64url(os.urandom(32))
    credential["id"] = credential["rawId"] = other
    refused(credential, challenge, "credential_mismatch")


def test_credential_id_longer_than_1023_bytes_is_malformed(challenge):
    authenticator = SoftAuthenticator()
    authenticator.credential_id = os.urandom(1024)
    refused(authenticator.create(challenge=challenge), challenge, "malformed")


def test_algorithm_not_offered_is_unsupported_algorithm(challenge):
    credential = SoftAuthenticator(alg=-35).create(challenge=challenge)  # ES384: fido2 would take it
    refused(credential, challenge, "unsupported_algorithm")


def test_attestation_certificate_is_checked_at_now(challenge):
    authenticator = SoftAuthenticator(attestation="packed-x5c")  # leaf valid 2021-2031
    credential = authenticator.create(challenge=challenge)
    assert register(credential, challenge, now=utc(2030, 12, 31)).attestation_type == "basic"
    refused(credential, challenge, "attestation_invalid", now=utc(2031, 1, 2))
    refused(credential, challenge, "attestation_invalid", now=utc(2020, 12, 31))


def test_attestation_certificate_for_another_aaguid_is_attestation_invalid(challenge):
    authenticator = SoftAuthenticator(attestation="packed-x5c")
    authenticator.aaguid = bytes(16)  # authData now says another model than the certificate
    refused(authenticator.create(challenge=challenge), challenge, "attestation_invalid")


def test_trust_policy_requiring_a_root_refuses_self_and_none(challenge):
    policy = TrustPolicy.roots([TestCA().der])
    for attestation in ("packed-self", "none"):
        credential = SoftAuthenticator(attestation=attestation).create(challenge=challenge)
        refused(credential, challenge, "attestation_untrusted", trust=policy)


def test_trust_policy_roots_accepts_a_chain_to_its_root(challenge):
    ca = TestCA()
    authenticator = SoftAuthenticator(attestation="packed-x5c", ca=ca)
    result = register(authenticator.create(challenge=challenge), challenge, trust=TrustPolicy.roots([ca.der]))
    assert result.attestation_trusted is True
    refused(
        authenticator.create(challenge=challenge),
        challenge,
        "attestation_untrusted",
        trust=TrustPolicy.roots([TestCA().der]),
    )


def test_expired_root_is_not_trusted(challenge):
    ca = TestCA(not_after=utc(2027, 1, 1))
    authenticator = SoftAuthenticator(attestation="packed-x5c", ca=ca)
    credential = authenticator.create(challenge=challenge)
    assert register(credential, challenge, now=utc(2026, 12, 1), trust=TrustPolicy.roots([ca.der])).attestation_trusted
    refused(credential, challenge, "attestation_untrusted", now=utc(2027, 6, 1), trust=TrustPolicy.roots([ca.der]))


def test_caller_mistakes_raise_type_or_value_errors_not_a_refusal(challenge):
    credential = SoftAuthenticator().create(challenge=challenge)
    with pytest.raises(TypeError):
        register(credential, "not-bytes")
    with pytest.raises(ValueError):
        register(credential, challenge, now=dt.datetime(2026, 1, 1))  # naive
    with pytest.raises(ValueError):
        register(credential, challenge, expected_origin=[])


def test_the_result_is_frozen(challenge):
    result = register(SoftAuthenticator().create(challenge=challenge), challenge)
    with pytest.raises(AttributeError):
        result.sign_count = 5  # type: ignore[misc]
    assert hashlib.sha256(result.attestation_object).digest()
