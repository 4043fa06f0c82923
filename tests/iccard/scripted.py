"""A card connection that plays back a script, for the answers no well-behaved card gives."""

from __future__ import annotations


class ScriptedCard:
    """A connection that records what it is sent and answers from a script of ``(data, sw)``."""

    def __init__(self, *answers: tuple[bytes, int]) -> None:
        self.answers = list(answers)
        self.sent: list[bytes] = []

    def transmit(self, command: bytes) -> tuple[bytes, int]:
        self.sent.append(command)
        if not self.answers:
            raise AssertionError(f"nothing scripted for {command.hex()}")
        return self.answers.pop(0)

    def close(self) -> None:
        pass
