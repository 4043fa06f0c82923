"""Is a mobile certificate good? The mobile CA's own word on it: an OCSP answer (RFC 6960) or its CRL (RFC 5280).

Written with ``cryptography`` and the standard library alone, as the rest of ``twfido`` is, so that an agency
can read and rerun it: offline, with a CRL or an OCSP answer it downloaded; online, from the places the
certificate names (its OCSP responder, authority information access; then its CRL distribution point).

What is believed:

* an OCSP answer about this certificate's CertID (its serial, the CA's name and key hashes), signed by the CA
  itself or by a responder certificate the CA issued for OCSP signing (``id-kp-OCSPSigning``) and valid at the
  time of the check, current then (``thisUpdate`` not after it, ``nextUpdate`` not past), and, when fetched,
  echoing the nonce of our request (an earlier answer replayed, with another nonce or none, does not: MoCert's
  responder always echoes it);
* a CRL under the CA's name, signed with its key, complete (not a delta, not of some reasons or kinds of
  certificate only) and, if it names a distribution point (its issuing distribution point), one this
  certificate names among its CRL distribution points (a CRL of another partition of the CA's certificates
  says nothing of this one), current as above; when fetched, dated at most :data:`FETCHED_CRL_MAX_AGE` (an
  hour) before the check. A CRL carries no nonce, so one replayed by whoever blocks the OCSP responder is
  believed for that long at most; an older one is believed only when given (downloaded, and its date the
  giver's choice).

Only an OCSP answer fetched with our nonce is known to be made for this check. Any other says what the CA knew
at its ``thisUpdate``: :attr:`Good.caveat` says so, with its date, and which sources could not be used first.

A believed OCSP answer decides: ``good``, ``revoked`` (:class:`CertificateRevoked`), or ``unknown``: the CA does
not know the certificate, and its CRL, which lists only what it revoked, cannot make that good. Anything else
(an answer not believed, a CRL stale or not the CA's, a server unreachable) is not "good": the next source is
tried, and when none is left :class:`RevocationUnknown` says what each lacked. MoCert's responder is the
mobile CA itself; its CRL is republished on every change and re-signed when fetched after half its validity
(``app/mobile_pki``, the README's "Checking a mobile certificate's status"), so with the responder unreachable
the CRL fetched is often more than an hour old, and the status unknown unless that CRL is given.
"""

from __future__ import annotations

import hmac
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

# How far a thisUpdate may be ahead of the time of the check: the responder's clock and ours differ a little.
CLOCK_SKEW = timedelta(minutes=5)
# A CRL carries no nonce: one fetched (the OCSP responder blocked by whoever is on the path) may be an earlier one
# replayed, current until its nextUpdate (MoCert's: a day on). One dated more than this before the check is not
# believed: an hour, as long as MoCert lets an OCSP answer be kept. A CRL given (downloaded) is the giver's choice.
FETCHED_CRL_MAX_AGE = timedelta(hours=1)
TIMEOUT = 10.0  # seconds, per request
MAX_FETCHED = 16 * 1024 * 1024  # a CRL of many revocations is megabytes; an answer beyond this is refused
NONCE_BYTES = 16


class RevocationError(ValueError):
    """The certificate's status is not "good"; see the two kinds below."""


class CertificateRevoked(RevocationError):
    """The CA says the certificate is revoked (``certificateHold``: on hold, a suspended phone's)."""

    def __init__(self, reason: x509.ReasonFlags | None, revoked_at: datetime, source: str) -> None:
        self.reason, self.revoked_at, self.source = reason, revoked_at, source
        stated = reason.value if reason is not None else "no reason stated"
        when = f"{revoked_at:%Y-%m-%d %H:%M:%S} UTC"
        super().__init__(f"the certificate is revoked ({stated}) since {when}, says {source}")


class RevocationUnknown(RevocationError):
    """Whether the certificate is revoked could not be learnt: no source was believed (the message says why)."""


class _Decided(RevocationUnknown):
    """A believed OCSP answer of ``unknown``: not to be overruled by a later source."""


