"""Real readers through PC/SC (pcscd on Linux), the only module that imports pyscard.

Readers are :class:`~iccard.transport.Reader` objects and connections
:class:`~iccard.transport.CardConnection` ones; pyscard's exceptions become ours (:class:`NoCard`,
:class:`CardRemoved`, :class:`CardInUse`, :class:`ReaderUnavailable`), so nothing above this module knows
pyscard exists.
"""

from __future__ import annotations

try:
    from smartcard import scard
    from smartcard.CardConnection import CardConnection as _PyscardConnection
    from smartcard.Exceptions import NoCardException, SmartcardException
    from smartcard.pcsc.PCSCExceptions import BaseSCardException
    from smartcard.pcsc.PCSCReader import PCSCReader
    from smartcard.System import readers as _pyscard_readers
except ImportError as exc:
    raise ImportError(
        "iccard.pcsc needs pyscard: install the agent extra: pip install .[agent]; "
        "pyscard compiles against PC/SC, so it needs libpcsclite-dev and swig (Debian packages) first"
    ) from exc

from .errors import CardError, CardInUse, CardRemoved, NoCard, ReaderUnavailable

_PyscardError = (SmartcardException, BaseSCardException)

# pcscd polls readers about every 0.4 s; a card pulled during an exchange is visible as gone within this.
REMOVAL_GRACE = 1.5

# What pcscd answers when the card is no longer there (or was swapped in the meantime).
_CARD_GONE = {
    scard.SCARD_W_REMOVED_CARD,
    scard.SCARD_E_NO_SMARTCARD,
    scard.SCARD_W_UNPOWERED_CARD,
    scard.SCARD_W_RESET_CARD,
}
_SERVICE_GONE = {
    scard.SCARD_E_NO_SERVICE,
    scard.SCARD_E_SERVICE_STOPPED,
    scard.SCARD_E_READER_UNAVAILABLE,
    scard.SCARD_E_UNKNOWN_READER,
}


def _hresult(exc: Exception) -> int:
    return getattr(exc, "hresult", -1)


def list_readers() -> list[PcscReader]:
    """The readers pcscd knows, empty or not (an empty list when there are none).

    Raises :class:`~iccard.errors.ReaderUnavailable` when pcscd cannot be reached.
    """
    try:
        return [PcscReader(reader.name) for reader in _pyscard_readers()]
    except _PyscardError as exc:
        raise ReaderUnavailable(f"the PC/SC service cannot be reached: {exc}") from exc


def card_present(reader_name: str, *, unless_removed_within: float = 0.0) -> bool:
    """Whether a card sits in ``reader_name``, by asking pcscd (no connection, nothing sent to the card).

    With ``unless_removed_within`` (seconds), a card still present is watched that long and reported
    absent if it leaves meanwhile: pcscd learns of a removal only at its next poll of the reader.
    Raises :class:`~iccard.errors.ReaderUnavailable` when pcscd or the reader cannot be reached.
    """
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        raise ReaderUnavailable(f"the PC/SC service cannot be reached: {scard.SCardGetErrorMessage(hresult)}")
    try:
        state = _reader_state(context, reader_name, scard.SCARD_STATE_UNAWARE, 0)
        if _has_card(state) and unless_removed_within > 0:
            changed = _reader_state(
                context, reader_name, state & ~scard.SCARD_STATE_CHANGED, int(unless_removed_within * 1000)
            )
            state = state if changed is None else changed
        return _has_card(state)
    finally:
        scard.SCardReleaseContext(context)


def _reader_state(context: int, reader_name: str, known: int, timeout_ms: int) -> int | None:
    """The reader's state once it differs from ``known`` (None if it did not within the timeout)."""
    hresult, states = scard.SCardGetStatusChange(context, timeout_ms, [(reader_name, known)])
    if hresult == scard.SCARD_E_TIMEOUT:
        return None
    if hresult != scard.SCARD_S_SUCCESS:
        raise ReaderUnavailable(f"{reader_name}: {scard.SCardGetErrorMessage(hresult)}")
    return states[0][1]


def _has_card(state: int) -> bool:
    return bool(state & scard.SCARD_STATE_PRESENT) and not state & scard.SCARD_STATE_MUTE


