"""The marketplace's data in one SQLite file (``instance/marketplace.db``), through the standard library.

A company belongs to the person (their OIDC ``sub`` at MoCert) who joined it; its 統一編號 joins once.
A purchase takes the points and records the split in one transaction, so two purchases at once cannot
spend the same points twice. A login with 行動自然人憑證 waits here, server-side, while the person answers on
the phone: its poll of MoCert is claimed in one UPDATE (at most one every few seconds, whoever asks) and
its end in one DELETE (one request logs in).
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
