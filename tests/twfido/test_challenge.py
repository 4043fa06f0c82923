"""twfido.challenge: the text a phone's WebAuthn approval covers, rebuilt as a verifier would."""

import hashlib

from twfido import challenge


def test_the_challenge_input_is_sorted_compact_json_with_non_ascii_kept():
    text = challenge.challenge_input(
        hint="核准「公文」", op_code="SIGN", sign_data="要簽的字", sp_service_id="SP0001", sp_ticket_id="tid",
        transaction_id="t-1",
    )
    assert text == (
        '{"hint":"核准「公文」","op_code":"SIGN","sign_data":"要簽的字","sp_service_id":"SP0001",'
        '"sp_ticket_id":"tid","transaction_id":"t-1"}'
    )
    assert challenge.challenge(text) == hashlib.sha256(text.encode("utf-8")).digest()


def test_an_absent_value_is_the_empty_string():
    text = challenge.challenge_input(
        hint=None, op_code="ATH", sign_data=None, sp_service_id="SP0001", sp_ticket_id="tid", transaction_id="t"
    )
    assert '"hint":""' in text and '"sign_data":""' in text


def test_a_batch_signs_the_list_of_its_items_digests():
    digests = challenge.batch_digests(["第一份", "second"])
    assert digests == [hashlib.sha256("第一份".encode()).hexdigest(), hashlib.sha256(b"second").hexdigest()]
    text = challenge.challenge_input(
        hint="h", op_code="BATSIGN", sign_data=digests, sp_service_id="s", sp_ticket_id="i", transaction_id="t"
    )
    assert f'"sign_data":["{digests[0]}","{digests[1]}"]' in text
