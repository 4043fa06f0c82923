from tests.support import card_of, make_signature

def test_flow(client, pki, mailbox):
    begin = client.post("/api/v1/card-login/begin").get_json()
    card = card_of(pki, "A123456789")
    sig = make_signature(pki, card, begin["tbs"])
    r = client.post("/api/v1/card-login/complete", json={"login_id": begin["login_id"], **sig})
    print(r.status_code, r.get_json())
    assert r.status_code == 200
    r = client.post("/api/v1/account/register", json={"national_id": "A123456789", "email": "a@example.com", "phone": "0912345678"})
    print(r.status_code, r.get_json())
    assert r.status_code == 201
    print(mailbox.messages[0]["Subject"])
