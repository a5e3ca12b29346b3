"""Price constraints in the forms shoppers type.

"under 50", "below $50", "less than 20 euro", "max 1k", "50-100", "$50 to $100",
"between 50 and 100", "over 200", "around 30", and the words "cheap" / "premium" (resolved
later against the predicted category's price band). A bare number is never a price
("hp 305 ink"), nor is one followed by a unit ("under 5 kg").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_CUR = r"(?:\$|€|£|usd|euros?|eur|dollars?|bucks|gbp|pounds?|chf|kr|zł|¥|yuan|元|块)"
_NUM = r"(\d{1,7}(?:[.,]\d{1,2})?)(\s*k(?!\w))?"
_UNIT = re.compile(
    r"^\s*(?:gb|tb|mb|mah|mm|cm|m|km|w|kw|kg|g|lbs?|ml|l|hz|mhz|ghz|mp|inch|in|\"|''|"
    r"pages?|pcs|pieces|pack|x|%|v|a|rpm|dpi|ppm|gsm|years?|months?|days?|hours?|h|min)\b",
    re.IGNORECASE,
)
_AMOUNT = rf"(?:{_CUR}\s*)?{_NUM}(?:\s*{_CUR})?"
_UPPER = (
    r"under|below|less\s+than|cheaper\s+than|lower\s+than|up\s+to|max(?:imum)?|at\s+most|"
    r"no\s+more\s+than|not\s+more\s+than|within|<=?|≤|低于|不超过|以下"
)
_LOWER = r"over|above|more\s+than|at\s+least|min(?:imum)?|starting\s+at|from|>=?|≥|高于|以上"
_AROUND = r"around|about|approx(?:imately)?|roughly|~"
_CHEAP = r"cheap(?:est)?|budget|inexpensive|affordable|low[\s-]+cost|bargain|便宜"
_PREMIUM = r"premium|luxury|high[\s-]+end|expensive|top[\s-]+end"

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "between",
        re.compile(rf"(?<!\w)between\s+{_AMOUNT}\s+(?:and|&)\s+{_AMOUNT}", re.IGNORECASE),
    ),
    (
        "range",
        re.compile(rf"(?<![\w.,-]){_AMOUNT}\s*(?:-|–|to)\s*{_AMOUNT}(?![\w-])", re.IGNORECASE),
    ),
    ("lte", re.compile(rf"(?<!\w)(?:{_UPPER})\s*{_AMOUNT}", re.IGNORECASE)),
    ("gte", re.compile(rf"(?<!\w)(?:{_LOWER})\s*{_AMOUNT}", re.IGNORECASE)),
    ("around", re.compile(rf"(?<!\w)(?:{_AROUND})\s*{_AMOUNT}", re.IGNORECASE)),
    (
        "amount",
        re.compile(rf"(?<![\w.,]){_CUR}\s*{_NUM}|(?<![\w.,]){_NUM}\s*{_CUR}", re.IGNORECASE),
    ),
]
_CHEAP_RE = re.compile(rf"(?<!\w)(?:{_CHEAP})(?!\w)", re.IGNORECASE)
_PREMIUM_RE = re.compile(rf"(?<!\w)(?:{_PREMIUM})(?!\w)", re.IGNORECASE)
_CURRENCY_RE = re.compile(_CUR, re.IGNORECASE)


@dataclass
class PriceMatch:
    """A price range (`gte`/`lte`), the character spans it came from, and a band word."""

    range: dict[str, float] = field(default_factory=dict)
    spans: list[tuple[int, int]] = field(default_factory=list)
    band: str | None = None  # "low" ("cheap") or "high" ("premium"), resolved by the predictor

    @property
    def explicit(self) -> bool:
        return bool(self.range)


def _amount(number: str | None, thousands: str | None) -> float | None:
    if number is None:
        return None
    value = float(number.replace(",", "."))
    if thousands and thousands.strip():
        value *= 1000
    return value


def _unit_follows(text: str, end: int) -> bool:
    return bool(_UNIT.match(text[end : end + 8]))


def _has_currency(segment: str) -> bool:
    return bool(_CURRENCY_RE.search(segment))


def parse_price(text: str) -> PriceMatch:
    """The first price constraint in `text` (plus a cheap/premium band word, if any)."""
    result = PriceMatch()
    lowered = text[:512]
    for kind, pattern in _PATTERNS:
        for m in pattern.finditer(lowered):
            if _unit_follows(lowered, m.end()):
                continue
            groups = [g for g in m.groups()]
            if kind in ("between", "range"):
                lo = _amount(groups[0], groups[1])
                hi = _amount(groups[2], groups[3])
                if lo is None or hi is None or lo >= hi:
                    continue
                # "50-100" without a currency is a price only when it cannot be a model
                # number: both sides short plain numbers, the second larger.
                plain = kind == "range" and not _has_currency(m.group(0))
                if plain and ("." in m.group(0) or "," in m.group(0) or not 10 <= hi <= 100_000):
                    continue
                result.range = {"gte": lo, "lte": hi}
            elif kind == "amount":
                value = _amount(groups[0] or groups[2], groups[1] or groups[3])
                if value is None:
                    continue
                result.range = {"gte": round(value * 0.8, 2), "lte": round(value * 1.2, 2)}
            else:
                value = _amount(groups[0], groups[1])
                if value is None:
                    continue
                if kind == "lte":
                    result.range = {"lte": value}
                elif kind == "gte":
                    if m.group(0).lower().startswith("from") and not _has_currency(m.group(0)):
                        continue  # "from 2019" is not a price
                    result.range = {"gte": value}
                else:
                    result.range = {"gte": round(value * 0.8, 2), "lte": round(value * 1.2, 2)}
            result.spans.append((m.start(), m.end()))
            break
        if result.range:
            break
    for band, pattern in (("low", _CHEAP_RE), ("high", _PREMIUM_RE)):
        word = pattern.search(lowered)
        if word:
            result.band = band
            result.spans.append((word.start(), word.end()))
            break
    return result
