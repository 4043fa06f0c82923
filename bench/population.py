"""A deployment's other people, loaded in bulk: the rows a million registered persons leave in MoCert's
database, so that a login is measured against tables of that size (issue 14: "1 M accounts cost the same
as 1 k").

Each person loaded has what a person who registered with a card, bound a phone and logged in at the bench's
relying party has: an account (the app's keyed hash of a valid national ID of their own, its mask, a name,
a verified email, a phone), a bound device (a credential id and an ES256 COSE public key of the shapes a
phone sends), its mobile certificate row, the relying party's ``openid`` consent, two past sessions (the
card one they registered with and a phone one, both ended), the code and token that phone login got, and
three audit events (registered, device bound, logged in by phone) chained into the audit trail as
``app/audit_chain.py`` links them, so that ``audit verify`` still passes. Their credentials' private keys
exist nowhere: they are never logged in as.

Speed: accounts and audit events are computed here (the national ID's HMAC, the chain's hashes) and sent
with COPY; every other row is derived from the new accounts by one ``INSERT … SELECT`` per table, in the
database. The bench's people, made through the app's services, are placed between the loads (see
:meth:`Population.add`), so that they sit all through the tables, not in their first rows.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from iccard.national_id import mask

# A national ID's first letter, as the check digit counts it (A = 10 … Z = 33; I, O, W in their places).
_LETTERS = dict(zip("ABCDEFGHJKLMNPQRSTUVXYWZIO", range(10, 36), strict=True))
_WEIGHTS = (1, 9, 8, 7, 6, 5, 4, 3, 2, 1)
_PAST = timedelta(days=730)  # people registered over the last two years


def national_id(number: int) -> str:
    """A valid national ID of its own for each ``number`` below 2·10⁷: B (the bench's own people are
    ``A1…``), either sex, seven digits, the check digit (:meth:`Population._accounts` makes the same in SQL)."""
    letter = "B"
    sex = 1 + number % 2
    serial = number // 2 % 10_000_000
    digits = [*divmod(_LETTERS[letter], 10), sex, *map(int, f"{serial:07d}")]
    check = -sum(w * d for w, d in zip(_WEIGHTS, digits, strict=True)) % 10
    return f"{letter}{sex}{serial:07d}{check}"


class Population:
    """Loads people into the database at ``url`` (psycopg's URL) for the relying party ``client`` (its
    row id and ``client_id``). ``national_id_key`` is the app's NATIONAL_ID_HMAC_KEY (bytes), and
    ``national_id_hash`` its keyed hash (``parts().national_id_hash``), to check the database's against;
    ``progress`` is told each line worth printing."""

    def __init__(self, url: str, *, client_row: int, client_id: str, total: int, national_id_key: bytes,
                 national_id_hash: Callable[[str], str], progress: Callable[[str], None]) -> None:
        import psycopg

        self.client_row, self.client_id, self.total = client_row, client_id, total
        self.national_id_key, self.national_id_hash, self.progress = national_id_key, national_id_hash, progress
        if total >= 20_000_000:
            raise ValueError("national IDs B1/B2 run out at 20 M people")
        self.loaded = 0
        self.seconds = 0.0  # spent loading (not what the caller does between loads)
        self._next_tenth = 1
        self._connection = psycopg.connect(url)
        # Loading, not serving: nothing here needs to survive a crash of the server before the next commit.
        self._connection.execute("SET synchronous_commit = off")
        # The foreign keys' checks skipped, as pg_dump --disable-triggers does: every row refers to one this
        # load just wrote (it takes a superuser, as the bench's admin URL is). No other trigger fires on INSERT.
        self._connection.execute("SET session_replication_role = replica")
        self._connection.commit()
        self.now = datetime.now(timezone.utc)
        self.salt = secrets.token_hex(8)  # the loaded tokens' hashes, unrelated to any the app issues

    def close(self) -> None:
        self._connection.close()

    def add(self, count: int) -> None:
        """``count`` more people, in one transaction (its rows and the audit chain's head)."""
        if count <= 0:
            return
        began, connection = time.perf_counter(), self._connection
        with connection.cursor() as cursor:
            after_account = cursor.execute("SELECT coalesce(max(id), 0) FROM accounts").fetchone()[0]
            after_device = cursor.execute("SELECT coalesce(max(id), 0) FROM devices").fetchone()[0]
            after_session = cursor.execute("SELECT coalesce(max(id), 0) FROM auth_sessions").fetchone()[0]
            after_code = cursor.execute("SELECT coalesce(max(id), 0) FROM oidc_authorization_codes").fetchone()[0]
            self._accounts(cursor, count)
            self._derived(cursor, after_account, after_device, after_session, after_code)
            self._audit(cursor, after_account)
        connection.commit()
        self.seconds += time.perf_counter() - began
        self.loaded += count
        if self.loaded * 10 >= self._next_tenth * self.total or self.loaded == self.total:
            self._next_tenth = self.loaded * 10 // self.total + 1
            self.progress(f"  {self.loaded:,}/{self.total:,} people loaded, {self.seconds:.0f} s")

    def analyze(self) -> None:
        """VACUUM ANALYZE the database: statistics for the planner, and the visibility map and hint bits set,
        as a deployment's tables are (otherwise the first rounds would pay for them)."""
        self._connection.autocommit = True
        self._connection.execute("VACUUM (ANALYZE)")
        self._connection.autocommit = False

    def _accounts(self, cursor, count: int) -> None:
        """``count`` accounts, numbered on from those loaded: :func:`national_id` and the app's keyed hash
        of it computed in the database (HMAC-SHA256 from the built-in sha256; the first row is checked
        against the app's own hash)."""
        key = self.national_id_key if len(self.national_id_key) <= 64 else hashlib.sha256(self.national_id_key).digest()
        key = key.ljust(64, b"\0")
        inner, outer = bytes(k ^ 0x36 for k in key), bytes(k ^ 0x5C for k in key)
        weights = " + ".join(f"{w} * substr(serial, {i}, 1)::int" for i, w in enumerate((7, 6, 5, 4, 3, 2, 1), 1))
        after = cursor.execute("SELECT coalesce(max(id), 0) FROM accounts").fetchone()[0]
        cursor.execute(
            "INSERT INTO accounts (national_id_hash, national_id_masked, name, email, email_verified_at, phone, "
            "created_at) "
            "SELECT encode(sha256(%(outer)s || sha256(%(inner)s || convert_to(nid, 'UTF8'))), 'hex'), "
            "left(nid, 3) || '****' || right(nid, 3), '人口' || number, 'person' || number || '@example.tw', "
            "registered, '+8869' || lpad((number %% 100000000)::text, 8, '0'), registered "
            "FROM (SELECT number, registered, 'B' || sex || serial "
            # B is 11: its digits weigh 1 and 9, 10 in all.
            f"        || (10 - (10 + 8 * sex + {weights}) %% 10) %% 10 AS nid "
            "      FROM (SELECT g AS number, 1 + g %% 2 AS sex, lpad((g / 2)::text, 7, '0') AS serial, "
            # Spread over the two years, the later numbers the newer (as ids grow with time).
            "                   %(now)s - %(past)s * (1 - g::float8 / %(total)s::int) AS registered "
            "            FROM generate_series(%(first)s::int, %(last)s::int) AS g) AS n) AS people "
            "ORDER BY number",
            {"outer": outer, "inner": inner, "now": self.now, "past": _PAST, "total": self.total,
             "first": self.loaded, "last": self.loaded + count - 1})
        got = cursor.execute("SELECT national_id_hash, national_id_masked FROM accounts WHERE id > %s ORDER BY id "
                             "LIMIT 1", (after,)).fetchone()
        nid = national_id(self.loaded)
        if got != (self.national_id_hash(nid), mask(nid)):
            raise RuntimeError(f"the loaded national ID hash is not the app's: {got} for {nid}")

    def _derived(self, cursor, after_account: int, after_device: int, after_session: int, after_code: int) -> None:
        """The new accounts' devices, mobile certificates, consents, past sessions, code and token."""
        der = cursor.execute("SELECT der FROM mobile_certificates ORDER BY id LIMIT 1").fetchone()
        if der is None:
            raise RuntimeError("load people after the bench's first person: their certificates copy its DER's size")
        salt = self.salt
        # sha256 of distinct inputs: as unique and as evenly spread over the indexes as random values.
        cursor.execute(
            "INSERT INTO devices (account_id, name, platform, credential_id, public_key, sign_count, aaguid, "
            "attestation_format, attestation_type, transports, backup_eligible, backup_state, bound_at, "
            "last_used_at, status, possibly_cloned) "
            "SELECT a.id, 'iPhone', 'iOS', sha256(convert_to(%(salt)s || 'c' || a.id, 'UTF8')), "
            # An ES256 COSE_Key as a phone sends it (kty 2, alg -7, crv 1, x, y): 77 bytes.
            "'\\xa5010203262001215820'::bytea || sha256(convert_to(%(salt)s || 'x' || a.id, 'UTF8')) "
            "  || '\\x225820'::bytea || sha256(convert_to(%(salt)s || 'y' || a.id, 'UTF8')), "
            "a.id %% 50, '20d2b06a-e7cc-4c4d-9412-da3919f8c6fe', 'packed', 'self', '[\"internal\", \"hybrid\"]', "
            "false, false, a.created_at + interval '5 minutes', a.created_at + interval '6 minutes', 'active', false "
            "FROM accounts a WHERE a.id > %(after)s ORDER BY a.id",
            {"salt": salt, "after": after_account})
        cursor.execute(
            "INSERT INTO mobile_certificates (device_id, serial_hex, not_before, not_after, der, issued_at) "
            "SELECT d.id, left(encode(sha256(convert_to(%(salt)s || 's' || d.id, 'UTF8')), 'hex'), 40), "
            "d.bound_at, d.bound_at + interval '1 year', %(der)s, d.bound_at "
            "FROM devices d WHERE d.id > %(after)s ORDER BY d.id",
            {"salt": salt, "after": after_device, "der": der[0]})
        cursor.execute(
            "INSERT INTO oidc_consents (account_id, client_id, scopes, granted_at) "
            "SELECT a.id, %(client)s, '[\"openid\"]', a.created_at + interval '7 minutes' "
            "FROM accounts a WHERE a.id > %(after)s ORDER BY a.id",
            {"client": self.client_row, "after": after_account})
        # Two past sessions each: the card one of the registration, the phone one of the login.
        cursor.execute(
            "INSERT INTO auth_sessions (token_hash, account_id, method, device_id, created_at, expires_at, ended_at, "
            "ip, user_agent) "
            "SELECT encode(sha256(convert_to(%(salt)s || 't' || s.kind || ':' || d.account_id, 'UTF8')), 'hex'), "
            "d.account_id, s.method, CASE WHEN s.kind = 2 THEN d.id END, d.bound_at + s.since, "
            "d.bound_at + s.since + interval '8 hours', d.bound_at + s.since + interval '20 minutes', "
            "'203.0.113.' || d.account_id %% 250, 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)' "
            "FROM devices d CROSS JOIN (VALUES (1, 'card', interval '-5 minutes'), (2, 'mobile', interval '7 minutes')) "
            "  AS s(kind, method, since) "
            "WHERE d.id > %(after)s ORDER BY d.id, s.kind",
            {"salt": salt, "after": after_device})
        cursor.execute(
            "INSERT INTO oidc_authorization_codes (code_hash, client_id, account_id, auth_session_id, auth_method, "
            "redirect_uri, scope, nonce, code_challenge, code_challenge_method, auth_time, acr, amr, created_at, "
            "expires_at, used_at) "
            "SELECT encode(sha256(convert_to(%(salt)s || 'o' || s.id, 'UTF8')), 'hex'), %(client)s, s.account_id, "
            "s.id, 'mobile', 'https://rp.example/cb', 'openid', md5(s.id::text), "
            "rtrim(translate(encode(sha256(convert_to(%(salt)s || 'p' || s.id, 'UTF8')), 'base64'), '+/', '-_'), '='), "
            "'S256', s.created_at, 'urn:mocert:acr:mobile', '[\"hwk\", \"user\"]', s.created_at, "
            "s.created_at + interval '60 seconds', s.created_at + interval '1 second' "
            "FROM auth_sessions s WHERE s.id > %(after)s AND s.method = 'mobile' ORDER BY s.id",
            {"salt": salt, "client": self.client_row, "after": after_session})
        cursor.execute(
            "INSERT INTO oidc_tokens (client_id, account_id, auth_session_id, auth_method, authorization_code_id, "
            "access_token_hash, scope, issued_at, expires_at) "
            "SELECT c.client_id, c.account_id, c.auth_session_id, 'mobile', c.id, "
            "encode(sha256(convert_to(%(salt)s || 'a' || c.id, 'UTF8')), 'hex'), 'openid', c.used_at, "
            "c.used_at + interval '1 hour' "
            "FROM oidc_authorization_codes c WHERE c.id > %(after)s ORDER BY c.id",
            {"salt": salt, "after": after_code})

    def _audit(self, cursor, after_account: int) -> None:
        """Three events a person each, sealed after the chain's head as ``app/audit_chain.py`` seals them: the
        events copied in, their links copied after them in the same order, their queue entries (made by the
        trigger) cleared and the head moved to the last (in this transaction: the head's row stays locked
        until the commit). A million people's events are more than a server's sealer would seal in the
        minutes a load may take.

        The canonical serialization is written out here rather than through ``event_hash`` (three times
        faster, and these events' contents are plain ASCII); the first event of each load is checked against
        ``event_hash``, so a change of the chain's format stops the load instead of writing a broken chain."""
        from app.audit_chain import _FORMAT, HEAD_ID, event_hash

        rows = cursor.execute(
            "SELECT a.id, a.created_at, d.id, m.serial_hex, s.created_at, s.ip, s.user_agent "
            "FROM accounts a JOIN devices d ON d.account_id = a.id JOIN mobile_certificates m ON m.device_id = d.id "
            "JOIN auth_sessions s ON s.account_id = a.id AND s.method = 'mobile' "
            "WHERE a.id > %s ORDER BY a.id", (after_account,)).fetchall()
        prev_hash, events = cursor.execute(
            "SELECT last_hash, events FROM audit_chain_head WHERE id = %s FOR UPDATE", (HEAD_ID,)).fetchone()
        after_event = cursor.execute("SELECT coalesce(max(id), 0) FROM audit_events").fetchone()[0]
        checked, lines, links = False, [], []
        for account, registered, device, serial, logged_in, ip, user_agent in rows:
            actor = f"account:{account}"
            for occurred_at, tag, at, agent, details in (
                (registered, "account:registered", ip, user_agent,
                 f'{{"card":"{serial}","email":"person{account}@example.tw","phone":"+886900000000"}}'),
                (registered + timedelta(minutes=5), "device:bound", None, None,
                 f'{{"aaguid":"20d2b06a-e7cc-4c4d-9412-da3919f8c6fe","binding":"{serial[:22]}",'
                 f'"certificate":"{serial}","device":{device},"fmt":"packed"}}'),
                (logged_in, "mobile:login:success", ip, user_agent,
                 f'{{"client":"{self.client_id}","device":{device},"login_request":"{serial[-22:]}"}}'),
            ):
                when = occurred_at.astimezone(timezone.utc).isoformat(timespec="microseconds")[:26] + "Z"
                content = (f'["{_FORMAT}","{prev_hash}","{when}","{tag}","{actor}",{account},'
                           f'{_json(at)},{_json(agent)},{details}]')
                hashed = hashlib.sha256(content.encode("ascii")).hexdigest()
                if not checked:
                    expected = event_hash(prev_hash, occurred_at=occurred_at, tag=tag, actor=actor, account_id=account,
                                          ip=at, user_agent=agent, details=json.loads(details))
                    if hashed != expected:
                        raise RuntimeError("the audit chain's serialization is not app/audit_chain.py's any more")
                    checked = True
                lines.append(f"{when}\t{tag}\t{actor}\t{account}\t{at or NULL}\t{agent or NULL}\t{details}\n")
                links.append((prev_hash, hashed))
                prev_hash = hashed
        columns = "occurred_at, tag, actor, account_id, ip, user_agent, details"
        with cursor.copy(f"COPY audit_events ({columns}) FROM STDIN") as copy:
            for start in range(0, len(lines), 5000):
                copy.write("".join(lines[start:start + 5000]))
        ids = [row[0] for row in cursor.execute(
            "SELECT id FROM audit_events WHERE id > %s ORDER BY id", (after_event,)).fetchall()]
        if len(ids) != len(links):
            raise RuntimeError(f"{len(links)} events copied, {len(ids)} found: another writer?")
        with cursor.copy("COPY audit_links (position, event_id, prev_hash, hash, sealed_at) FROM STDIN") as copy:
            for position, (event_id, (before, hashed)) in enumerate(zip(ids, links), start=events + 1):
                copy.write(f"{position}\t{event_id}\t{before}\t{hashed}\tnow\n")
        cursor.execute("DELETE FROM audit_unsealed WHERE event_id > %s", (after_event,))
        cursor.execute("UPDATE audit_chain_head SET last_hash = %s, events = %s WHERE id = %s",
                       (prev_hash, events + len(lines), HEAD_ID))


NULL = "\\N"  # COPY's text format


def _json(text: str | None) -> str:
    """``text`` as canonical JSON, for the plain ASCII values loaded here (no quote, backslash or control)."""
    return "null" if text is None else f'"{text}"'
