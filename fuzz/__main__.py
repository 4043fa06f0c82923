"""``python -m fuzz``: fuzz every route of MoCert under gunicorn on SQLite and PostgreSQL (``make fuzz``).

Exit status: 0 when no request got a 5xx (or no answer), 1 when one did, 2 when the time bound stopped a
database before every route had its requests.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from . import run, wire
from .target import Mailbox, Target, TargetError


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(10**9)
    databases = args.database or ["sqlite", "postgresql"]
    with tempfile.TemporaryDirectory(prefix="mocert-fuzz-") as tmp, Mailbox() as mailbox:
        workdir = Path(args.workdir or tmp)
        if args.replay:
            return _replay(workdir, mailbox, databases[0], seed, args)
        print(f"fuzz seed {seed} (--seed {seed} repeats this run); server logs under {workdir}", flush=True)
        results = []
        for database in databases:
            try:
                with Target(database, workdir, mailbox, workers=args.workers, threads=args.threads) as target:
                    result = run.fuzz_target(
                        target, seed=seed, per_route=args.requests_per_route, concurrency=args.concurrency,
                        max_seconds=args.max_minutes * 60, route_filter=args.route,
                        progress=(lambda line: print(line, file=sys.stderr, flush=True)) if args.progress else None,
                    )
            except TargetError as exc:
                print(f"fuzz: {database}: {exc}", file=sys.stderr)
                return 3
            run.report(result, show=args.show)
            results.append(result)
        if args.report:
            run.save(results, Path(args.report))
    if any(r.failures for r in results):
        return 1
    return 2 if any(r.incomplete for r in results) else 0


def _replay(workdir: Path, mailbox: Mailbox, database: str, seed: int, args) -> int:
    """One case, sent alone to a fresh server: the request, the answer and the server's log."""
    key, number = args.replay[0], int(args.replay[1])
    with Target(database, workdir, mailbox, workers=args.workers, threads=args.threads) as target:
        routes = {r.key: r for r in run.list_routes(target)}
        if key not in routes:
            print(f"no route {key!r}; routes are: {', '.join(routes)}", file=sys.stderr)
            return 3
        driver = run.Driver(target, seed)
        case = driver.case(routes[key], number)
        offset = target.log_size()
        response = wire.send(target.address, target.host, case.request)
        time.sleep(0.3)
        print(f"case {number} of {key} ({case.note})\nrequest: {case.request.describe(target.host, limit=4000)}")
        body = response.body[:2000].decode("utf-8", "replace")
        print(f"answer: {response.status or 'no answer'}{' cut' if response.cut else ''} {response.error}\n{body}")
        print(f"server log:\n{target.log_since(offset)}")
        return 1 if response.status == 0 or response.status >= 500 or response.cut else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--requests-per-route", type=int, default=1000, help="per route and method (1000)")
    parser.add_argument("--database", action="append", choices=["sqlite", "postgresql"],
                        help="repeatable; default both")
    parser.add_argument("--seed", type=int, help="default: a random one, printed")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (8)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker (4)")
    parser.add_argument("--max-minutes", type=float, default=45, help="time bound per database (45)")
    parser.add_argument("--route", help="only routes whose 'METHOD /rule' matches this regular expression")
    parser.add_argument("--show", type=int, default=40, help="5xx printed in full per database (40)")
    parser.add_argument("--report", help="write every count and failure to this JSON file")
    parser.add_argument("--workdir", help="keep the servers' instance dirs and logs here (default: a temporary dir)")
    parser.add_argument("--progress", action="store_true", help="a line on stderr every 1000 requests")
    parser.add_argument("--replay", nargs=2, metavar=("'METHOD /rule'", "CASE"),
                        help="send one case (with the same --seed and --database) and show the server's log")
    return parser


if __name__ == "__main__":
    sys.exit(main())
