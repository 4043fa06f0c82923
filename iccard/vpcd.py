"""An emulated card in vsmartcard's virtual reader (vpcd), so pcscd and everything above it see a card.

pcscd's vpcd driver listens (``/etc/reader.conf.d/vpcd``: 127.0.0.1:35963 for ``Virtual PCD 00 00``); the
card connects to it. Each message is a 2-byte big-endian length, then the payload: one byte is a control
message (power off, power on, reset, "your ATR?"), anything longer a command APDU, answered with the
response APDU. Closing the connection is pulling the card out of the reader.
"""

from __future__ import annotations

import socket
import threading
import time

from .emulator import PivCardEmulator
from .errors import ReaderUnavailable

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 35963

CONTROL_POWER_OFF = 0
CONTROL_POWER_ON = 1
CONTROL_RESET = 2
CONTROL_GET_ATR = 4

# pcscd asks vpcd whether the card is there about every 0.4 s. A card put back sooner than that after
# being pulled is never seen leaving, and pcscd keeps believing the reader empty; so it stays out longer.
MIN_ABSENCE = 1.0
# When a card last left each (host, port): the pause belongs to the reader, whichever card goes in next.
_last_removal: dict[tuple[str, int], float] = {}
_last_removal_lock = threading.Lock()


def _ack_at_once(sock: socket.socket) -> None:
    # vpcd writes the length and the APDU with two send() calls and Nagle's algorithm holds the second
    # until the first is acknowledged; without a quick ACK every APDU waits for the delayed ACK (~40 ms).
    # Linux clears TCP_QUICKACK after use, so it is set again before every read.
    if hasattr(socket, "TCP_QUICKACK"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)


def _receive_exactly(sock: socket.socket, size: int) -> bytes | None:
    """``size`` bytes from ``sock``, or None when the connection ends first."""
    data = bytearray()
    while len(data) < size:
        _ack_at_once(sock)
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


class VirtualCard:
    """``emulator`` as a card in the vpcd reader listening at ``host:port``.

    :meth:`start` (or :meth:`insert`) puts it in the reader and answers pcscd from a background thread;
    :meth:`remove` takes it out. Usable as a context manager (inserted inside).
    """

    def __init__(
        self,
        emulator: PivCardEmulator,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        connect_timeout: float = 5.0,
    ) -> None:
        self.emulator = emulator
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @property
    def inserted(self) -> bool:
        """Whether the card is connected to vpcd (False once vpcd or :meth:`remove` closed it)."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> None:
        """Insert the card: connect to vpcd and answer it in a background thread.

        Does nothing if the card is already in; if a card just left this reader, first waits until it
        has been empty for :data:`MIN_ABSENCE` seconds. Raises :class:`~iccard.errors.ReaderUnavailable` when
        nothing listens at ``host:port`` (pcscd not running, or vpcd not installed or configured there).
        """
        with self._lock:
            if self.inserted:
                return
            with _last_removal_lock:
                removed_at = _last_removal.get((self.host, self.port), float("-inf"))
            time.sleep(max(0.0, removed_at + MIN_ABSENCE - time.monotonic()))
            try:
                sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
            except OSError as exc:
                raise ReaderUnavailable(f"vpcd is not listening at {self.host}:{self.port}: {exc}") from exc
            sock.settimeout(None)  # pcscd may stay silent for as long as it likes
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._socket = sock
            self._thread = threading.Thread(
                target=self._serve, args=(sock,), name=f"vpcd card {self.emulator.card_number}", daemon=True
            )
            self._thread.start()

    insert = start

    def remove(self, timeout: float = 5.0) -> None:
        """Pull the card out of the reader: close the connection, wait for the thread to end."""
        with self._lock:
            sock, thread = self._socket, self._thread
            self._socket = self._thread = None
            if sock is not None:
                with _last_removal_lock:
                    _last_removal[(self.host, self.port)] = time.monotonic()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in recv
            except OSError:
                pass  # vpcd closed it first
            sock.close()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def __enter__(self) -> VirtualCard:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.remove()

    def _serve(self, sock: socket.socket) -> None:
        try:
            while True:
                header = _receive_exactly(sock, 2)
                if header is None:
                    return
                payload = _receive_exactly(sock, int.from_bytes(header, "big"))
                if payload is None:
                    return
                answer = self._answer(payload)
                if answer is not None:
                    sock.sendall(len(answer).to_bytes(2, "big") + answer)
        except OSError:
            return  # the connection broke: from the reader's side, the card is gone
        finally:
            self.emulator.power_off()

    def _answer(self, payload: bytes) -> bytes | None:
        """What to send back for one message from vpcd (None: control messages without an answer)."""
        if len(payload) == 1:
            control = payload[0]
            if control == CONTROL_GET_ATR:
                return self.emulator.atr
            if control == CONTROL_POWER_ON:
                self.emulator.power_on()
            elif control == CONTROL_POWER_OFF:
                self.emulator.power_off()
            elif control == CONTROL_RESET:
                self.emulator.reset()
            return None
        return self.emulator.process(payload)
