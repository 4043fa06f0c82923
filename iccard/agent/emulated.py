"""The demo cards as readers with a card in each: ``python -m iccard.agent --emulate``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..demo_pki import DemoPKI
from ..emulator import InProcessReader, PivCardEmulator


def emulated_readers(pki_dir: str | os.PathLike[str], state_dir: str | os.PathLike[str]) -> Callable[[], list[InProcessReader]]:
    """One in-process reader per demo card (its PIN counter kept in ``state_dir``), as a reader listing."""
    if not DemoPKI.exists(pki_dir):
        raise FileNotFoundError(f"no demo PKI in {pki_dir}: run `flask --app wsgi pki init-demo` first")
    pki = DemoPKI(pki_dir)
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    readers = [
        InProcessReader(PivCardEmulator.from_demo(pki, card, state_dir), name=f"MoCert Emulated Reader {index}")
        for index, card in enumerate(pki.cards, start=1)
    ]
    return lambda: list(readers)
