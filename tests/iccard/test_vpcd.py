"""The vpcd link, against a stand-in for pcscd's vpcd driver: framing, control messages, removal."""

from __future__ import annotations

import socket
import time

import pytest

from iccard.apdu import split_response
from iccard.emulator import ATR
from iccard.errors import ReaderUnavailable
from iccard.vpcd import VirtualCard

SELECT_PIV = bytes.fromhex("00A404000BA00000030800001000010000")
VERIFY_123456 = bytes.fromhex("0020008008313233343536FFFF")


class FakeVpcd:
    """The listening side of vpcd: one card connection, messages framed with a 2-byte length."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.card: socket.socket | None = None

    def accept(self) -> None:
        self.server.settimeout(5)
        self.card, _ = self.server.accept()
        self.card.settimeout(5)

    def send(self, payload: bytes) -> None:
        self.card.sendall(len(payload).to_bytes(2, "big") + payload)

    def receive(self) -> bytes:
        header = self._exactly(2)
        return self._exactly(int.from_bytes(header, "big"))

    def exchange(self, payload: bytes) -> bytes:
        self.send(payload)
        return self.receive()

    def _exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.card.recv(size - len(data))
            if not chunk:
                raise ConnectionError("the card left")
            data += chunk
        return data

    def close(self) -> None:
        if self.card is not None:
            self.card.close()
        self.server.close()


@pytest.fixture
def vpcd():
    fake = FakeVpcd()
    yield fake
    fake.close()


@pytest.fixture
def inserted(vpcd, emulator):
    card = VirtualCard(emulator, port=vpcd.port)
    card.start()
    vpcd.accept()
    yield card
    card.remove()


def test_the_card_answers_the_atr_request_with_its_atr(vpcd, inserted):
    assert vpcd.exchange(b"\x04") == ATR


def test_apdus_are_answered_with_response_apdus(vpcd, inserted):
    vpcd.send(b"\x01")  # power on: no answer
    data, sw = split_response(vpcd.exchange(SELECT_PIV))
    assert sw == 0x9000 and data.startswith(b"\x61")
    assert split_response(vpcd.exchange(VERIFY_123456))[1] == 0x9000


@pytest.mark.parametrize("control", [b"\x00", b"\x02"])
def test_power_off_and_reset_end_the_session(vpcd, inserted, control):
    vpcd.exchange(SELECT_PIV)
    vpcd.exchange(VERIFY_123456)
    vpcd.send(control)
    vpcd.send(b"\x01")
    vpcd.exchange(SELECT_PIV)
    assert split_response(vpcd.exchange(bytes.fromhex("00200080")))[1] == 0x63C3


def test_removing_the_card_closes_the_connection(vpcd, inserted):
    assert inserted.inserted
    inserted.remove()
    assert not inserted.inserted
    with pytest.raises((ConnectionError, OSError)):
        vpcd.exchange(b"\x04")


def test_a_card_left_by_vpcd_is_no_longer_inserted(vpcd, inserted):
    vpcd.card.close()
    vpcd.card = None
    deadline = time.monotonic() + 5
    while inserted.inserted and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not inserted.inserted


def test_without_vpcd_listening_the_reader_is_unavailable(emulator):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(ReaderUnavailable):
            VirtualCard(emulator, port=port, connect_timeout=2).start()