class PcscReader:
    """One PC/SC reader, by name (:class:`~iccard.transport.Reader`).

    With ``exclusive`` (the default) a connection keeps every other program off the card while it is
    open: between our VERIFY and our signature nobody else may use the verified PIN.
    """

    def __init__(self, name: str, *, exclusive: bool = True) -> None:
        self._name = name
        self.exclusive = exclusive

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"PcscReader({self._name!r})"

    def has_card(self) -> bool:
        """Whether a card is in the reader. Raises :class:`~iccard.errors.ReaderUnavailable`."""
        return card_present(self._name)

    def connect(self) -> PcscConnection:
        """Connect to the card in the reader (T=0 or T=1, whichever it offers).

        Raises :class:`~iccard.errors.NoCard` when the reader is empty, :class:`~iccard.errors.CardInUse`
        when another program holds the card, :class:`~iccard.errors.ReaderUnavailable` when pcscd or the
        reader went away, :class:`~iccard.errors.CardError` otherwise.
        """
        try:
            connection = PCSCReader(self._name).createConnection()  # establishes a PC/SC context
        except _PyscardError as exc:
            raise ReaderUnavailable(f"the PC/SC service cannot be reached: {exc}") from exc
        mode = scard.SCARD_SHARE_EXCLUSIVE if self.exclusive else scard.SCARD_SHARE_SHARED
        try:
            # Reset on disconnect: a PIN verified through us must not stay usable after we let go.
            connection.connect(mode=mode, disposition=scard.SCARD_RESET_CARD)
        except NoCardException as exc:
            connection.release()
            raise NoCard(f"no card in {self._name}") from exc
        except _PyscardError as exc:
            connection.release()
            code = _hresult(exc)
            if code == scard.SCARD_E_SHARING_VIOLATION:
                raise CardInUse(f"another program is using the card in {self._name}") from exc
            if code in _CARD_GONE:
                raise NoCard(f"no card in {self._name}") from exc
            if code in _SERVICE_GONE:
                raise ReaderUnavailable(f"{self._name}: {exc}") from exc
            raise CardError(f"cannot connect to the card in {self._name}: {exc}") from exc
        return PcscConnection(self._name, connection)


class PcscConnection:
    """A connection to the card in a PC/SC reader (:class:`~iccard.transport.CardConnection`)."""

    def __init__(self, reader_name: str, connection: _PyscardConnection) -> None:
        self.reader_name = reader_name
        self._connection = connection
        self._open = True

    @property
    def atr(self) -> bytes:
        """The card's answer to reset. Raises :class:`~iccard.errors.CardRemoved` if it left."""
        try:
            return bytes(self._connection.getATR())
        except _PyscardError as exc:
            raise self._translate(exc) from exc

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        """Send one command APDU; returns ``(data, status word)``.

        Raises :class:`~iccard.errors.CardRemoved` when the card left the reader (or was reset by
        someone else: our session with it is gone either way), :class:`~iccard.errors.ReaderUnavailable`
        when pcscd or the reader went away, :class:`~iccard.errors.CardError` for other failures.
        """
        if not self._open:
            raise CardError("the connection is closed")
        try:
            data, sw1, sw2 = self._connection.transmit(list(apdu))
        except _PyscardError as exc:
            raise self._translate(exc) from exc
        return bytes(data), (sw1 << 8) | sw2

    def _translate(self, exc: Exception) -> CardError:
        code = _hresult(exc)
        if code in _CARD_GONE or isinstance(exc, NoCardException):
            return CardRemoved(f"the card left {self.reader_name}")
        if code in _SERVICE_GONE:
            return ReaderUnavailable(f"{self.reader_name}: {exc}")
        # A failed exchange (e.g. SCARD_E_NOT_TRANSACTED) is how a card pulled mid-APDU often shows,
        # before pcscd's next poll has noticed: watch the reader a moment before calling it anything else.
        try:
            present = card_present(self.reader_name, unless_removed_within=REMOVAL_GRACE)
        except ReaderUnavailable as unavailable:
            return unavailable
        if not present:
            return CardRemoved(f"the card left {self.reader_name}")
        return CardError(f"the exchange with the card in {self.reader_name} failed: {exc}")

    def close(self) -> None:
        """Disconnect (resetting the card) and release the PC/SC context; safe to call twice."""
        if not self._open:
            return
        self._open = False
        try:
            self._connection.disconnect()
        except _PyscardError:
            pass  # the card or pcscd is already gone: nothing left to release on that side
        finally:
            try:
                self._connection.release()
            except _PyscardError:
                pass
