"""A citizen card as the local component uses it, whatever reaches it: PIV over PC/SC, the in-process
emulator, or a PKCS#11 module (``iccard.pkcs11``: the card vendor's, OpenSC's, SoftHSM).

The component lists slots, opens the card in one, and asks it for what a page asks: its certificates, a
signature, a decryption, a PIN change. Every backend raises the same errors of :mod:`iccard.errors`
(:class:`~iccard.errors.WrongPin`, :class:`~iccard.errors.PinBlocked`, :class:`~iccard.errors.NoCard`,
:class:`~iccard.errors.CardRemoved`, ...), so a page sees one behaviour whichever way the card is read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from cryptography import x509

from .errors import UnsupportedCard
from .piv import PivSession, Slot
from .transport import Reader


class Card(Protocol):
    """One open conversation with a card. Not shared between threads; the component holds one at a time."""

    def card_number(self) -> str:
        """The number printed on the card (``TEST000000000001``), or the token's serial number."""
        ...

    def signing_certificate(self) -> x509.Certificate:
        """The certificate of the key that signs (a citizen card's ``cert1``)."""
        ...

    def encryption_certificate(self) -> x509.Certificate | None:
        """The certificate of the key that decrypts (``cert2``), or None when the card has none."""
        ...

    def ca_certificates(self) -> list[x509.Certificate]:
        """CA certificates the card carries (real cards carry their issuer's)."""
        ...

    def verify_pin(self, pin: str) -> None:
        """Verify (log in with) the PIN; raises WrongPin (tries left when the card says), PinBlocked."""
        ...

    def sign(self, digest_info: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 over ``digest_info`` (a DER DigestInfo) with the signing key, after verify_pin."""
        ...

    def decrypt(self, ciphertext: bytes) -> bytes:
        """RSAES-PKCS1-v1_5 decryption with the encryption key, after verify_pin."""
        ...

    def change_pin(self, old: str, new: str) -> None:
        """Replace the PIN; a wrong ``old`` counts as a wrong PIN."""
        ...


class CardSlot(Protocol):
    """Where a card may be: a reader, an emulated card, a PKCS#11 slot. ``name`` is the slotDescription."""

    @property
    def name(self) -> str: ...

    def has_card(self) -> bool: ...

    def open(self) -> AbstractContextManager[Card]:
        """The card in the slot, for one conversation; raises NoCard when there is none."""
        ...


class PivCard:
    """A PIV card (ours, emulated or in a reader) as a :class:`Card`."""

    def __init__(self, session: PivSession) -> None:
        self._session = session

    def card_number(self) -> str:
        return self._session.card_number()

    def signing_certificate(self) -> x509.Certificate:
        return self._session.get_certificate(Slot.SIGNATURE)

    def encryption_certificate(self) -> x509.Certificate | None:
        try:
            return self._session.get_certificate(Slot.KEY_MANAGEMENT)
        except UnsupportedCard:  # a PIV card without a key-management key signs, but cannot decrypt
            return None

    def ca_certificates(self) -> list[x509.Certificate]:
        return self._session.ca_certificates()

    def verify_pin(self, pin: str) -> None:
        self._session.verify_pin(pin)

    def sign(self, digest_info: bytes) -> bytes:
        return self._session.sign_pkcs1v15(Slot.SIGNATURE, digest_info)

    def decrypt(self, ciphertext: bytes) -> bytes:
        return self._session.decrypt(ciphertext)

    def change_pin(self, old: str, new: str) -> None:
        self._session.change_pin(old, new)


class PivSlot:
    """A reader (PC/SC or in-process) holding a PIV card, as a :class:`CardSlot`."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    @property
    def name(self) -> str:
        return self.reader.name

    def has_card(self) -> bool:
        return self.reader.has_card()

    @contextmanager
    def open(self) -> Iterator[Card]:
        connection = self.reader.connect()
        try:
            yield PivCard(PivSession(connection))
        finally:
            connection.close()
