"""Path validation and revocation of card certificates against the demo PKI, over real HTTP."""

import asyncio
import itertools
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
from asn1crypto import crl as asn1_crl
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from iccard import errors
from iccard.demo_pki import DemoPKI
from iccard.validation import CardCertificateValidator, RevocationCache, TrustSettings, _CachingCRLFetcher
from tests import forged, forged_answers
from tests.forged_answers import serve_once
from tests.support import card_of


def _settings(pki: DemoPKI, **overrides) -> TrustSettings:
    values = {
        "anchors": (pki.root_certificate.public_bytes(Encoding.DER),),
        "intermediates": (pki.issuer_certificate.public_bytes(Encoding.DER),),
        "policy_oids": ("2.16.886.101.0.3.3",),
        "revocation_mode": "hard-fail",
        "fetch_timeout": 2.0,
        "revocation_origins": (pki.manifest["base_url"],),  # the revocation server: the demo CA names no URL itself
    }
    values.update(overrides)
    return TrustSettings(**values)


@pytest.fixture
def validator(pki):
    return CardCertificateValidator(_settings(pki))


def test_a_valid_card_validates_and_ocsp_is_asked(validator, pki, revocation_server):
    validator.validate(pki.card_certificate(card_of(pki, "A123456789")))
    assert any(path.endswith("/ocsp") for path in revocation_server.requests)


def test_an_expired_card_is_refused_as_expired(validator, pki):
    with pytest.raises(errors.CertificateExpired):
        validator.validate(pki.card_certificate(card_of(pki, "F131313136", "expired")))


def test_a_revoked_card_is_refused_as_revoked_by_ocsp(validator, pki, revocation_server):
    with pytest.raises(errors.CertificateRevoked):
        validator.validate(pki.card_certificate(card_of(pki, "K120000006", "revoked")))
    assert any(path.endswith("/ocsp") for path in revocation_server.requests)


def test_when_ocsp_is_down_the_crl_decides(validator, pki, revocation_server):
    revocation_server.down.add("ocsp")
    validator.validate(pki.card_certificate(card_of(pki, "A123456789")))
    with pytest.raises(errors.CertificateRevoked):
        validator.validate(pki.card_certificate(card_of(pki, "K120000006", "revoked")))
    assert any(path.endswith(".crl") for path in revocation_server.requests)


def test_when_ocsp_and_crl_are_down_hard_fail_refuses(validator, pki, revocation_server):
    revocation_server.down.update({"ocsp", "crl"})
    with pytest.raises(errors.RevocationUnknown):
        validator.validate(pki.card_certificate(card_of(pki, "A123456789")))


def test_soft_fail_mode_accepts_when_revocation_cannot_be_checked(pki, revocation_server):
    revocation_server.down.update({"ocsp", "crl"})
    validator = CardCertificateValidator(_settings(pki, revocation_mode="soft-fail"))
    validator.validate(pki.card_certificate(card_of(pki, "A123456789")))


def test_revocation_answers_are_cached_until_their_next_update(pki, revocation_server):
    cache = RevocationCache()
    validator = CardCertificateValidator(_settings(pki), cache)
    cert = pki.card_certificate(card_of(pki, "A123456789"))
    validator.validate(cert)
    asked = len(revocation_server.requests)
    revocation_server.down.update({"ocsp", "crl"})  # a cached answer needs no responder
    CardCertificateValidator(_settings(pki), cache).validate(cert)
    assert len(revocation_server.requests) == asked
    cache.clear()
    with pytest.raises(errors.RevocationUnknown):
        validator.validate(cert)


def test_a_card_from_an_untrusted_ca_is_an_unknown_issuer(tmp_path, validator):
    stranger = DemoPKI.create(tmp_path / "stranger", "http://127.0.0.1:9")
    with pytest.raises(errors.UnknownIssuer):
        validator.validate(stranger.card_certificate(stranger.cards[0]))


def test_a_card_without_the_configured_policy_is_not_accepted(pki):
    validator = CardCertificateValidator(_settings(pki, policy_oids=("1.2.3.4",)))
    with pytest.raises(errors.CertificateNotAccepted):
        validator.validate(pki.card_certificate(card_of(pki, "A123456789")))


def test_a_ca_certificate_cannot_log_in_as_a_card(pki, validator):
    # The issuing CA chains to the root, but its key usage is not a citizen's signing key.
    with pytest.raises(errors.CertificateNotAccepted):
        validator.validate(pki.issuer_certificate)


