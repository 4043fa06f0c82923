"""The marketplace's data in one SQLite file (``instance/marketplace.db``), through the standard library.

A company belongs to the person (their OIDC ``sub`` at MoCert) who joined it; its 統一編號 joins once.
A purchase takes the points and records the split in one transaction, so two purchases at once cannot
spend the same points twice. A login with 行動自然人憑證 waits here, server-side, while the person answers on
the phone: its poll of MoCert is claimed in one UPDATE (at most one every few seconds, whoever asks) and
its end in one DELETE (one request logs in). Starting such a login is counted here too (``login_attempts``),
so that a limit holds whichever of the app's processes is asked.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .subsidy import Company, Payment, Product

SCHEMA = """
CREATE TABLE IF NOT EXISTS companies (
    tax_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL UNIQUE,          -- issuer + " " + sub of the responsible person
    name TEXT NOT NULL,
    has_other_subsidy INTEGER NOT NULL,
    points INTEGER NOT NULL CHECK (points >= 0),
    subsidy_granted INTEGER NOT NULL,
    joined_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE IF NOT EXISTS purchases (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tax_id TEXT NOT NULL REFERENCES companies (tax_id),
    product TEXT NOT NULL,
    price INTEGER NOT NULL,
    points INTEGER NOT NULL,
    own_funds INTEGER NOT NULL,
    bought_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE IF NOT EXISTS mobile_logins (
    id TEXT PRIMARY KEY,                 -- random; the browser's session names it
    transaction_id TEXT NOT NULL UNIQUE,
    sp_ticket TEXT NOT NULL,
    op_mode TEXT NOT NULL,               -- I-SCAN or PUSH
    hint TEXT NOT NULL,
    hashed_id_num TEXT NOT NULL,         -- SHA-256 of the national ID the person typed
    national_id_masked TEXT NOT NULL,
    started_at REAL NOT NULL,            -- Unix time
    polled_at REAL                       -- when MoCert was last asked
);
CREATE TABLE IF NOT EXISTS login_attempts (
    key TEXT NOT NULL,                   -- what is limited: "visitor:<address>", "push:<hashed_id_num>"
    expires_at REAL NOT NULL             -- Unix time: from then on the attempt no longer counts
);
CREATE INDEX IF NOT EXISTS login_attempts_key ON login_attempts (key);
CREATE TABLE IF NOT EXISTS ended_sessions (   -- what MoCert's back-channel logout tokens ended
    issuer TEXT NOT NULL,
    sid TEXT,                            -- the MoCert session, as this client knows it
    sub TEXT,                            -- or the person (every session of theirs begun before ended_at)
    ended_at REAL NOT NULL               -- Unix time
);
CREATE INDEX IF NOT EXISTS ended_sessions_sid ON ended_sessions (issuer, sid);
CREATE INDEX IF NOT EXISTS ended_sessions_sub ON ended_sessions (issuer, sub);
CREATE TABLE IF NOT EXISTS logout_token_ids (
    jti TEXT PRIMARY KEY,                -- a logout token is taken once
    expires_at REAL NOT NULL
);
"""


class TaxIdTaken(Exception):
    """Another person already joined this company."""


@dataclass(frozen=True)
class MobileLogin:
    """A login with 行動自然人憑證 waiting for the person's phone."""

    id: str
    transaction_id: str
    sp_ticket: str
    op_mode: str
    hint: str
    hashed_id_num: str
    national_id_masked: str
    started_at: float


@dataclass(frozen=True)
class Purchase:
    id: int
    product: str
    payment: Payment
    bought_at: str


class Store:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=10)
        try:
            db.executescript(SCHEMA)
        finally:
            db.close()

    @contextmanager
    def _transaction(self):
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("BEGIN IMMEDIATE")  # one writer at a time: balances are read and written together
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    @staticmethod
    def _company(row) -> Company:
        return Company(
            name=row["name"],
            tax_id=row["tax_id"],
            has_other_subsidy=bool(row["has_other_subsidy"]),
            points=row["points"],
            subsidy_granted=bool(row["subsidy_granted"]),
        )

    def company_of(self, owner: str) -> Company | None:
        with self._transaction() as db:
            row = db.execute("SELECT * FROM companies WHERE owner = ?", (owner,)).fetchone()
        return self._company(row) if row else None

    def join(self, owner: str, company: Company) -> Company:
        """Join ``company`` for ``owner`` (granting its points), or return the company they already joined.

        Raises :class:`TaxIdTaken` when someone else joined that tax ID.
        """
        with self._transaction() as db:
            row = db.execute("SELECT * FROM companies WHERE owner = ?", (owner,)).fetchone()
            if row:
                return self._company(row)
            if db.execute("SELECT 1 FROM companies WHERE tax_id = ?", (company.tax_id,)).fetchone():
                raise TaxIdTaken(company.tax_id)
            company.join()
            db.execute(
                "INSERT INTO companies (tax_id, owner, name, has_other_subsidy, points, subsidy_granted)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (company.tax_id, owner, company.name, company.has_other_subsidy, company.points,
                 company.subsidy_granted),
            )
        return company

    def buy(self, owner: str, product: Product) -> Purchase:
        """Pay for ``product`` from the owner's company; raises LookupError when they have not joined."""
        with self._transaction() as db:
            row = db.execute("SELECT * FROM companies WHERE owner = ?", (owner,)).fetchone()
            if row is None:
                raise LookupError(owner)
            company = self._company(row)
            payment = company.pay(product.price)
            db.execute("UPDATE companies SET points = ? WHERE tax_id = ?", (company.points, company.tax_id))
            cursor = db.execute(
                "INSERT INTO purchases (tax_id, product, price, points, own_funds) VALUES (?, ?, ?, ?, ?)",
                (company.tax_id, product.id, payment.price, payment.points, payment.own_funds),
            )
            purchase_id = cursor.lastrowid
            bought_at = db.execute("SELECT bought_at FROM purchases WHERE id = ?", (purchase_id,)).fetchone()[0]
        return Purchase(purchase_id, product.id, payment, bought_at)

    def purchases_of(self, owner: str, purchase_id: int | None = None) -> list[Purchase]:
        """The owner's company's purchases, newest first (or just the one with ``purchase_id``)."""
        query = "SELECT p.* FROM purchases p JOIN companies c ON c.tax_id = p.tax_id WHERE c.owner = ?"
        params: tuple = (owner,)
        if purchase_id is not None:
            query, params = query + " AND p.id = ?", (owner, purchase_id)
        with self._transaction() as db:
            rows = db.execute(query + " ORDER BY p.id DESC", params).fetchall()
        return [Purchase(r["id"], r["product"], Payment(r["price"], r["points"], r["own_funds"]), r["bought_at"])
                for r in rows]

    # -- logins with 行動自然人憑證 ---------------------------------------------------------------------

    def start_mobile_login(self, login: MobileLogin, *, older_than: float) -> None:
        """Keep ``login``, and forget those started before ``older_than`` (their tickets have expired)."""
        with self._transaction() as db:
            db.execute("DELETE FROM mobile_logins WHERE started_at < ?", (older_than,))
            db.execute(
                "INSERT INTO mobile_logins (id, transaction_id, sp_ticket, op_mode, hint, hashed_id_num,"
                " national_id_masked, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (login.id, login.transaction_id, login.sp_ticket, login.op_mode, login.hint, login.hashed_id_num,
                 login.national_id_masked, login.started_at),
            )

    def mobile_login(self, login_id: str) -> MobileLogin | None:
        with self._transaction() as db:
            row = db.execute("SELECT * FROM mobile_logins WHERE id = ?", (login_id,)).fetchone()
        if row is None:
            return None
        return MobileLogin(**{name: row[name] for name in MobileLogin.__dataclass_fields__})

    def claim_poll(self, login_id: str, *, now: float, interval: float) -> bool:
        """Whether this caller may ask MoCert now: true for one caller at most every ``interval`` seconds."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE mobile_logins SET polled_at = ? WHERE id = ? AND (polled_at IS NULL OR polled_at <= ?)",
                (now, login_id, now - interval),
            )
        return cursor.rowcount == 1

    def end_mobile_login(self, login_id: str) -> bool:
        """Forget the login; true for the one caller that did (the one that may log the person in)."""
        with self._transaction() as db:
            cursor = db.execute("DELETE FROM mobile_logins WHERE id = ?", (login_id,))
        return cursor.rowcount == 1

    def end_oidc_session(self, *, issuer: str, sid: str | None, sub: str | None, jti: str, expires_at: float,
                         now: float) -> bool:
        """What a back-channel logout token asks: the session ``sid`` ends (or, with ``sub`` alone, every session
        of that person begun until now). False, and nothing ended, when the token's ``jti`` was taken before."""
        with self._transaction() as db:
            db.execute("DELETE FROM logout_token_ids WHERE expires_at < ?", (now,))
            try:
                db.execute("INSERT INTO logout_token_ids (jti, expires_at) VALUES (?, ?)", (jti, expires_at))
            except sqlite3.IntegrityError:
                return False
            db.execute("INSERT INTO ended_sessions (issuer, sid, sub, ended_at) VALUES (?, ?, ?, ?)",
                       (issuer, sid, None if sid else sub, now))
        return True

    def oidc_session_ended(self, *, issuer: str, sid: str | None, sub: str, logged_in_at: float) -> bool:
        """Whether a back-channel logout ended this login: its ``sid``, or its person after it began."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT 1 FROM ended_sessions WHERE issuer = ? AND ((sid IS NOT NULL AND sid = ?)"
                " OR (sid IS NULL AND sub = ? AND ended_at >= ?)) LIMIT 1",
                (issuer, sid, sub, logged_in_at),
            ).fetchone()
        return row is not None

    def count_attempt(self, limits: list[tuple[str, int, float]], *, now: float) -> str | None:
        """Count one attempt under each ``(key, limit, window)``, all or none. None when every key had fewer
        than ``limit`` attempts in the last ``window`` seconds (now counted); else the first key that had
        them all, and nothing is counted: a refused attempt does not lengthen the wait."""
        with self._transaction() as db:
            db.execute("DELETE FROM login_attempts WHERE expires_at <= ?", (now,))
            for key, limit, _ in limits:
                (count,) = db.execute("SELECT COUNT(*) FROM login_attempts WHERE key = ?", (key,)).fetchone()
                if count >= limit:
                    return key
            db.executemany("INSERT INTO login_attempts (key, expires_at) VALUES (?, ?)",
                           [(key, now + window) for key, _, window in limits])
        return None
