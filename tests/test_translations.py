"""Every message the code and templates show has its Traditional Chinese translation."""

import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "app/translations/zh_Hant_TW/LC_MESSAGES/messages.po"


def test_every_message_has_a_zh_tw_translation(tmp_path):
    template = tmp_path / "messages.pot"
    pybabel = Path(sys.executable).with_name("pybabel")
    subprocess.run([str(pybabel), "-q", "extract", "-F", "babel.cfg", "-o", str(template), "."],
                   cwd=ROOT, check=True, capture_output=True)
    with template.open("rb") as extracted, CATALOG.open("rb") as translated:
        wanted, catalog = read_po(extracted), read_po(translated)
    missing = [
        message.id for message in wanted
        if message.id and not getattr(catalog.get(message.id, context=message.context), "string", None)
    ]
    assert missing == []