def test_the_real_grca_g3_and_moica_g3_certificates_parse_and_chain(real_trust):
    grca = x509.load_der_x509_certificate((real_trust / "GRCA-G3.cer").read_bytes())
    moica = x509.load_der_x509_certificate((real_trust / "MOICA-G3.cer").read_bytes())
    moica.verify_directly_issued_by(grca)
    aki = moica.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    ski = grca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert aki == ski  # MOICA generations share a DN; the key identifier tells them apart
    assert moica.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    # Both load as configured trust material (DER files), as a real deployment would name them.
    CardCertificateValidator(
        TrustSettings(
            anchors=(grca.public_bytes(Encoding.DER),),
            intermediates=(moica.public_bytes(Encoding.DER),),
            policy_oids=("2.16.886.101.0.3.3",),
        )
    )


def test_validation_works_from_inside_a_running_event_loop(validator, pki):
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    async def inside_a_loop():
        validator.validate(pki.card_certificate(card_of(pki, "A123456789")))
        return "validated"

    # A thread of its own, so that the test's loop is the only one running there.
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(asyncio.run, inside_a_loop()).result() == "validated"


# -- nothing is fetched for a stranger ----------------------------------------------------------------

@pytest.mark.parametrize("mode", ["hard-fail", "soft-fail"])
@pytest.mark.parametrize("kind", forged.STRANGERS)
def test_a_certificate_from_no_configured_ca_is_refused_without_any_request(
    pki, revocation_server, request_recorder, kind, mode
):
    stranger = forged.STRANGERS[kind](pki, request_recorder.url)
    validator = CardCertificateValidator(_settings(pki, revocation_mode=mode))
    with pytest.raises(errors.UnknownIssuer):
        validator.validate(stranger.certificate)
    assert request_recorder.requests == []
    assert revocation_server.requests == []


def test_revocation_addresses_on_a_host_not_allowed_are_not_asked(pki, request_recorder, caplog):
    # A genuine card of the configured CA, but its OCSP and CRL point elsewhere (another port is another origin).
    card = forged.issued_by_the_demo_ca(pki, request_recorder.url)
    with pytest.raises(errors.RevocationUnknown):
        CardCertificateValidator(_settings(pki)).validate(card.certificate)
    assert request_recorder.requests == []
    # The operator learns which address a card needed.
    assert f"not fetching {request_recorder.url}/ocsp" in caplog.text
    assert f"not fetching {request_recorder.url}/stranger.crl" in caplog.text


def test_revocation_hosts_added_by_configuration_are_asked(pki, request_recorder):
    card = forged.issued_by_the_demo_ca(pki, request_recorder.url)
    validator = CardCertificateValidator(_settings(pki, revocation_origins=(request_recorder.url,)))
    with pytest.raises(errors.RevocationUnknown):  # the recorder answers 404
        validator.validate(card.certificate)
    assert "POST /ocsp" in request_recorder.requests
    assert "GET /stranger.crl" in request_recorder.requests
    assert not any("issuer.cer" in r for r in request_recorder.requests)  # never a certificate by AIA


def test_an_allowed_revocation_host_cannot_redirect_elsewhere(pki, request_recorder):
    from tests.support import RequestRecorder

    elsewhere = RequestRecorder()
    try:
        request_recorder.redirect_to = f"{elsewhere.url}/internal"
        card = forged.issued_by_the_demo_ca(pki, request_recorder.url)
        validator = CardCertificateValidator(_settings(pki, revocation_origins=(request_recorder.url,)))
        with pytest.raises(errors.RevocationUnknown):
            validator.validate(card.certificate)
        assert request_recorder.requests
        assert elsewhere.requests == []
    finally:
        elsewhere.stop()


def test_revocation_hosts_come_from_the_configured_ca_certificates_and_the_setting(real_trust):
    grca = (real_trust / "GRCA-G3.cer").read_bytes()
    moica = (real_trust / "MOICA-G3.cer").read_bytes()
    validator = CardCertificateValidator(
        TrustSettings(
            anchors=(grca,),
            intermediates=(moica,),
            revocation_origins=("HTTPS://CRL-MOICA.moi.gov.tw:443",),
        )
    )
    assert validator.revocation_origins == frozenset(
        {"http://grca.nat.gov.tw", "http://ocsp.grca.nat.gov.tw", "https://crl-moica.moi.gov.tw"}
    )


@pytest.mark.parametrize(
    "origin", ["crl-moica.moi.gov.tw", "ftp://crl.example", "https://crl.example/crl/x.crl", "https://", "http://a:b"]
)
def test_a_revocation_host_setting_that_is_not_an_http_origin_is_refused(pki, origin):
    with pytest.raises(ValueError):
        CardCertificateValidator(_settings(pki, revocation_origins=(origin,)))


