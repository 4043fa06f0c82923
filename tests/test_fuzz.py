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
