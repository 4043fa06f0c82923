"""The login benchmark still runs end to end (a round of each server, two clients, a second) and prints
its figures; their values are not judged here."""

from __future__ import annotations

import io
import re

import sqlalchemy as sa

from bench import login, mocert
from tests.support import missing


def test_a_short_run_logs_in_without_errors_and_prints_every_figure():
    try:
        sa.create_engine(mocert.POSTGRES_ADMIN_URL, poolclass=sa.pool.NullPool).connect().close()
    except sa.exc.OperationalError as exc:
        missing(f"PostgreSQL not reachable at {mocert.POSTGRES_ADMIN_URL}: {exc}")
    out = io.StringIO()
    status = login.main(["--clients", "2", "--seconds", "1", "--rounds", "1"], out=out)
    printed = out.getvalue()
    assert status == 0, printed

    example = re.search(r"^round 1  example +(\d+) ceremonies .* errors (\d+)$", printed, re.MULTILINE)
    ours = re.search(r"^round 1  MoCert +(\d+) logins .* errors (\d+)$", printed, re.MULTILINE)
    assert example and ours, printed
    assert int(example.group(1)) > 0 and int(ours.group(1)) > 0, printed
    assert example.group(2) == ours.group(2) == "0", printed
    for figure in (r"ceremonies per second: MoCert [\d.]+, example [\d.]+, ratio [\d.]+",
                   r"server CPU per login: MoCert [\d.]+ ms, example [\d.]+ ms per ceremony, ratio [\d.]+",
                   r"latency: MoCert p50 +[\d.]+ ms +p99 +[\d.]+ ms; example p50",
                   r"load generator CPU per ceremony: [\d.]+ ms \(MoCert\), [\d.]+ ms \(example\)",
                   r"SQL per login \(one login through the app, in process\): [1-9]\d* statements, [1-9]\d* commits",
                   r"PostgreSQL commits per login \(pg_stat_database .*\): [1-9][\d.]*",
                   r"lock waiters \(pg_stat_activity .*\): [\d.]+ mean",
                   r"errors: 0"):
        assert re.search(figure, printed), (figure, printed)