@dataclass(frozen=True)
class Good:
    """The certificate is not revoked, says ``source``, in an answer current from ``this_update`` to ``next_update``.

    ``caveat`` is None for an OCSP answer to our nonce: made for this check. Otherwise it says that the status is
    as of ``this_update`` (a revocation since is not known), and why: an answer given, or a CRL, has no nonce of
    ours; and which sources could not be used before it.
    """

    source: str
    this_update: datetime
    next_update: datetime
    caveat: str | None = None


# fetch(url, body): the body of the answer to a GET of ``url``, or, with ``body``, to a POST of that OCSP request.
# It raises RevocationUnknown (or OSError) when there is no answer.
Fetch = Callable[[str, bytes | None], bytes]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A certificate's own addresses are asked, nothing a server sends the verifier on to.
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102 - urllib's hook
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def fetch_url(url: str, body: bytes | None = None, *, timeout: float = TIMEOUT) -> bytes:
    """The answer to a GET of the http(s) ``url`` (a POST of the OCSP request ``body`` when given), not
    following redirects. Raises :class:`RevocationUnknown` for no answer, an error status or one too long."""
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise RevocationUnknown(f"{url} is not an http(s) address")
    headers = {"Accept": "application/ocsp-response" if body is not None else "application/pkix-crl"}
    if body is not None:
        headers["Content-Type"] = "application/ocsp-request"
    try:
        with _OPENER.open(urllib.request.Request(url, data=body, headers=headers), timeout=timeout) as response:
            data = response.read(MAX_FETCHED + 1)
    except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError and HTTPError are OSErrors
        raise RevocationUnknown(f"{url} did not answer: {exc}") from exc
    if len(data) > MAX_FETCHED:
        raise RevocationUnknown(f"{url} answered more than {MAX_FETCHED} bytes")
    return data


@dataclass(frozen=True)
class Sources:
    """Where :func:`status` learns the status: the OCSP answer (DER) and CRL (DER or PEM) given, or, when
    neither is, what ``fetch`` brings from the places the certificate names (``fetch=None``: nothing is
    fetched, and with nothing given the status is unknown); a CRL fetched is believed only if dated at most
    ``fetched_crl_max_age`` before the check."""

    ocsp_response: bytes | None = None
    crl: bytes | None = None
    fetch: Fetch | None = fetch_url
    fetched_crl_max_age: timedelta = FETCHED_CRL_MAX_AGE

    def status(self, certificate: x509.Certificate, issuer: x509.Certificate, *, at: datetime | None = None) -> Good:
        return status(certificate, issuer, at=at, ocsp_response=self.ocsp_response, crl=self.crl, fetch=self.fetch,
                      fetched_crl_max_age=self.fetched_crl_max_age)


ONLINE = Sources()


def status(
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    *,
    at: datetime | None = None,
    ocsp_response: bytes | None = None,
    crl: bytes | None = None,
    fetch: Fetch | None = fetch_url,
    fetched_crl_max_age: timedelta = FETCHED_CRL_MAX_AGE,
) -> Good:
    """Whether ``certificate``, issued by ``issuer``, is good at ``at`` (now): the OCSP answer given, then the
    CRL given; with neither, fetched: the certificate's OCSP responder, then its CRL distribution point, whose
    CRL is believed only if dated at most ``fetched_crl_max_age`` before ``at`` (it may be a replay).

    A certificate ``issuer`` did not sign is refused first: nothing is fetched from addresses a stranger wrote.
    Returns :class:`Good` (its ``caveat`` names the sources that could not be used before the one that said);
    raises :class:`CertificateRevoked` or :class:`RevocationUnknown`.
    """
    at = at or datetime.now(timezone.utc)
    if not _directly_issued_by(certificate, issuer):
        raise RevocationUnknown("the certificate was not issued by this CA: its status is not asked")
    checks: list[tuple[str, Callable[[], Good]]] = []
    if ocsp_response is not None:
        checks.append(("the OCSP answer given", lambda: check_ocsp_response(ocsp_response, certificate, issuer, at=at)))
    if crl is not None:
        checks.append(("the CRL given", lambda: check_crl(crl, certificate, issuer, at=at)))
    if not checks and fetch is not None:
        for url in _ocsp_urls(certificate):
            checks.append((f"OCSP {url}", _fetched_ocsp(url, certificate, issuer, at, fetch)))
        for url in _crl_urls(certificate):
            checks.append((f"the CRL {url}", _fetched_crl(url, certificate, issuer, at, fetch, fetched_crl_max_age)))
        if not checks:
            raise RevocationUnknown("the certificate names no OCSP responder and no CRL distribution point")
    if not checks:
        raise RevocationUnknown("no OCSP answer or CRL was given, and none is fetched")
    failures = []
    for label, check in checks:
        try:
            good = check()
        except _Decided as decided:  # the CA's responder does not know it: no CRL can make it good
            raise RevocationUnknown(f"{label}: {decided}") from None
        except RevocationUnknown as exc:
            failures.append(f"{label}: {exc}")
            continue
        if failures and good.caveat is not None:  # e.g. the OCSP responder blocked, and the CRL said
            good = replace(good, caveat=f"{good.caveat}; not learnt from what was tried first: {'; '.join(failures)}")
        return good
    raise RevocationUnknown("; ".join(failures))