def test_a_cards_encryption_certificate_cannot_log_in(validator, pki, revocation_server):
    # Same person, same issuer, but keyEncipherment + dataEncipherment: not a key to authenticate with.
    with pytest.raises(errors.CertificateNotAccepted):
        validator.validate(pki.card_encryption_certificate(card_of(pki, "A123456789")))
    assert revocation_server.requests == []  # refused before anyone is asked


# -- the real MOICA profile: G2 and G3, told apart by key identifier --------------------------------------

_card_numbers = itertools.count(1)


def _moica_settings(moica_pki, **overrides) -> TrustSettings:
    # Exactly what a deployment for real cards configures: both roots, both MOICA generations, the policy;
    # every revocation address comes from the CA certificates themselves (no extra host).
    values = {
        "anchors": tuple(moica_pki.certificate(f"GRCA-{g}").public_bytes(Encoding.DER) for g in ("G2", "G3")),
        "intermediates": tuple(moica_pki.certificate(f"MOICA-{g}").public_bytes(Encoding.DER) for g in ("G2", "G3")),
        "policy_oids": ("2.16.886.101.0.3.3",),
        "fetch_timeout": 2.0,
    }
    values.update(overrides)
    return TrustSettings(**values)


def _moica_card(moica_pki, **options):
    return moica_pki.issue_card("李大同", "A234567891", f"VALI{next(_card_numbers):012d}", **options)


@pytest.mark.parametrize("generation", ["G2", "G3"])
def test_a_card_of_either_moica_generation_validates_with_both_configured(moica_pki, revocation_server, generation):
    card = next(c for c in moica_pki.cards if c.generation == generation)
    CardCertificateValidator(_moica_settings(moica_pki)).validate(moica_pki.card_certificate(card))
    # The card's status at MOICA, and MOICA's own at GRCA (G3: OCSP; G2 declares its CRL alone).
    assert any(p.endswith("/moica-profile/moica/ocsp") for p in revocation_server.requests)
    root_asked = "/moica-profile/grca/ocsp" if generation == "G3" else "/moica-profile/GRCA-G2.crl"
    assert any(p.endswith(root_asked) for p in revocation_server.requests)


def test_a_moica_g3_card_with_digital_signature_alone_validates(moica_pki):
    cert = moica_pki.card_certificate(_moica_card(moica_pki))
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.content_commitment
    CardCertificateValidator(_moica_settings(moica_pki)).validate(cert)


def test_a_moica_card_without_digital_signature_is_not_accepted(moica_pki, revocation_server):
    card = _moica_card(moica_pki, key_usage=x509.KeyUsage(
        digital_signature=False, content_commitment=True, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
    ))
    with pytest.raises(errors.CertificateNotAccepted):
        CardCertificateValidator(_moica_settings(moica_pki)).validate(moica_pki.card_certificate(card))


def test_a_moica_card_without_the_policy_is_not_accepted(moica_pki, revocation_server):
    card = _moica_card(moica_pki, policy=False)
    with pytest.raises(errors.CertificateNotAccepted):
        CardCertificateValidator(_moica_settings(moica_pki)).validate(moica_pki.card_certificate(card))


def test_a_card_whose_key_identifier_names_g3_but_that_g2_signed_is_an_unknown_issuer(moica_pki, revocation_server):
    card = _moica_card(moica_pki, generation="G3", signed_by="G2")
    cert = moica_pki.card_certificate(card)
    # Same issuer name, a key identifier naming G3: only the signature gives it away.
    assert cert.issuer == moica_pki.certificate("MOICA-G2").subject == moica_pki.certificate("MOICA-G3").subject
    with pytest.raises(errors.UnknownIssuer):
        CardCertificateValidator(_moica_settings(moica_pki)).validate(cert)
    assert revocation_server.requests == []


@pytest.mark.parametrize("generation", ["G2", "G3"])
def test_with_grca_unreachable_and_nothing_cached_the_issuers_status_is_unknown(
    moica_pki, revocation_server, generation
):
    revocation_server.down.update({"root-ocsp", "root-crl"})
    card = next(c for c in moica_pki.cards if c.generation == generation)
    with pytest.raises(errors.IssuerRevocationUnknown):
        CardCertificateValidator(_moica_settings(moica_pki)).validate(moica_pki.card_certificate(card))


