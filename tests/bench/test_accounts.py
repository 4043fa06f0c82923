"""The deployment-size benchmark still runs end to end (two small sizes, a round each, two clients for a
second) and prints its figures; their values are not judged here."""

from __future__ import annotations

import io
import re

import sqlalchemy as sa

from bench import accounts, mocert
from tests.support import missing


def test_two_small_sizes_log_in_without_errors_and_print_the_ratio():
    try:
        sa.create_engine(mocert.POSTGRES_ADMIN_URL, poolclass=sa.pool.NullPool).connect().close()
    except sa.exc.OperationalError as exc:
        missing(f"PostgreSQL not reachable at {mocert.POSTGRES_ADMIN_URL}: {exc}")
    out = io.StringIO()
    status = accounts.main(["--accounts", "20,300", "--people", "4", "--clients", "2", "--seconds", "1",
                            "--rounds", "1"], out=out)
    printed = out.getvalue()
    assert status == 0, printed

    assert re.search(r"^  296/296 people loaded", printed, re.MULTILINE), printed
    for size in ("20", "300"):
        found = re.search(rf"^ +{size} accounts: +(\d+) logins .* errors (\d+)$", printed, re.MULTILINE)
        assert found and int(found.group(1)) > 0 and found.group(2) == "0", printed
    assert re.search(r"p50 300 / 20: [\d.]+ \(issue 14 asks <= 1.2\); round by round: [\d.]+$", printed,
                     re.MULTILINE), printed


def test_a_size_is_written_as_a_count_or_with_k_or_m():
    assert [accounts.parse_size(text) for text in ("1000", "1k", "1M", "1_000_000")] == [1000, 1000, 10**6, 10**6]
    assert [accounts.size_name(n) for n in (1000, 10**6, 2500, 20)] == ["1k", "1M", "2500", "20"]


def test_the_loaded_national_ids_are_valid_and_distinct():
    from bench.population import national_id
    from iccard import national_id as ids

    numbers = [national_id(n) for n in (0, 1, 2, 3, 999_999, 19_999_999)]
    assert all(ids.is_valid(nid) for nid in numbers), numbers
    assert len(set(numbers)) == len(numbers)
