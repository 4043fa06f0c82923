"""The APDU layer (ISO/IEC 7816-4): command encoding, chaining, GET RESPONSE, status words as typed errors.

Over any :class:`~iccard.transport.CardConnection`; :mod:`iccard.piv` builds on :func:`send`. The
emulator uses :meth:`CommandApdu.decode` to read what the host sent, so both sides share one codec.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ApduError, CardError, PinBlocked, PinRequired, UnsupportedCard, WrongPin
from .transport import CardConnection

SW_OK = 0x9000
SW_SECURITY_STATUS_NOT_SATISFIED = 0x6982
SW_AUTH_METHOD_BLOCKED = 0x6983
SW_CONDITIONS_NOT_SATISFIED = 0x6985
SW_WRONG_DATA = 0x6A80
SW_FILE_NOT_FOUND = 0x6A82
SW_INCORRECT_P1P2 = 0x6A86
SW_REFERENCE_NOT_FOUND = 0x6A88
SW_WRONG_LENGTH = 0x6700
SW_LAST_COMMAND_EXPECTED = 0x6883
SW_INS_NOT_SUPPORTED = 0x6D00
SW_CLA_NOT_SUPPORTED = 0x6E00

CLA_CHAINING = 0x10  # "more commands of this chain follow"
INS_SELECT = 0xA4
INS_GET_RESPONSE = 0xC0

MAX_SHORT_DATA = 255  # Lc of a short APDU
MAX_SHORT_NE = 256  # Le = 00 in a short APDU
MAX_EXTENDED_NE = 65536  # Le = 0000 in an extended APDU
# More than any object a card keeps: a card answering 61xx beyond this is stuck, not generous.
MAX_RESPONSE = 65536


@dataclass(frozen=True)
class CommandApdu:
    """One command APDU. ``ne`` is the number of response bytes expected (None: no Le field).

    ``extended`` asks for the extended form even where the short one would do.
    """

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    ne: int | None = None
    extended: bool = field(default=False, compare=False)  # how it is written, not what it says

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            if not 0 <= getattr(self, name) <= 0xFF:
                raise ValueError(f"{name} is one byte")
        if self.ne is not None and not 1 <= self.ne <= MAX_EXTENDED_NE:
            raise ValueError("ne is 1..65536 bytes, or None for no Le field")
        if len(self.data) > 65535:
            raise ValueError("an APDU carries at most 65535 bytes of data")

    @property
    def needs_extended(self) -> bool:
        return self.extended or len(self.data) > MAX_SHORT_DATA or (self.ne or 0) > MAX_SHORT_NE

    def encode(self) -> bytes:
        """The APDU's bytes: short form when everything fits, extended form otherwise or when asked."""
        header = bytes([self.cla, self.ins, self.p1, self.p2])
        if not self.needs_extended:
            lc = bytes([len(self.data)]) if self.data else b""
            le = bytes([self.ne % 256]) if self.ne is not None else b""
            return header + lc + self.data + le
        # Extended: one 00 marker, then a 2-byte Lc; Le takes 2 bytes after data, 3 (00 xx xx) without.
        body = b"\x00" + len(self.data).to_bytes(2, "big") + self.data if self.data else b"\x00"
        if self.ne is not None:
            body += (self.ne % 65536).to_bytes(2, "big")
        elif not self.data:
            body = b""
        return header + body

    @classmethod
    def decode(cls, raw: bytes) -> CommandApdu:
        """Read an APDU in any of the ISO 7816-4 cases (1, 2S/E, 3S/E, 4S/E). Raises ``ValueError``."""
        if len(raw) < 4:
            raise ValueError("an APDU has at least four header bytes")
        cla, ins, p1, p2 = raw[:4]
        body = raw[4:]
        if not body:
            return cls(cla, ins, p1, p2)
        if len(body) == 1:
            return cls(cla, ins, p1, p2, ne=body[0] or MAX_SHORT_NE)
        if body[0] != 0:  # short Lc
            lc = body[0]
            if len(body) == 1 + lc:
                return cls(cla, ins, p1, p2, body[1:])
            if len(body) == 2 + lc:
                return cls(cla, ins, p1, p2, body[1 : 1 + lc], ne=body[-1] or MAX_SHORT_NE)
            raise ValueError("short APDU length does not match Lc")
        if len(body) == 3:  # extended, Le only
            return cls(cla, ins, p1, p2, ne=int.from_bytes(body[1:3], "big") or MAX_EXTENDED_NE, extended=True)
        lc = int.from_bytes(body[1:3], "big")
        if lc == 0 or len(body) < 3 + lc:
            raise ValueError("extended APDU length does not match Lc")
        data = body[3 : 3 + lc]
        rest = body[3 + lc :]
        if not rest:
            return cls(cla, ins, p1, p2, data, extended=True)
        if len(rest) == 2:
            return cls(cla, ins, p1, p2, data, ne=int.from_bytes(rest, "big") or MAX_EXTENDED_NE, extended=True)
        raise ValueError("extended APDU has trailing bytes")