def test_with_grca_unreachable_the_card_validates_on_grcas_cached_answer(moica_pki, revocation_server):
    cache = RevocationCache()
    cert = moica_pki.card_certificate(next(c for c in moica_pki.cards if c.generation == "G3"))
    CardCertificateValidator(_moica_settings(moica_pki), cache).validate(cert)
    revocation_server.down.update({"root-ocsp", "root-crl"})
    CardCertificateValidator(_moica_settings(moica_pki), cache).validate(cert)
    cache.clear()
    with pytest.raises(errors.IssuerRevocationUnknown):
        CardCertificateValidator(_moica_settings(moica_pki), cache).validate(cert)


def test_the_cards_own_status_unknown_is_not_the_issuers(moica_pki, revocation_server):
    revocation_server.down.update({"ocsp", "crl"})  # MOICA's responder and CRLs; GRCA's still answer
    cert = moica_pki.card_certificate(next(c for c in moica_pki.cards if c.generation == "G3"))
    with pytest.raises(errors.RevocationUnknown) as raised:
        CardCertificateValidator(_moica_settings(moica_pki)).validate(cert)
    assert not isinstance(raised.value, errors.IssuerRevocationUnknown)


# -- the revocation cache: what is kept, for how long -------------------------------------------------


class _Clock:
    """The cache's time, moved by the test; the library still judges each answer by the real time."""

    def __init__(self) -> None:
        self.ahead = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.ahead


def test_the_cache_keeps_an_answer_until_its_next_update_and_no_longer():
    clock = _Clock()
    cache = RevocationCache(clock)
    now = clock()
    cache.put("answer", "good", now + timedelta(hours=1), fetched_at=now)
    clock.ahead = timedelta(minutes=59)
    assert cache.get("answer") == "good"
    clock.ahead = timedelta(hours=1)
    assert cache.get("answer") is None


def test_the_cache_keeps_no_answer_longer_than_36_hours_whatever_its_next_update_says():
    clock = _Clock()
    cache = RevocationCache(clock)
    now = clock()
    cache.put("answer", "good", now + timedelta(days=3650), fetched_at=now)
    clock.ahead = timedelta(hours=35, minutes=59)
    assert cache.get("answer") == "good"
    clock.ahead = timedelta(hours=36)
    assert cache.get("answer") is None


def test_the_cache_keeps_no_answer_without_a_next_update():
    cache = RevocationCache()
    cache.put("answer", "good", None, fetched_at=datetime.now(timezone.utc))
    assert cache.get("answer") is None


def test_the_cache_lets_expired_answers_go_though_no_one_asks_for_them_again():
    clock = _Clock()
    cache = RevocationCache(clock)
    now = clock()
    for serial in range(RevocationCache.PRUNE_EVERY - 1):  # a card each, seen once
        cache.put(("ocsp", serial), "good", now + timedelta(hours=1), fetched_at=now)
    clock.ahead = timedelta(hours=2)
    cache.put("a later card", "good", clock() + timedelta(hours=1), fetched_at=clock())
    assert len(cache) == 1 and cache.get("a later card") == "good"


def test_the_cache_holds_at_most_its_number_of_entries_losing_those_that_expire_soonest():
    clock = _Clock()
    cache = RevocationCache(clock, max_entries=3)
    now = clock()
    for name, hours in [("two", 2), ("one", 1), ("four", 4), ("three", 3)]:
        cache.put(name, name, now + timedelta(hours=hours), fetched_at=now)
    assert len(cache) == 3 and cache.get("one") is None
    assert [cache.get(name) for name in ("two", "three", "four")] == ["two", "three", "four"]


class _Distribution:
    """A CRL distribution point (the inner fetcher of the cache's CRL fetcher) serving ``crls`` (DER), and
    counting how often it was asked."""

    def __init__(self, *crls: bytes) -> None:
        self.crls = [asn1_crl.CertificateList.load(der) for der in crls]
        self.asked = 0

    async def fetch(self, cert, *, use_deltas=None):
        self.asked += 1
        return list(self.crls)


def _issuer_key_info(certificate: x509.Certificate) -> asn1_keys.PublicKeyInfo:
    spki = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return asn1_keys.PublicKeyInfo.load(spki)


def _fetch_and_commit(distribution: _Distribution, cache: RevocationCache, cert, keys) -> list:
    fetcher = _CachingCRLFetcher(distribution, cache, lambda _: keys)
    # In a thread of its own: an event loop may already run in this one (Playwright's, after browser tests).
    with ThreadPoolExecutor(max_workers=1) as pool:
        crls = pool.submit(asyncio.run, fetcher.fetch(cert)).result()
    fetcher.commit()
    return crls


