"""Errors of the IC-card domain.

Every way a card login can fail has its own code, so the audit trail, the API and the page can say
exactly why (a revoked card needs a different answer from a mistyped PIN or a stale page).
"""

from __future__ import annotations


class CardLoginError(Exception):
    """A card login was refused. ``code`` is stable and machine-readable; ``str()`` is for logs."""

    code = "card_login_failed"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class MalformedInput(CardLoginError):
    code = "malformed_input"


class BadSignature(CardLoginError):
    code = "bad_signature"


class TbsMismatch(CardLoginError):
    """The signature is over some text, but not the one this server issued for this login."""

    code = "tbs_mismatch"


class UnknownIssuer(CardLoginError):
    code = "unknown_issuer"


class CertificateExpired(CardLoginError):
    code = "certificate_expired"


class CertificateNotYetValid(CardLoginError):
    code = "certificate_not_yet_valid"


class CertificateRevoked(CardLoginError):
    code = "certificate_revoked"


class RevocationUnknown(CardLoginError):
    """Neither OCSP nor the CRL could say whether the certificate is revoked (hard-fail)."""

    code = "revocation_unknown"


class IssuerRevocationUnknown(RevocationUnknown):
    """Neither GRCA's OCSP nor its CRL could say whether the card's issuing CA (MOICA) is revoked (hard-fail).

    Apart from :class:`RevocationUnknown` (about the card's own certificate) because another host is
    unreachable: the root's, which every login needs for the intermediate unless a cached answer still holds.
    """

    code = "issuer_revocation_unknown"


class CertificateNotAccepted(CardLoginError):
    """Chains to a trusted root but is not a citizen signing certificate (policy, key usage, shape)."""

    code = "certificate_not_accepted"


class ChallengeUnknown(CardLoginError):
    code = "challenge_unknown"


class ChallengeExpired(CardLoginError):
    code = "challenge_expired"


class ChallengeReplayed(CardLoginError):
    code = "replayed"


# -- talking to a card (the local component's side) ---------------------------------------------------


class CardError(Exception):
    """Something went wrong between us and the card. ``code`` is stable and machine-readable."""

    code = "card_error"


class NoCard(CardError):
    code = "no_card"


class CardRemoved(CardError):
    code = "card_removed"


class UnsupportedCard(CardError):
    """The card (or token) answered, but not as a PIV card holding a signing key and certificate."""

    code = "unsupported_card"


class WrongPin(CardError):
    """A wrong PIN, counted by the card. ``tries_left`` is None when the card (or its PKCS#11 module) does not
    say how many tries are left: PKCS#11 tells only "the final try" and "fewer than the maximum"."""

    code = "wrong_pin"

    def __init__(self, tries_left: int | None) -> None:
        told = "the card does not say how many tries are left" if tries_left is None else f"{tries_left} tries left"
        super().__init__(f"wrong PIN, {told}")
        self.tries_left = tries_left


class PinBlocked(CardError):
    code = "pin_blocked"


class ApduError(CardError):
    """The card answered a command with a status word other than success."""

    code = "apdu_error"

    def __init__(self, sw: int, message: str = "") -> None:
        super().__init__(message or f"card answered SW={sw:04X}")
        self.sw = sw


class ReaderUnavailable(CardError):
    """The smart-card service (pcscd) or the reader itself cannot be reached."""

    code = "reader_unavailable"


class ModuleUnavailable(ReaderUnavailable):
    """A PKCS#11 module (the card vendor's, OpenSC's, SoftHSM) cannot be loaded or initialized."""

    code = "module_unavailable"


class CardInUse(CardError):
    """Another program holds the card; we only sign over a connection nobody else shares."""

    code = "card_in_use"


class MalformedPin(CardError):
    """The PIN is not 6 to 8 digits; refused before it reaches the card, so no try is spent."""

    code = "malformed_pin"


class PinRequired(ApduError):
    """The card refused a private-key operation because no PIN was verified for it (SW 6982)."""

    code = "pin_required"

    def __init__(self, sw: int = 0x6982, message: str = "") -> None:
        super().__init__(sw, message or "the card wants the PIN verified first (SW=6982)")


class DecryptionFailed(CardError):
    """The ciphertext did not decrypt to a well-formed message (wrong length, out of range, bad padding).

    One error for every way it can fail, never saying which: telling them apart is the padding oracle
    Bleichenbacher's attack needs.
    """

    code = "decryption_failed"


class NoEncryptionKey(CardError):
    """The card has no encryption key (no encryption certificate): it can sign, but not decrypt."""

    code = "no_encryption_key"