# -- OCSP ------------------------------------------------------------------------------------------------


def check_ocsp_response(
    der: bytes,
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    *,
    at: datetime | None = None,
    nonce: bytes | None = None,
    source: str = "the OCSP answer given",
) -> Good:
    """The status an OCSP answer gives ``certificate``, if it is to be believed (see the module's docstring);
    ``nonce``, the one our request sent, must then be echoed. Returns :class:`Good`; raises
    :class:`CertificateRevoked` or :class:`RevocationUnknown`."""
    at = at or datetime.now(timezone.utc)
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError as exc:
        raise RevocationUnknown("not an OCSP response") from exc
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise RevocationUnknown(f"the responder answered {response.response_status.name.lower().replace('_', ' ')}")
    try:
        _check_signer(response, issuer, at)
        single = _answer_about(response, certificate, issuer)
        if nonce is not None:
            _check_nonce(response, nonce)
        this_update, next_update = single.this_update_utc, single.next_update_utc
        kind, revoked_at, reason = single.certificate_status, single.revocation_time_utc, single.revocation_reason
    except RevocationUnknown:
        raise
    except (ValueError, UnsupportedAlgorithm) as exc:  # a part that cryptography cannot read
        raise RevocationUnknown(f"the OCSP answer cannot be read: {exc}") from exc
    _check_current("OCSP answer", this_update, next_update, at)
    if kind == ocsp.OCSPCertStatus.GOOD:
        caveat = None if nonce is not None else _as_of(this_update, "an OCSP answer not asked with our nonce")
        return Good(source, this_update, next_update, caveat)
    if kind == ocsp.OCSPCertStatus.REVOKED:
        raise CertificateRevoked(reason, revoked_at, source)
    raise _Decided("the CA's responder does not know this certificate (unknown)")


def _fetched_ocsp(url: str, certificate, issuer, at: datetime, fetch: Fetch) -> Callable[[], Good]:
    def check() -> Good:
        nonce = os.urandom(NONCE_BYTES)
        request = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(certificate, issuer, hashes.SHA256())
            .add_extension(x509.OCSPNonce(nonce), critical=False)
            .build()
        )
        answer = _fetched(fetch, url, request.public_bytes(Encoding.DER))
        return check_ocsp_response(answer, certificate, issuer, at=at, nonce=nonce, source=f"the OCSP responder {url}")

    return check


def _check_signer(response: ocsp.OCSPResponse, issuer: x509.Certificate, at: datetime) -> None:
    """The answer is signed by the CA, or by a responder it certified for OCSP signing, valid at ``at``."""

    def signed_by(key) -> bool:
        return _signature_valid(key, response.signature, response.tbs_response_bytes, response.signature_hash_algorithm)

    if signed_by(issuer.public_key()):
        return
    for responder in response.certificates:  # those sent with the answer; the signer's is among them
        if not signed_by(responder.public_key()):
            continue
        name = responder.subject.rfc4514_string()
        if not _directly_issued_by(responder, issuer):
            raise RevocationUnknown(f"the OCSP answer is signed by {name}, which the mobile CA did not certify")
        try:
            usages = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            usages = ()
        if ExtendedKeyUsageOID.OCSP_SIGNING not in usages:
            raise RevocationUnknown(f"the OCSP answer is signed by {name}, which is not certified for OCSP signing")
        if not responder.not_valid_before_utc <= at < responder.not_valid_after_utc:
            raise RevocationUnknown(f"the OCSP answer is signed by {name}, not valid at the time of the check")
        return
    raise RevocationUnknown("the OCSP answer is signed neither by the mobile CA nor by a responder it certified")