def test_crls_are_not_kept_when_no_configured_ca_key_can_check_them_and_the_log_says_so(pki, caplog):
    cache = RevocationCache()
    cert = asn1_x509.Certificate.load(pki.card_certificate(card_of(pki, "A123456789")).public_bytes(Encoding.DER))
    distribution = _Distribution(pki.crl())
    _fetch_and_commit(distribution, cache, cert, [])
    _fetch_and_commit(distribution, cache, cert, [])
    assert distribution.asked == 2
    assert "no configured CA key" in caplog.text and "not signed" not in caplog.text


def test_of_the_crls_fetched_only_those_the_ca_signed_are_kept(pki):
    cache = RevocationCache()
    cert = asn1_x509.Certificate.load(pki.card_certificate(card_of(pki, "A123456789")).public_bytes(Encoding.DER))
    keys = [_issuer_key_info(pki.issuer_certificate)]
    forged_crl = forged_answers.demo_crl(pki)
    genuine = pki.crl()
    assert len(_fetch_and_commit(_Distribution(forged_crl, genuine), cache, cert, keys)) == 2
    distribution = _Distribution()  # asked again, it would answer nothing
    assert [crl.dump() for crl in _fetch_and_commit(distribution, cache, cert, keys)] == [genuine]
    assert distribution.asked == 0


@pytest.mark.parametrize(
    ("generation", "grcas_answer", "lasts"),
    [("G3", "/moica-profile/grca/ocsp", timedelta(hours=1)), ("G2", "/moica-profile/GRCA-G2.crl", timedelta(hours=36))],
)
def test_grcas_cached_answer_is_not_used_past_its_next_update(
    moica_pki, revocation_server, generation, grcas_answer, lasts
):
    # The demo's OCSP answers hold an hour, its CRLs 36 hours (as GRCA's): G3 is checked at GRCA by OCSP,
    # G2 by CRL.
    clock = _Clock()
    cache = RevocationCache(clock)
    cert = moica_pki.card_certificate(next(c for c in moica_pki.cards if c.generation == generation))
    CardCertificateValidator(_moica_settings(moica_pki), cache).validate(cert)
    assert any(p.endswith(grcas_answer) for p in revocation_server.requests)
    revocation_server.down.update({"root-ocsp", "root-crl"})
    clock.ahead = lasts - timedelta(minutes=5)
    CardCertificateValidator(_moica_settings(moica_pki), cache).validate(cert)
    clock.ahead = lasts + timedelta(minutes=5)
    with pytest.raises(errors.IssuerRevocationUnknown):
        CardCertificateValidator(_moica_settings(moica_pki), cache).validate(cert)


def test_a_crl_valid_for_longer_is_kept_36_hours_and_no_longer(moica_pki, revocation_server):
    # GRCA's real CRL, saying it holds three days: the cap, not the CRL, ends its time in the cache.
    clock = _Clock()
    cache = RevocationCache(clock)
    cert = moica_pki.card_certificate(next(c for c in moica_pki.cards if c.generation == "G2"))
    three_days = forged_answers.grca_crl_lasting(moica_pki, "G2", timedelta(days=3))
    served = serve_once(revocation_server, "root-crl", three_days)
    CardCertificateValidator(_moica_settings(moica_pki), cache).validate(cert)
    assert len(served) == 1
    revocation_server.down.update({"root-ocsp", "root-crl"})
    clock.ahead = timedelta(hours=35, minutes=55)
    CardCertificateValidator(_moica_settings(moica_pki), cache).validate(cert)
    clock.ahead = timedelta(hours=36, minutes=5)
    with pytest.raises(errors.IssuerRevocationUnknown):
        CardCertificateValidator(_moica_settings(moica_pki), cache).validate(cert)


def test_a_cards_cached_answer_is_not_used_past_its_next_update(pki, revocation_server):
    clock = _Clock()
    cache = RevocationCache(clock)
    cert = pki.card_certificate(card_of(pki, "A123456789"))
    CardCertificateValidator(_settings(pki), cache).validate(cert)
    revocation_server.down.update({"ocsp", "crl"})
    revocation_server.requests.clear()
    clock.ahead = timedelta(minutes=55)
    CardCertificateValidator(_settings(pki), cache).validate(cert)
    assert revocation_server.requests == []
    clock.ahead = timedelta(minutes=65)
    with pytest.raises(errors.RevocationUnknown):
        CardCertificateValidator(_settings(pki), cache).validate(cert)


