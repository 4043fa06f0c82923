"""Run the fuzz against a target and report: counts per route and status, every 5xx with its case."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

from . import cases, known, wire
from .certificates import bent_certificates
from .target import ADMIN_ID, PERSON_ID, Target

HEALTH_EVERY = 100  # cases per thread between checks that the logged-in identities still are


@dataclass
class Failure:
    database: str
    route: str
    number: int
    status: int
    note: str
    request: str
    error: str = ""
    cut: bool = False
    cause: str = ""
    kind: str = ""


@dataclass
class Result:
    database: str
    seed: int
    per_route: int
    counts: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    failures: list[Failure] = field(default_factory=list)
    log_causes: Counter = field(default_factory=Counter)
    harness_errors: Counter = field(default_factory=Counter)  # the fuzz's own trouble making a case
    incomplete: bool = False
    seconds: float = 0.0

    @property
    def sent(self) -> int:
        return sum(sum(c.values()) for c in self.counts.values())


class Driver:
    """Identities per thread (logged in lazily, again when a fuzzed request ended them) and the cases."""

    def __init__(self, target: Target, seed: int) -> None:
        self.target, self.seed = target, seed
        self.local = threading.local()
        self.names = cases.field_names()
        from cryptography.hazmat.primitives.serialization import Encoding

        from tests.support import card_of

        der = target.pki.card_certificate(card_of(target.pki, PERSON_ID)).public_bytes(Encoding.DER)
        self.bad_certificates = bent_certificates(der, seed)
        self._restore_lock = threading.Lock()

    def context(self) -> cases.Context:
        local = self.local
        if not hasattr(local, "ctx"):
            local.http = {}
            local.count = 0
            identities = {name: self._login(name) for name in cases.IDENTITIES}
            local.ctx = cases.Context(
                seed=self.target.seed, host=self.target.host, names=self.names, identities=identities,
                fresh_card_login=self._fresh_card_login, signed_answer=self.target.signed_answer,
                fresh_binding_credential=self._fresh_binding, bad_certificates=self.bad_certificates,
                authorize_query=self.target.authorize_query(),
            )
        local.count += 1
        if local.count % HEALTH_EVERY == 0:
            self._check(local.ctx)
        return local.ctx

    def _login(self, name: str) -> cases.Identity:
        if name == "anonymous":
            return cases.Identity(name)
        if name == "visitor":
            http = requests.Session()
        else:
            national_id = PERSON_ID if name == "person" else ADMIN_ID
            http, answer = self.target.card_login(national_id)
            if answer.get("status") != "logged_in":
                with self._restore_lock:
                    self.target.restore()
                http, answer = self.target.card_login(national_id)
        self.local.http[name] = http
        csrf = self.target.csrf(http)
        cookie = "; ".join(f"{c.name}={c.value}" for c in http.cookies)
        return cases.Identity(name, cookie.encode(), csrf)

    def _check(self, ctx: cases.Context) -> None:
        probes = {"person": "/api/v1/account", "admin": "/api/v1/admin/me"}
        for name, path in probes.items():
            try:
                ok = self.local.http[name].get(self.target.url + path, timeout=30).status_code == 200
            except requests.RequestException:
                ok = False
            if not ok:
                ctx.identities[name] = self._login(name)

    def _fresh_card_login(self) -> tuple[str, str]:
        begin = self.target.begin_card_login(requests.Session())
        return begin["login_id"], begin["tbs"]

    def _fresh_binding(self) -> tuple[str, dict | None]:
        try:
            _, token = self.target.new_binding(self.local.http["person"])
        except Exception:  # the person's session may have just been ended by a fuzzed request
            return "x" * 43, None
        return token, self.target.phone_credential(token)

    def case(self, route: cases.Route, number: int) -> cases.Case:
        return cases.generate(route, number, self.seed, self.target.database, self.context())


def list_routes(target: Target) -> list[cases.Route]:
    return [cases.Route(*row) for row in target.routes]


def fuzz_target(target: Target, *, seed: int, per_route: int, concurrency: int = 8, max_seconds: float = 3600,
                route_filter: str | None = None, replays: int = 2, progress=None) -> Result:
    result = Result(target.database, seed, per_route)
    routes = [r for r in list_routes(target) if not route_filter or re.search(route_filter, r.key)]
    driver = Driver(target, seed)
    started = time.monotonic()
    deadline = started + max_seconds
    lock = threading.Lock()
    log_start = target.log_size()

    def one(task: tuple[int, cases.Route]) -> None:
        number, route = task
        if time.monotonic() > deadline:
            result.incomplete = True
            return
        try:
            case = driver.case(route, number)
        except Exception as exc:  # e.g. a login the fuzz needed was refused: counted, never hidden
            with lock:
                result.harness_errors[f"{route.key}: {type(exc).__name__}: {exc}"[:300]] += 1
            return
        response = wire.send(target.address, target.host, case.request)
        with lock:
            status = response.status or "no answer"
            if response.cut:
                status = f"{status} cut"
            result.counts[route.key][status] += 1
            if response.status == 0 or response.status >= 500 or response.cut:
                result.failures.append(Failure(target.database, route.key, number, response.status, case.note,
                                               case.request.describe(target.host), response.error, response.cut))
            if progress and result.sent % 1000 == 0:
                progress(f"{target.database}: {result.sent} requests, {len(result.failures)} × 5xx")

    tasks = ((number, route) for number in range(per_route) for route in routes)
    with ThreadPoolExecutor(concurrency) as pool:
        for _ in pool.map(one, tasks):
            pass
    for route in routes:  # a route the time bound cut short still appears
        result.counts.setdefault(route.key, Counter())
    result.seconds = time.monotonic() - started
    result.log_causes = server_errors(target.log_since(log_start))
    _replay_failures(target, driver, result, routes, replays)
    return result


_ENTRY = re.compile(r"^\[\d{4}-\d\d-\d\d [^\]]*\] (?:ERROR in app: Exception on (?P<path>.*?) \[(?P<method>[A-Z]+)\]"
                    r"|\[\d+\] \[ERROR\] Error handling request ?(?P<request>.*))$"
                    r"|^(?P<logging>--- Logging error ---)$", re.M)
# An exception line: a (dotted) class name, then its message; SQL and source lines are not.
_EXCEPTION = re.compile(r"^(?:(?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Warning|Iteration)(?::\s.*)?"
                        r"|(?:[a-z_]\w*\.)+[A-Z]\w*:\s.*)$")


def server_errors(log: str) -> Counter:
    """Each error the server logged (Flask's "Exception on …", gunicorn's "Error handling request …"),
    counted by the last exception of its traceback (the one that made the 500) and the route's path."""
    causes = Counter()
    causes.paths = {}  # cause -> up to three paths it came from
    starts = list(_ENTRY.finditer(log))
    for index, entry in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(log)
        lines = []
        for line in log[entry.end():end].splitlines():
            if _EXCEPTION.match(line) and line[:200] not in lines:
                lines.append(line[:200])
        # The last exception made the 500; in a chain, the earlier ones say how it came about.
        path = entry["path"] or (entry["request"] or "").split(" ")[-1] or "(gunicorn, no path)"
        cause = " ← ".join(reversed(lines))[:400] if lines else "(no traceback)"
        cause = re.sub(r"\b(position|line|column|char) \d+", r"\1 …", cause)  # one cause, wherever it struck
        if entry["logging"]:  # Python's logging could not write the error before it (its path, say)
            cause, path = f"the server could not log an error: {cause}", "(log)"
        causes[cause] += 1
        examples = causes.paths.setdefault(cause, [])
        if len(examples) < 3 and path.split("?")[0][:80] not in examples:
            examples.append(path.split("?")[0][:80])
    return causes