def _directly_issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _answer_about(response: ocsp.OCSPResponse, certificate: x509.Certificate, issuer: x509.Certificate):
    """The single answer whose CertID is ``certificate``'s (the hashes computed by cryptography's request builder,
    in the algorithm the answer used)."""
    for single in response.responses:
        try:
            algorithm = single.hash_algorithm
            expected = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, algorithm).build()
        except (ValueError, TypeError, UnsupportedAlgorithm):  # an algorithm a CertID may not be made with
            continue
        if (
            single.serial_number == certificate.serial_number
            and hmac.compare_digest(single.issuer_name_hash, expected.issuer_name_hash)
            and hmac.compare_digest(single.issuer_key_hash, expected.issuer_key_hash)
        ):
            return single
    raise RevocationUnknown("the OCSP answer is not about this certificate")


def _check_nonce(response: ocsp.OCSPResponse, nonce: bytes) -> None:
    try:
        echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        # RFC 8954 lets a responder leave it out, but then nothing shows the answer was made for this request:
        # one fetched before the revocation, replayed, would be believed until its nextUpdate. MoCert's echoes it.
        raise RevocationUnknown("the OCSP answer does not echo our nonce: it may be an earlier one replayed") from None
    if not hmac.compare_digest(echoed, nonce):
        raise RevocationUnknown("the OCSP answer is to another request (its nonce is not ours): a replay")


# -- CRL -------------------------------------------------------------------------------------------------


def check_crl(
    data: bytes,
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    *,
    at: datetime | None = None,
    max_age: timedelta | None = None,
    source: str = "the CRL given",
) -> Good:
    """The status ``issuer``'s CRL (DER or PEM) gives ``certificate``, if it is to be believed (see the module's
    docstring) and, with ``max_age``, dated at most that before ``at``. Returns :class:`Good`; raises
    :class:`CertificateRevoked` or :class:`RevocationUnknown`."""
    at = at or datetime.now(timezone.utc)
    try:
        crl = x509.load_pem_x509_crl(data) if data.lstrip().startswith(b"-----BEGIN") else x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise RevocationUnknown("not a CRL (DER or PEM)") from exc
    if crl.issuer != issuer.subject:
        raise RevocationUnknown(f"the CRL is {crl.issuer.rfc4514_string()}'s, not the mobile CA's")
    try:
        signed = crl.is_signature_valid(issuer.public_key())
    except (TypeError, ValueError, UnsupportedAlgorithm):
        signed = False
    if not signed:
        raise RevocationUnknown("the CRL is not signed by the mobile CA")
    try:
        _check_complete(crl)
        _check_scope(crl, certificate)
        this_update, next_update = crl.last_update_utc, crl.next_update_utc
        entry = crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
        reason = _reason(entry) if entry is not None else None
        number = _crl_number(crl)
    except RevocationUnknown:
        raise
    except (ValueError, UnsupportedAlgorithm) as exc:  # a part that cryptography cannot read
        raise RevocationUnknown(f"the CRL cannot be read: {exc}") from exc
    if number is not None:
        source = f"{source} (number {number})"
    _check_current("CRL", this_update, next_update, at)
    if max_age is not None and at - this_update > max_age:
        raise RevocationUnknown(
            f"the CRL is dated {this_update:%Y-%m-%d %H:%M:%S} UTC, more than {_minutes(max_age)} before the check: "
            "fetched, it may be an earlier one replayed (a CRL carries no nonce); to accept it as of that date, "
            "download it and give it"
        )
    if entry is None or reason == x509.ReasonFlags.remove_from_crl:
        return Good(source, this_update, next_update, _as_of(this_update, "a CRL, which carries no nonce"))
    raise CertificateRevoked(reason, entry.revocation_date_utc, source)


