"""The marketplace's rules, modelled on 臺灣雲市集: pure Python, no Flask, no database.

A company joins once through its responsible person and receives :data:`SUBSIDY_POINTS` once. A purchase
is paid 1:1 from points and the company's own funds: points cover at most half the price and at most the
balance. A company that already received another digital-transformation subsidy (經濟部、客委會、原民會、
農委會 programmes) gets no points but may still buy, paying in full.
"""

from __future__ import annotations

from dataclasses import dataclass

SUBSIDY_POINTS = 30_000

# 統一編號 checksum: each digit times its weight, the digits of each product summed.
TAX_ID_WEIGHTS = (1, 2, 1, 2, 1, 2, 4, 1)
# The Ministry of Finance's rule since 2023 divides by 5 (it used to be 10): every old number still passes.
TAX_ID_DIVISOR = 5


class InvalidTaxId(ValueError):
    """Not a 統一編號: not eight digits, or the checksum fails."""


class InvalidPrice(ValueError):
    """A price must be a positive whole number of NT dollars."""


def is_valid_tax_id(tax_id: str) -> bool:
    """True when ``tax_id`` is eight ASCII digits passing the public checksum.

    When the 7th digit is 7 its product is 28, whose digits sum to 10, counted either as 1 or as 0:
    the number is valid when either sum is divisible.
    """
    if not (isinstance(tax_id, str) and len(tax_id) == 8 and tax_id.isascii() and tax_id.isdigit()):
        return False
    digits = [int(c) for c in tax_id]
    total = sum(p // 10 + p % 10 for p in (d * w for d, w in zip(digits, TAX_ID_WEIGHTS)))
    if total % TAX_ID_DIVISOR == 0:
        return True
    return digits[6] == 7 and (total + 1) % TAX_ID_DIVISOR == 0


def normalize_tax_id(raw: str) -> str:
    """The tax ID without surrounding spaces; raises :class:`InvalidTaxId` when it is not valid."""
    tax_id = (raw or "").strip()
    if not is_valid_tax_id(tax_id):
        raise InvalidTaxId(tax_id)
    return tax_id


@dataclass(frozen=True)
class Payment:
    """How one purchase is paid: ``points + own_funds == price``."""

    price: int
    points: int
    own_funds: int


@dataclass
class Company:
    """A company at the marketplace. ``subsidy_granted`` records that the one-time points were given."""

    name: str
    tax_id: str
    has_other_subsidy: bool = False
    points: int = 0
    subsidy_granted: bool = False

    def __post_init__(self) -> None:
        self.tax_id = normalize_tax_id(self.tax_id)
        if not self.name.strip():
            raise ValueError("a company needs a name")

    @property
    def eligible(self) -> bool:
        """Whether the company may receive points at all."""
        return not self.has_other_subsidy

    def join(self) -> int:
        """Grant the subsidy points the first time; returns the points granted now (0 after that, or
        when the company already received another subsidy)."""
        if self.subsidy_granted or not self.eligible:
            return 0
        self.subsidy_granted = True
        self.points += SUBSIDY_POINTS
        return SUBSIDY_POINTS

    def quote(self, price: int) -> Payment:
        """The split of ``price`` without paying it."""
        if not isinstance(price, int) or isinstance(price, bool) or price <= 0:
            raise InvalidPrice(price)
        points = 0 if not self.eligible else min(price // 2, self.points)
        return Payment(price=price, points=points, own_funds=price - points)

    def pay(self, price: int) -> Payment:
        """Pay ``price``: points are taken from the balance, the rest is the company's own funds."""
        payment = self.quote(price)
        self.points -= payment.points
        return payment


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    name_en: str
    vendor: str
    price: int  # NT$ a year


PRODUCTS = (
    Product("accounting", "雲端會計系統", "Cloud accounting", "帳務雲股份有限公司", 24_000),
    Product("pos", "雲端 POS 收銀", "Cloud point of sale", "收銀通科技", 36_000),
    Product("payroll", "人資薪資雲", "HR and payroll", "人和資訊", 18_000),
    Product("einvoice", "電子發票加值服務", "E-invoice service", "票票好數位", 9_999),
)


def product(product_id: str) -> Product | None:
    return next((p for p in PRODUCTS if p.id == product_id), None)
