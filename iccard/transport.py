"""The transport interface: one APDU out, response data and status word back.

Everything above it (the PIV protocol, the signer, the local component) works the same over a real
reader through PC/SC (``iccard.pcsc``, the only module that imports pyscard) and over the in-process
card emulator (``iccard.emulator``).
"""

from __future__ import annotations

from typing import Protocol


class CardConnection(Protocol):
    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        """Send one command APDU; return the response data and the status word (e.g. ``0x9000``).

        Raises :class:`~iccard.errors.CardRemoved` when the card went away, :class:`~iccard.errors.NoCard`
        when there is none.
        """
        ...

    def close(self) -> None: ...


class Reader(Protocol):
    """A slot where a card may be: a PC/SC reader, or one emulated card."""

    @property
    def name(self) -> str: ...

    def has_card(self) -> bool: ...

    def connect(self) -> CardConnection:
        """Open a connection to the card; raises :class:`~iccard.errors.NoCard` when there is none."""
        ...