def test_a_revoked_answer_is_kept_as_well(pki, revocation_server):
    cache = RevocationCache()
    cert = pki.card_certificate(card_of(pki, "K120000006", "revoked"))
    with pytest.raises(errors.CertificateRevoked):
        CardCertificateValidator(_settings(pki), cache).validate(cert)
    revocation_server.down.update({"ocsp", "crl"})
    revocation_server.requests.clear()
    with pytest.raises(errors.CertificateRevoked):
        CardCertificateValidator(_settings(pki), cache).validate(cert)
    assert revocation_server.requests == []


def test_nothing_fetched_for_a_validation_that_could_not_decide_is_kept(moica_pki, revocation_server):
    cache = RevocationCache()
    cert = moica_pki.card_certificate(next(c for c in moica_pki.cards if c.generation == "G3"))
    revocation_server.down.update({"ocsp", "crl"})  # MOICA's: the card's status is unknown
    with pytest.raises(errors.RevocationUnknown):
        CardCertificateValidator(_moica_settings(moica_pki), cache).validate(cert)
    assert any(p.endswith("/moica-profile/grca/ocsp") for p in revocation_server.requests)  # GRCA did answer
    revocation_server.down = {"root-ocsp", "root-crl"}
    with pytest.raises(errors.IssuerRevocationUnknown):  # and its answer was not kept
        CardCertificateValidator(_moica_settings(moica_pki), cache).validate(cert)


# -- a forged answer, served once, is not kept ----------------------------------------------------------


@pytest.mark.parametrize("how", forged_answers.FORGERIES)
@pytest.mark.parametrize("generation", ["G2", "G3"])
def test_a_forged_grca_answer_served_once_is_not_kept(moica_pki, revocation_server, generation, how):
    cache = RevocationCache()
    cert = moica_pki.card_certificate(next(c for c in moica_pki.cards if c.generation == generation))
    served = [serve_once(revocation_server, "root-crl", forged_answers.grca_crl(moica_pki, generation, how))]
    if generation == "G3":  # G2 declares its CRL alone
        served.append(serve_once(revocation_server, "root-ocsp", forged_answers.grca_ocsp(moica_pki, how)))
    with pytest.raises(errors.IssuerRevocationUnknown, match="signature"):
        CardCertificateValidator(_moica_settings(moica_pki), cache).validate(cert)
    assert [len(answers) for answers in served] == [1] * len(served)
    # GRCA's real answers are back: the next login is not refused on the forgery.
    CardCertificateValidator(_moica_settings(moica_pki), cache).validate(cert)


@pytest.mark.parametrize("how", forged_answers.FORGERIES)
def test_a_forged_answer_beside_a_good_one_is_not_kept(moica_pki, revocation_server, how):
    # GRCA's OCSP answer is forged, its CRL real: the validation succeeds on the CRL, and only the CRL is kept.
    cache = RevocationCache()
    cert = moica_pki.card_certificate(next(c for c in moica_pki.cards if c.generation == "G3"))
    served = serve_once(revocation_server, "root-ocsp", forged_answers.grca_ocsp(moica_pki, how))
    CardCertificateValidator(_moica_settings(moica_pki), cache).validate(cert)
    assert len(served) == 1
    assert any(p.endswith("/moica-profile/GRCA-G3.crl") for p in revocation_server.requests)
    # The forger answers again: GRCA's OCSP is asked again (its forgery was not kept), and the CRL that was
    # kept decides, without being fetched.
    revocation_server.requests.clear()
    again = serve_once(revocation_server, "root-ocsp", forged_answers.grca_ocsp(moica_pki, how))
    CardCertificateValidator(_moica_settings(moica_pki), cache).validate(cert)
    assert len(again) == 1
    assert not any(p.endswith("/moica-profile/GRCA-G3.crl") for p in revocation_server.requests)


def test_an_answer_from_a_responder_the_ca_delegated_to_is_kept(pki, revocation_server):
    cache = RevocationCache()
    cert = pki.card_certificate(card_of(pki, "A123456789"))
    delegated = forged_answers.delegated_demo_ocsp(pki, forged.demo_issuer_key(pki))
    served = serve_once(revocation_server, "ocsp", delegated)
    CardCertificateValidator(_settings(pki), cache).validate(cert)
    assert len(served) == 1
    assert not any(p.endswith(".crl") for p in revocation_server.requests)  # the delegated answer was taken
    revocation_server.down.update({"ocsp", "crl"})
    CardCertificateValidator(_settings(pki), cache).validate(cert)  # on the kept answer