def split_response(raw: bytes) -> tuple[bytes, int]:
    """A response APDU as ``(data, status word)``. Raises :class:`CardError` if it has no status word."""
    if len(raw) < 2:
        raise CardError(f"the card sent a response of {len(raw)} bytes, without a status word")
    return bytes(raw[:-2]), int.from_bytes(raw[-2:], "big")


def chain(command: CommandApdu) -> list[CommandApdu]:
    """``command`` as a chain of short APDUs: all but the last carry CLA bit 0x10 and no Le."""
    data = command.data
    if len(data) <= MAX_SHORT_DATA:
        return [command]
    pieces = [data[i : i + MAX_SHORT_DATA] for i in range(0, len(data), MAX_SHORT_DATA)]
    cla, ins, p1, p2 = command.cla, command.ins, command.p1, command.p2
    links = [CommandApdu(cla | CLA_CHAINING, ins, p1, p2, piece) for piece in pieces[:-1]]
    links.append(CommandApdu(cla, ins, p1, p2, pieces[-1], command.ne))
    return links


def exchange(connection: CardConnection, command: CommandApdu) -> tuple[bytes, int]:
    """Send ``command`` (chained if its data is longer than 255 bytes), collecting 61xx continuations.

    Returns the whole response data and the final status word, whatever it is. Raises
    :class:`~iccard.errors.CardRemoved` / :class:`~iccard.errors.NoCard` from the connection, and the typed
    error of a status word that refuses one of the chain's first links.
    """
    links = chain(command)
    for link in links[:-1]:
        _, sw = connection.transmit(link.encode())
        if sw != SW_OK:
            raise_for_status(sw, ins=command.ins)
    last = links[-1]
    data, sw = connection.transmit(last.encode())
    if sw >> 8 == 0x6C:  # wrong Le: the card says how many bytes it has; ask again with that
        last = CommandApdu(last.cla, last.ins, last.p1, last.p2, last.data, (sw & 0xFF) or MAX_SHORT_NE)
        data, sw = connection.transmit(last.encode())
    collected = bytearray(data)
    while sw >> 8 == 0x61:
        if len(collected) > MAX_RESPONSE:
            raise CardError("the card keeps answering 61xx beyond any plausible object size")
        more = CommandApdu(command.cla & ~CLA_CHAINING & 0xFF, INS_GET_RESPONSE, 0, 0, ne=(sw & 0xFF) or MAX_SHORT_NE)
        data, sw = connection.transmit(more.encode())
        collected += data
    return bytes(collected), sw


def raise_for_status(sw: int, *, ins: int) -> None:
    """Return if ``sw`` is 9000; otherwise raise the typed error for it.

    Raises :class:`~iccard.errors.WrongPin` (63Cx, x > 0), :class:`~iccard.errors.PinBlocked` (63C0, 6983),
    :class:`~iccard.errors.PinRequired` (6982), :class:`~iccard.errors.UnsupportedCard` (6A82 or 6D00 on
    SELECT: the card has no such application), else :class:`~iccard.errors.ApduError` carrying ``sw``.
    """
    if sw == SW_OK:
        return
    if sw & 0xFFF0 == 0x63C0:
        tries_left = sw & 0x0F
        if tries_left == 0:
            raise PinBlocked("the PIN is blocked: no tries left")
        raise WrongPin(tries_left)
    if sw == SW_AUTH_METHOD_BLOCKED:
        raise PinBlocked("the PIN is blocked")
    if sw == SW_SECURITY_STATUS_NOT_SATISFIED:
        raise PinRequired(sw)
    if ins == INS_SELECT and sw in (SW_FILE_NOT_FOUND, SW_INS_NOT_SUPPORTED):
        raise UnsupportedCard(f"the card has no such application (SW={sw:04X})")
    raise ApduError(sw)


def send(
    connection: CardConnection,
    cla: int,
    ins: int,
    p1: int,
    p2: int,
    data: bytes = b"",
    le: int | None = None,
) -> bytes:
    """Send one command and return its response data (whole, after chaining and GET RESPONSE).

    ``le`` is how many response bytes are expected: None sends no Le field, 256 sends ``00`` (as much as
    a short response holds; the card says with 61xx if it has more). Raises what :func:`exchange` and
    :func:`raise_for_status` raise.
    """
    response, sw = exchange(connection, CommandApdu(cla, ins, p1, p2, bytes(data), le))
    raise_for_status(sw, ins=ins)
    return response
