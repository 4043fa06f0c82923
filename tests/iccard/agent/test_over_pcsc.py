"""The agent as `python -m iccard.agent` runs it: cards read through pcscd (here vpcd's virtual reader)."""

import base64
import json
import threading

import requests

from iccard.agent.component import LocalComponent
from iccard.agent.server import AgentServer
from iccard.agent.trust import TrustList
from iccard.cards import PivSlot
from iccard.signature import verify_pkcs7


def test_the_agent_lists_and_signs_with_a_card_in_a_pcsc_reader(pcsc_stack, virtual_card, pki, demo_card, tmp_path):
    from iccard import pcsc

    component = LocalComponent(lambda: [PivSlot(r) for r in pcsc.list_readers()], TrustList(tmp_path / "trusted.json"))
    server = AgentServer(("127.0.0.1", 0), component)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        info = requests.get(f"{server.url}/pkcs11info?withcert=true", timeout=30).json()
        [slot] = [s for s in info["slots"] if s["slotDescription"] == pcsc_stack.reader_name]
        assert slot["token"]["serialNumber"] == demo_card.card_number
        request = {"func": "MakeSignature", "tbs": "over PC/SC", "tbsEncoding": "NONE", "hashAlgorithm": "SHA256",
                   "signatureType": "PKCS7", "pin": "123456", "slotDescription": pcsc_stack.reader_name}
        answer = requests.post(f"{server.url}/sign", data={"tbsPackage": json.dumps(request)}, timeout=30).json()
        assert answer["ret_code"] == 0, answer
        assert verify_pkcs7(b"over PC/SC", base64.b64decode(answer["signature"])) == pki.card_certificate(demo_card)
        wrong = requests.post(f"{server.url}/sign", data={"tbsPackage": json.dumps({**request, "pin": "000000"})},
                              timeout=30).json()
        # The real component's "wrong PIN, two tries left".
        assert wrong["last_error"] == -2147483646 and wrong["tries_left"] == 2
    finally:
        server.shutdown()
        server.server_close()