def test_an_unknown_answer_is_not_kept_when_the_crl_decided(pki, revocation_server):
    # The CA's own word that it does not know the card: the CRL decides the login, and the responder is
    # asked again next time, not skipped until the answer's nextUpdate.
    cache = RevocationCache()
    cert = pki.card_certificate(card_of(pki, "A123456789"))
    served = serve_once(revocation_server, "ocsp", forged_answers.unknown_demo_ocsp(pki, forged.demo_issuer_key(pki)))
    CardCertificateValidator(_settings(pki), cache).validate(cert)
    assert len(served) == 1 and any(p.endswith(".crl") for p in revocation_server.requests)
    revocation_server.requests.clear()
    CardCertificateValidator(_settings(pki), cache).validate(cert)
    assert any(p.endswith("/ocsp") for p in revocation_server.requests)  # asked again


# -- what a validator keeps between logins: the paths above a card's issuer, never a check -------------


def test_a_path_kept_from_one_card_spares_the_next_card_of_its_issuer_no_check(pki, revocation_server):
    validator = CardCertificateValidator(_settings(pki))
    validator.validate(pki.card_certificate(card_of(pki, "A123456789")))
    assert len(validator._paths) == 1
    with pytest.raises(errors.CertificateRevoked):
        validator.validate(pki.card_certificate(card_of(pki, "K120000006", "revoked")))
    with pytest.raises(errors.CertificateExpired):
        validator.validate(pki.card_certificate(card_of(pki, "F131313136", "expired")))
    validator.validate(pki.card_certificate(card_of(pki, "B223456782")))
    assert len(validator._paths) == 1  # one issuer, one path kept


def test_on_a_kept_path_the_issuing_cas_own_status_is_asked_again(moica_pki, revocation_server):
    cache = RevocationCache()
    validator = CardCertificateValidator(_moica_settings(moica_pki), cache)
    cert = moica_pki.card_certificate(next(c for c in moica_pki.cards if c.generation == "G3"))
    validator.validate(cert)
    revocation_server.down.update({"root-ocsp", "root-crl"})
    cache.clear()
    with pytest.raises(errors.IssuerRevocationUnknown):
        validator.validate(cert)


def _demo_path(pki: DemoPKI, card) -> tuple:
    """The demo card's path as the library builds it (root, issuing CA, card), and the card, as asn1crypto reads them."""
    from pyhanko_certvalidator.authority import CertTrustAnchor
    from pyhanko_certvalidator.path import ValidationPath

    root, issuer, leaf = (
        asn1_x509.Certificate.load(c.public_bytes(Encoding.DER))
        for c in (pki.root_certificate, pki.issuer_certificate, pki.card_certificate(card))
    )
    return ValidationPath(CertTrustAnchor(root), [issuer], leaf), leaf


def test_a_kept_path_goes_when_the_first_of_its_certificates_expires(pki):
    from iccard.validation import _IssuerPaths

    clock = _Clock()
    paths = _IssuerPaths(anchor_keys=set(), configured=set(), clock=clock)
    path, card = _demo_path(pki, card_of(pki, "A123456789"))
    key = paths.key_of(card)
    paths.put(key, [path])
    assert paths.get(key, card) == [path]
    # The issuing CA's certificate ends before the root's.
    issuer_ends = pki.issuer_certificate.not_valid_after_utc
    clock.ahead = issuer_ends - clock() - timedelta(minutes=1)
    assert paths.get(key, card) == [path]
    clock.ahead += timedelta(minutes=2)
    assert paths.get(key, card) is None and len(paths) == 0


def test_the_kept_paths_are_at_most_their_number_the_oldest_going_first(pki):
    from iccard.validation import _IssuerPaths

    paths = _IssuerPaths(anchor_keys=set(), configured=set())
    path, card = _demo_path(pki, card_of(pki, "A123456789"))
    for n in range(_IssuerPaths.MAX_ENTRIES + 1):
        paths.put(("issuer", n), [path])
    assert len(paths) == _IssuerPaths.MAX_ENTRIES
    assert paths.get(("issuer", 0), card) is None and paths.get(("issuer", 1), card) == [path]


def test_no_path_is_kept_for_a_card_that_a_configured_certificate_could_stand_for(pki):
    # The library's search skips a certificate already in the path: one with the issuer and serial number of a
    # configured certificate, or a trust anchor's key, may get other paths than its issuer's other cards.
    from iccard.validation import _IssuerPaths

    _, card = _demo_path(pki, card_of(pki, "A123456789"))
    assert _IssuerPaths(anchor_keys=set(), configured=set()).key_of(card) is not None
    assert _IssuerPaths(anchor_keys=set(), configured={card.issuer_serial}).key_of(card) is None
    assert _IssuerPaths(anchor_keys={card.public_key.dump()}, configured=set()).key_of(card) is None