def _replay_failures(target: Target, driver: Driver, result: Result, routes, replays: int) -> None:
    """Send failing cases again one at a time, to tie each to the traceback it causes in the server's log."""
    by_key = {r.key: r for r in routes}
    seen: Counter = Counter()
    for failure in result.failures:
        if seen[failure.route] >= replays:
            failure.cause = "(not replayed: see the causes in the server log)"
            failure.kind = known.classify(failure.cause, failure.route)
            continue
        seen[failure.route] += 1
        offset = target.log_size()
        case = driver.case(by_key[failure.route], failure.number)
        response = wire.send(target.address, target.host, case.request)
        time.sleep(0.2)
        causes = server_errors(target.log_since(offset))
        if causes:
            failure.cause = next(iter(causes))
        elif response.status >= 500 or response.status == 0 or response.cut:
            failure.cause = f"{response.status or 'no answer'} again, no traceback in the log ({response.error})"
        else:  # it needed the state of the run (a row another case made): the log's causes name it
            failure.cause = f"not reproduced alone (answered {response.status})"
            failure.kind = "state-dependent: see the causes in the server log"
            continue
        failure.kind = known.classify(failure.cause, failure.route)


# -- the report ------------------------------------------------------------------------------------------


def report(result: Result, *, show: int = 40, out=sys.stdout) -> None:
    write = lambda line="": print(line, file=out)  # noqa: E731
    write(f"== MoCert fuzz on {result.database}: seed {result.seed}, {result.per_route} requests per route, "
          f"{result.sent} requests in {result.seconds:.0f} s"
          + (" (stopped by the time bound)" if result.incomplete else ""))
    width = max(len(k) for k in result.counts) if result.counts else 10
    for key in sorted(result.counts, key=lambda k: (k.split(" ", 1)[1], k)):
        counter = result.counts[key]
        statuses = " ".join(f"{status}×{n}" for status, n in sorted(counter.items(), key=lambda i: str(i[0])))
        flag = "  <-- 5xx" if any(not str(s).isdigit() or int(s) >= 500 for s in counter) else ""
        write(f"  {key:<{width}} {sum(counter.values()):>6}  {statuses}{flag}")
    write(f"-- 5xx, no answer or a cut answer on {result.database}: {len(result.failures)}")
    by_cause = Counter((f.kind, f.cause) for f in result.failures if f.cause and not f.cause.startswith("(not"))
    for (kind, cause), n in by_cause.most_common():
        write(f"  [{kind}] {cause}  (×{n} replayed)")
    if result.harness_errors:
        write("-- cases the fuzz could not make (its own trouble, not the server's):")
        for error, n in result.harness_errors.most_common():
            write(f"  {n:>6}  {error}")
    if result.log_causes:
        write("-- tracebacks in the server log (last line, count):")
        for cause, n in result.log_causes.most_common():
            paths = getattr(result.log_causes, "paths", {}).get(cause, [])
            kind = known.classify(cause, " ".join(paths))
            write(f"  {n:>6}  [{kind}] {cause}\n          at {', '.join(paths)}")
    for failure in result.failures[:show]:
        status = f"{failure.status or 'no answer'}{' cut' if failure.cut else ''}"
        write(f"  {status}  {failure.route}  case {failure.number} ({failure.note})")
        if failure.cause:
            write(f"       cause: {failure.cause}  [{failure.kind}]")
        write(f"       replay: .venv/bin/python -m fuzz --database {failure.database} --seed {result.seed} "
              f"--replay '{failure.route}' {failure.number}")
        write(f"       request: {failure.request}")
        if failure.error:
            write(f"       error: {failure.error}")
    if len(result.failures) > show:
        write(f"  … and {len(result.failures) - show} more (--show, or --report FILE for all)")


def as_json(results: list[Result]) -> dict:
    return {
        "results": [{
            "database": r.database, "seed": r.seed, "per_route": r.per_route, "sent": r.sent,
            "seconds": round(r.seconds, 1), "incomplete": r.incomplete,
            "counts": {k: {str(s): n for s, n in c.items()} for k, c in r.counts.items()},
            "log_causes": [{"cause": c, "count": n, "paths": getattr(r.log_causes, "paths", {}).get(c, [])}
                           for c, n in r.log_causes.items()], "harness_errors": dict(r.harness_errors),
            "failures": [f.__dict__ for f in r.failures],
        } for r in results],
    }


def save(results: list[Result], path: Path) -> None:
    path.write_text(json.dumps(as_json(results), ensure_ascii=False, indent=1))
