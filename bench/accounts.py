"""MoCert's login at several deployment sizes side by side: does a login cost more when a million people are
registered than when a thousand are (issue 14: "1 M accounts: p50 within 1.2× of 1 k accounts")?

For each size in ``--accounts``, a deployment of its own: a fresh PostgreSQL database (``bench_<random>``,
dropped at the end), built as ``bench.login`` builds MoCert's (the demo PKI, the relying party, ``--people``
accounts with a bound phone and consent, through the app's services), with the other people of that size
loaded in bulk between them (``bench/population.py``), so that the people logged in as sit all through the
tables; then VACUUM ANALYZE, and gunicorn serving it. The deployments are all up at once, and their rounds
alternate, the order reversed every other round (1k, 1M, 1M, 1k, …), so that the machine's other load falls
on each alike. A round is ``bench.login``'s: ``--clients`` clients at once, each logging in again and again
for ``--seconds``, every client going through its share of the people in turn. Each round prints the
logins per second, p50/p99, the server's CPU and PostgreSQL backends' CPU per login; the summary pools the
rounds of each size and prints each size's p50 against the smallest's.

    python -m bench.accounts [--accounts 1000,1000000] [--clients 4] [--seconds 20] [--rounds 4]
                             [--people 32] [--server 1x8]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from . import mocert
from .client import HttpBrowser
from .login import Round, free_port, p50_p99, pooled, round_line, run
from .measure import PostgresWatch, TreeCpu, percentile
from .population import Population
from .serve import Gunicorn


def size_name(accounts: int) -> str:
    """1000 → 1k, 1000000 → 1M, 2500 → 2500."""
    for unit, name in ((10**6, "M"), (10**3, "k")):
        if accounts >= unit and accounts % unit == 0:
            return f"{accounts // unit}{name}"
    return str(accounts)


def parse_size(text: str) -> int:
    """``1000``, ``1k``, ``1M`` or ``1_000_000``."""
    text = text.strip().replace("_", "")
    factor = {"k": 10**3, "K": 10**3, "m": 10**6, "M": 10**6}.get(text[-1:], 1)
    return int(text[:-1] if factor > 1 else text) * factor


class Deployment:
    """One size's database, people and server; :meth:`close` removes them."""

    def __init__(self, accounts: int, args: argparse.Namespace, out: TextIO) -> None:
        self.accounts, self.args, self.out = accounts, args, out
        self.name = size_name(accounts)
        self.work = Path(tempfile.mkdtemp(prefix=f"mocert-accounts-{self.name}-"))
        self.database: mocert.Database | None = None
        self.server: Gunicorn | None = None
        self.watch: PostgresWatch | None = None

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self.watch is not None:
            self.watch.close()
        if self.database is not None:
            self.database.drop()
        shutil.rmtree(self.work, ignore_errors=True)

    def prepare(self) -> None:
        people, others = self.args.people, self.accounts - self.args.people
        self.database = mocert.Database("postgresql", self.work)
        port = free_port()
        environment = mocert.server_environment(self.work, self.database.url, port)
        print(f"{self.name}: {self.accounts:,} accounts in {self.database.name}: {people} made through the app's "
              f"services, {others:,} loaded in bulk between them", file=self.out, flush=True)
        began = time.perf_counter()
        population: list[Population] = []

        def after_each(client, made: int) -> None:
            from flask import current_app

            from app.wiring import parts

            if not population:
                population.append(Population(
                    self.database.url.replace("postgresql+psycopg://", "postgresql://"),
                    client_row=client.id, client_id=client.client_id, total=others,
                    national_id_key=current_app.config["NATIONAL_ID_HMAC_KEY"].encode(),
                    national_id_hash=parts().national_id_hash,
                    progress=lambda line: print(line, file=self.out, flush=True)))
            # After the made-th of the people, the made-th share of the others: the people are evenly spread.
            population[0].add(others * made // people - others * (made - 1) // people)

        app, self.state = mocert.build(self.work, environment, people, after_each=after_each)
        with app.app_context():
            from app.extensions import db

            db.session.remove()
            db.engine.dispose()
        loaded = time.perf_counter() - began
        population[0].analyze()
        population[0].close()
        print(f"{self.name}: built and loaded in {loaded:.0f} s, VACUUM ANALYZE {time.perf_counter() - began - loaded:.0f} s, "
              f"database {self._size()}", file=self.out, flush=True)
        self.server = Gunicorn("wsgi:app", cwd=mocert.ROOT, port=port, environment=environment,
                               log=self.work / "mocert.log")
        self.server.start(workers=self.args.workers, threads=self.args.threads, ready="/healthz")
        self.watch = PostgresWatch(self.database.admin_url, self.database.name)

    def _size(self) -> str:
        import psycopg

        with psycopg.connect(self.database.admin_url, autocommit=True) as connection:
            return connection.execute("SELECT pg_size_pretty(pg_database_size(%s))", (self.database.name,)).fetchone()[0]

    def round(self, seconds: float) -> Round:
        """The clients logging in for ``seconds``, client i as people i, i + clients, … in turn."""
        clients, browsers = self.args.clients, []

        def ceremony_of(share: list[mocert.Person]) -> Callable[[], None]:
            browser, rp = HttpBrowser(self.server.port), HttpBrowser(self.server.port)
            browsers.extend((browser, rp))
            turn = [0]

            def ceremony() -> None:
                person = share[turn[0] % len(share)]
                turn[0] += 1
                browser.forget()  # a new browser each time, with no MoCert session yet
                mocert.login(browser, rp, self.state, person)

            return ceremony

        ceremonies = [ceremony_of(self.state.people[i::clients]) for i in range(clients)]
        run(ceremonies, 0, "warm-up")
        try:
            return run(ceremonies, seconds, self.name, TreeCpu(self.server.pid), self.watch)
        finally:
            for browser in browsers:
                browser.close()


def report(deployments: list[Deployment], rounds: dict[str, list[Round]], out: TextIO) -> None:
    print(f"\nsummary, {len(next(iter(rounds.values())))} round(s) of each size pooled:", file=out)
    first = deployments[0].name
    base = percentile(pooled(rounds[first], first).latencies, 0.5)
    for deployment in deployments:
        name = deployment.name
        ours = pooled(rounds[name], name)
        pg = ours.postgres
        line = (f"  {name:>5} accounts: {ours.ceremonies:6d} logins {ours.rate:6.1f}/s  {p50_p99(ours)}  server CPU "
                f"{ours.per_ceremony(ours.server_cpu):5.1f} ms/login  backends' CPU {ours.per_ceremony(pg['backend_cpu']):5.1f} "
                f"ms/login  errors {sum(ours.errors.values())}")
        print(line, file=out)
    for deployment in deployments[1:]:
        name = deployment.name
        p50 = percentile(pooled(rounds[name], name).latencies, 0.5)
        by_round = [percentile(b.latencies, 0.5) / percentile(a.latencies, 0.5)
                    for a, b in zip(rounds[first], rounds[name], strict=True)]
        print(f"  p50 {name} / {first}: {p50 / base:.2f} (issue 14 asks <= 1.2); round by round: "
              + ", ".join(f"{ratio:.2f}" for ratio in by_round), file=out)
    errors = sum(sum(r.errors.values()) for results in rounds.values() for r in results)
    print(f"  errors: {errors}", file=out)


def main(argv: list[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.accounts", description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", default="1000,1000000",
                        help="deployment sizes, comma-separated, smallest first (default 1000,1000000; 1k, 1M work)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    parser.add_argument("--seconds", type=float, default=20, help="seconds per round (default 20)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds of each size, interleaved (default 4)")
    parser.add_argument("--people", type=int, default=32,
                        help="accounts logged in as, spread through each size's tables (default 32)")
    parser.add_argument("--server", default="1x8", help="gunicorn workers x threads (default 1x8)")
    args = parser.parse_args(argv)
    try:
        args.sizes = [parse_size(size) for size in args.accounts.split(",")]
        args.workers, args.threads = (int(n) for n in args.server.lower().split("x"))
    except ValueError:
        parser.error("--accounts is sizes like 1000,1000000 and --server WORKERSxTHREADS, like 1x8")
    if min(args.clients, args.rounds, args.workers, args.threads) < 1 or args.seconds <= 0:
        parser.error("--clients, --rounds, workers and threads must be at least 1, --seconds above 0")
    if args.people < args.clients or min(args.sizes) < args.people or len(set(args.sizes)) != len(args.sizes):
        parser.error("--people must be at least --clients, every size at least --people, and the sizes distinct")

    deployments = [Deployment(size, args, out) for size in args.sizes]
    failed = True
    try:
        for deployment in deployments:
            deployment.prepare()
        print(f"Full OIDC passkey login, token mode, {args.clients} clients over {args.people} people, PostgreSQL, "
              f"gunicorn {args.workers}x{args.threads} (gthread) per size, {args.rounds} interleaved round(s) of "
              f"{args.seconds:g} s", file=out)
        rounds: dict[str, list[Round]] = {d.name: [] for d in deployments}
        for number in range(1, args.rounds + 1):
            for deployment in deployments if number % 2 else deployments[::-1]:
                rounds[deployment.name].append(deployment.round(args.seconds))
                print(round_line(number, rounds[deployment.name][-1]), file=out, flush=True)
        report(deployments, rounds, out)
        failed = any(r.errors for results in rounds.values() for r in results)
    finally:
        for deployment in deployments:
            deployment.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