def test_validations_from_several_threads_at_once_each_succeed(validator, pki):
    cert = pki.card_certificate(card_of(pki, "A123456789"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(lambda _: validator.validate(cert), range(8))) == [None] * 8


# -- a card found valid on answers still cached is not validated again -----------------------------------


def _validations(monkeypatch) -> list:
    """The library's validations run from now on (each a call of iccard.validation._run_sync)."""
    from iccard import validation

    runs, run = [], validation._run_sync
    monkeypatch.setattr(validation, "_run_sync", lambda coroutine: runs.append(coroutine) or run(coroutine))
    return runs


def test_a_card_valid_on_cached_answers_is_not_validated_again_until_one_goes(pki, revocation_server, monkeypatch):
    clock = _Clock()
    validator = CardCertificateValidator(_settings(pki), RevocationCache(clock))
    cert = pki.card_certificate(card_of(pki, "A123456789"))
    runs = _validations(monkeypatch)
    validator.validate(cert)
    validator.validate(cert)
    assert len(runs) == 1
    # Its OCSP answer past its nextUpdate (an hour), the next login validates the card again and asks anew.
    clock.ahead = timedelta(minutes=65)
    revocation_server.down.update({"ocsp", "crl"})
    with pytest.raises(errors.RevocationUnknown):
        validator.validate(cert)
    assert len(runs) == 2


def test_a_card_is_validated_again_once_its_cached_answer_is_replaced(pki, revocation_server, monkeypatch):
    # Another validator sharing the cache fetched a newer answer (a revoked one, say): the card's entry rested on
    # the one replaced.
    cache = RevocationCache()
    validator = CardCertificateValidator(_settings(pki), cache)
    cert = pki.card_certificate(card_of(pki, "A123456789"))
    validator.validate(cert)
    runs = _validations(monkeypatch)
    (key,) = [k for k in cache._entries if k[0] == "ocsp"]
    value, expires = cache._entries[key]
    cache._entries[key] = (value.copy(), expires)
    validator.validate(cert)
    assert len(runs) == 1


def test_a_card_valid_beside_a_forged_answer_is_validated_again_each_time(moica_pki, revocation_server, monkeypatch):
    # GRCA's OCSP answer forged and not kept, its CRL decided: the forger is asked again at the next login,
    # not skipped because the card was found valid.
    validator = CardCertificateValidator(_moica_settings(moica_pki), RevocationCache())
    cert = moica_pki.card_certificate(next(c for c in moica_pki.cards if c.generation == "G3"))
    served = serve_once(revocation_server, "root-ocsp", forged_answers.grca_ocsp(moica_pki, "another_key"))
    validator.validate(cert)
    assert len(served) == 1
    again = serve_once(revocation_server, "root-ocsp", forged_answers.grca_ocsp(moica_pki, "another_key"))
    validator.validate(cert)
    assert len(again) == 1


def test_a_revoked_card_is_refused_every_time(pki, revocation_server, monkeypatch):
    validator = CardCertificateValidator(_settings(pki))
    cert = pki.card_certificate(card_of(pki, "K120000006", "revoked"))
    runs = _validations(monkeypatch)
    for _ in range(2):
        with pytest.raises(errors.CertificateRevoked):
            validator.validate(cert)
    assert len(runs) == 2


def test_a_card_validated_with_its_responders_down_is_not_remembered(pki, revocation_server, monkeypatch):
    # Soft-fail let it through with nothing fetched: remembered, it would never be asked about again, and a
    # revocation after the outage would go unseen.
    validator = CardCertificateValidator(_settings(pki, revocation_mode="soft-fail"), RevocationCache())
    cert = pki.card_certificate(card_of(pki, "A123456789"))
    revocation_server.down.update({"ocsp", "crl"})
    runs = _validations(monkeypatch)
    validator.validate(cert)
    validator.validate(cert)
    assert len(runs) == 2


def test_a_card_the_crl_found_valid_while_ocsp_was_down_asks_ocsp_again(pki, revocation_server, monkeypatch):
    # OCSP sees a revocation at once, the CRL only at its next issue: a card decided by the CRL during an OCSP
    # outage must not stop OCSP being asked once it is back.
    validator = CardCertificateValidator(_settings(pki), RevocationCache())
    cert = pki.card_certificate(card_of(pki, "A123456789"))
    revocation_server.down.add("ocsp")
    runs = _validations(monkeypatch)
    for _ in range(3):
        validator.validate(cert)
    assert len(runs) == 3
    revocation_server.down.discard("ocsp")
    asked = len(revocation_server.requests)
    validator.validate(cert)
    assert any("ocsp" in path for path in revocation_server.requests[asked:])
