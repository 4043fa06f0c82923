"""A short round of the fuzz harness (``make fuzz`` runs the long one): every route of the url_map, 20
requests each, against gunicorn on SQLite and on PostgreSQL; no request may get a 5xx or no answer.

``MOCERT_FUZZ_SEED`` picks the seed (fixed by default, so a failure repeats); ``MOCERT_FUZZ_REQUESTS``
the requests per route.
"""

from __future__ import annotations

import contextlib
import io
import os

import pytest

from fuzz import run
from fuzz.target import Mailbox, Target, TargetError
from tests.support import missing

SEED = int(os.environ.get("MOCERT_FUZZ_SEED", "20261201"))
PER_ROUTE = int(os.environ.get("MOCERT_FUZZ_REQUESTS", "20"))


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_no_route_answers_a_fuzzed_request_with_a_5xx(database, tmp_path):
    with Mailbox() as mailbox, contextlib.ExitStack() as stack:
        try:
            target = stack.enter_context(Target(database, tmp_path, mailbox))
        except TargetError as exc:
            if database == "postgresql" and "not reachable" in str(exc):
                missing(str(exc))
            raise
        result = run.fuzz_target(target, seed=SEED, per_route=PER_ROUTE, max_seconds=600)
    text = io.StringIO()
    run.report(result, show=20, out=text)
    assert len(result.counts) > 80, "every route of the url_map is fuzzed"
    assert min(sum(c.values()) for c in result.counts.values()) == PER_ROUTE, text.getvalue()
    assert not result.harness_errors, text.getvalue()
    if result.failures:
        pytest.fail(text.getvalue(), pytrace=False)


def _context():
    from fuzz import cases
    from fuzz.target import Seed

    seed = Seed(account_ids=[1, 2], device_ids=[1], token_ids=[1], client_ids=["c1"], client_secret="s",
                service_token="t", binding_ids=["b"], binding_tokens=["bt"], login_ids=["l"], login_tokens=["lt"])
    identities = {name: cases.Identity(name, b"mocert_session=x" if name != "anonymous" else b"", "csrf")
                  for name in cases.IDENTITIES}
    return cases.Context(seed=seed, host=b"localhost", names=cases.field_names(), identities=identities,
                         fresh_card_login=lambda: ("login", "tbs"),
                         signed_answer=lambda index, tbs, kind="PKCS7": {"signatureType": kind, "signature": "AA=="},
                         fresh_binding_credential=lambda: ("token", {"id": "x"}), bad_certificates=[b"\x30\x00"])


def test_a_case_is_made_again_byte_for_byte_from_its_seed_and_number():
    from fuzz import cases

    route = cases.Route("/api/v1/devices/<int:device_id>", "PATCH", "devices.rename_device")
    ctx = _context()
    made = [cases.generate(route, n, 7, "sqlite", ctx).request.to_bytes(b"h") for n in range(50)]
    assert made == [cases.generate(route, n, 7, "sqlite", ctx).request.to_bytes(b"h") for n in range(50)]
    assert len(set(made)) == 50, "each number is another case"
    assert made != [cases.generate(route, n, 8, "sqlite", ctx).request.to_bytes(b"h") for n in range(50)]


def test_the_server_log_is_read_as_one_cause_per_error_the_last_exception_of_its_chain():
    log = """[2026-12-01 10:00:00,000] ERROR in app: Exception on /x [POST]
Traceback (most recent call last):
  File "a.py", line 1, in f
UnicodeError: label too long

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "b.py", line 2, in g
[SQL: SELECT 1
WHERE accounts.id = 1]
AttributeError: 'NoneType' object has no attribute 'build'
[2026-12-01 10:00:01 +0000] [12] [ERROR] Error handling request /y
Traceback (most recent call last):
RecursionError: maximum recursion depth exceeded
"""
    causes = run.server_errors(log)
    assert causes == {"AttributeError: 'NoneType' object has no attribute 'build' ← UnicodeError: label too long": 1,
                      "RecursionError: maximum recursion depth exceeded": 1}
    assert causes.paths["RecursionError: maximum recursion depth exceeded"] == ["/y"]


def test_a_path_with_a_space_still_starts_its_own_error():
    log = ("[2026-12-01 10:00:00,000] ERROR in app: Exception on /a [POST]\nRecursionError: deep\n"
           "[2026-12-01 10:00:01,000] ERROR in app: Exception on /m/bind/a b/complete [POST]\nValueError: x\n")
    causes = run.server_errors(log)
    assert causes == {"RecursionError: deep": 1, "ValueError: x": 1}
    assert causes.paths["ValueError: x"] == ["/m/bind/a b/complete"]


def test_an_error_the_server_could_not_log_is_a_cause_of_its_own():
    log = ("[2026-12-01 10:00:00,000] ERROR in app: Exception on /a\udfff [GET]\nRecursionError: deep\n"
           "--- Logging error ---\nTraceback (most recent call last):\n"
           "UnicodeEncodeError: 'utf-8' codec can't encode character '\\udfff'\nCall stack:\n")
    assert run.server_errors(log) == {"RecursionError: deep": 1,
                                      "the server could not log an error: UnicodeEncodeError: 'utf-8' codec can't "
                                      "encode character '\\udfff'": 1}


def test_a_chunked_answer_without_its_last_chunk_is_cut():
    from fuzz import wire

    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    whole = wire._parse(head + b"3\r\nabc\r\n0\r\n\r\n")
    assert (whole.status, whole.body, whole.cut) == (200, b"abc", False)
    broken = wire._parse(head + b"3\r\nabc\r\n")
    assert (broken.status, broken.body, broken.cut) == (200, b"abc", True)