def _fetched_crl(url: str, certificate, issuer, at: datetime, fetch: Fetch, max_age: timedelta) -> Callable[[], Good]:
    return lambda: check_crl(
        _fetched(fetch, url, None), certificate, issuer, at=at, max_age=max_age, source=f"the CRL {url}"
    )


def _check_complete(crl: x509.CertificateRevocationList) -> None:
    """A full CRL of every reason and every end-entity certificate: a delta or partial one says nothing of
    what it leaves out."""
    for extension in crl.extensions:
        value = extension.value
        if isinstance(value, x509.DeltaCRLIndicator):
            raise RevocationUnknown("the CRL is a delta CRL, not the full list")
        if isinstance(value, x509.IssuingDistributionPoint) and (
            value.only_some_reasons or value.indirect_crl or value.only_contains_ca_certs
            or value.only_contains_attribute_certs
        ):
            raise RevocationUnknown("the CRL lists only some revocations (its issuing distribution point)")
        if isinstance(value, x509.UnrecognizedExtension) and extension.critical:
            raise RevocationUnknown(f"the CRL has a critical extension {value.oid.dotted_string} not understood")


def _check_scope(crl: x509.CertificateRevocationList, certificate: x509.Certificate) -> None:
    """A CRL whose issuing distribution point has a name covers the certificates that name it among their CRL
    distribution points, and no others (RFC 5280 5.2.5, 6.3.3 b.2.i)."""
    try:
        point = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    except x509.ExtensionNotFound:
        return
    if point.relative_name is not None:  # a name relative to the issuer's: MoCert's CRL has none to match
        raise RevocationUnknown("the CRL's issuing distribution point is named relative to its issuer: not matched")
    if point.full_name is not None and not any(name in _distribution_points(certificate) for name in point.full_name):
        named = ", ".join(str(getattr(name, "value", name)) for name in point.full_name)
        raise RevocationUnknown(f"the CRL is of the distribution point {named}, which this certificate does not name")


def _crl_number(crl: x509.CertificateRevocationList) -> int | None:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return None


def _reason(entry: x509.RevokedCertificate) -> x509.ReasonFlags | None:
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None  # RFC 5280 5.3.1: no reason code is "unspecified"


# -- shared ----------------------------------------------------------------------------------------------


def _check_current(what: str, this_update: datetime, next_update: datetime | None, at: datetime) -> None:
    if this_update > at + CLOCK_SKEW:
        raise RevocationUnknown(f"the {what} is dated {this_update:%Y-%m-%d %H:%M:%S}, after the time of the check")
    if next_update is None:  # "newer information is always available": it cannot be shown current at any time
        raise RevocationUnknown(f"the {what} states no nextUpdate")
    if at >= next_update:
        raise RevocationUnknown(f"the {what} is stale: its nextUpdate, {next_update:%Y-%m-%d %H:%M:%S} UTC, is past")


def _as_of(this_update: datetime, what: str) -> str:
    when = f"{this_update:%Y-%m-%d %H:%M:%S} UTC"
    return f"the status is as of {when}, the thisUpdate of {what}: a revocation since is not known"


def _minutes(duration: timedelta) -> str:
    return f"{int(duration.total_seconds() // 60)} minutes"


def _fetched(fetch: Fetch, url: str, body: bytes | None) -> bytes:
    try:
        return fetch(url, body)
    except RevocationUnknown:
        raise
    except (OSError, ValueError) as exc:
        raise RevocationUnknown(f"{url} did not answer: {exc}") from exc


def _signature_valid(key, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm | None) -> bool:
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, TypeError, ValueError, UnsupportedAlgorithm):
        return False
    return True


def _ocsp_urls(certificate: x509.Certificate) -> list[str]:
    try:
        access = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return []
    return [
        d.access_location.value
        for d in access
        if d.access_method == AuthorityInformationAccessOID.OCSP
        and isinstance(d.access_location, x509.UniformResourceIdentifier)
    ]


def _distribution_points(certificate: x509.Certificate) -> list[x509.GeneralName]:
    """The full names of the certificate's CRL distribution points."""
    try:
        points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    return [name for point in points for name in point.full_name or ()]


def _crl_urls(certificate: x509.Certificate) -> list[str]:
    points = _distribution_points(certificate)
    return [name.value for name in points if isinstance(name, x509.UniformResourceIdentifier)]
