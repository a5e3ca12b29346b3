"""Read a product catalog (JSONL, CSV, optionally gzipped) into normalised product documents.

A catalog's columns are mapped to *roles* (`id`, `title`, `description`, `brand`, `category`,
`price`, `image`); every other column is kept as-is in `_source`. Bad rows are reported with
their line number and skipped, never loaded half-way.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from shoprank.errors import CatalogError

ROLES = ("id", "title", "description", "brand", "category", "price", "image")
CATEGORY_SEPARATOR = " > "


@dataclass(frozen=True)
class FieldRoles:
    """Which catalog column plays which role; roles not named use their own name."""

    columns: dict[str, str] = field(default_factory=dict)

    def column(self, role: str) -> str:
        return self.columns.get(role, role)

    @classmethod
    def parse(cls, spec: str | None) -> FieldRoles:
        """Parse `id=sku,title=name,brand=supplier` (the CLI's `--fields`)."""
        columns: dict[str, str] = {}
        for part in (spec or "").split(","):
            part = part.strip()
            if not part:
                continue
            role, sep, column = part.partition("=")
            role, column = role.strip(), column.strip()
            if not sep or not column:
                raise CatalogError(
                    f"bad --fields entry {part!r}: expected role=column, e.g. brand=supplier"
                )
            if role not in ROLES:
                raise CatalogError(
                    f"unknown role {role!r} in --fields; roles are: {', '.join(ROLES)}"
                )
            columns[role] = column
        return cls(columns)


@dataclass
class RowError:
    line: int
    reason: str


@dataclass
class CatalogReport:
    """What happened to each row: how many were read, kept, skipped and why."""

    rows: int = 0
    products: int = 0
    errors: list[RowError] = field(default_factory=list)
    duplicates: int = 0

    def summary(self) -> str:
        text = f"{self.products} products from {self.rows} rows"
        if self.errors:
            text += f", {len(self.errors)} rows skipped"
        if self.duplicates:
            text += f", {self.duplicates} duplicate ids (last row wins)"
        return text


def _open_text(path: Path) -> io.TextIOBase:
    # utf-8-sig: spreadsheet exports often start with a byte-order mark.
    if path.suffix.lower() == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115


def _catalog_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    ext = suffixes[-1] if suffixes else ""
    if ext in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if ext in (".csv", ".tsv"):
        return ext[1:]
    raise CatalogError(
        f"cannot tell the format of {str(path)!r}: use a .jsonl, .ndjson, .csv or .tsv file "
        "(optionally .gz)"
    )


def iter_rows(path: Path, report: CatalogReport) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, raw row); malformed lines are recorded in `report` and skipped."""
    if not path.is_file():
        raise CatalogError(f"catalog file not found: {str(path)!r}")
    fmt = _catalog_format(path)
    with _open_text(path) as fh:
        if fmt == "jsonl":
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                report.rows += 1
                try:
                    row = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    report.errors.append(RowError(lineno, f"malformed JSON: {exc}"))
                    continue
                if not isinstance(row, dict):
                    report.errors.append(RowError(lineno, "a line must be a JSON object"))
                    continue
                yield lineno, row
        else:
            reader = csv.DictReader(fh, delimiter="\t" if fmt == "tsv" else ",")
            for row in reader:
                report.rows += 1
                lineno = reader.line_num
                if None in row:
                    report.errors.append(RowError(lineno, "more values than header columns"))
                    continue
                yield lineno, {k: v for k, v in row.items() if v not in (None, "")}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        value = " ".join(str(v) for v in value if v is not None)
    text = str(value).strip()
    return text or None


def parse_price(value: Any, multiplier: float) -> float | None:
    """A price as float in display units; None when absent; ValueError when unparseable."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"unparseable price {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    else:
        cleaned = str(value).strip()
        for symbol in ("€", "$", "£", "EUR", "USD", "GBP", " ", "\u00a0"):
            cleaned = cleaned.replace(symbol, "")
        cleaned = _normalise_separators(cleaned)
        try:
            number = float(cleaned)
        except ValueError:
            raise ValueError(f"unparseable price {value!r}") from None
    if math.isnan(number) or math.isinf(number) or number < 0:
        raise ValueError(f"unparseable price {value!r}")
    return round(number * multiplier, 6)


def _normalise_separators(text: str) -> str:
    """`1,299.00` and `1.299,00` → `1299.00`; `12,50` → `12.50`; `1,299` → `1299`."""
    if "," in text and "." in text:
        if text.rfind(",") > text.rfind("."):
            return text.replace(".", "").replace(",", ".")
        return text.replace(",", "")
    if "," in text:
        if _THOUSANDS_COMMA.match(text):
            return text.replace(",", "")
        return text.replace(",", ".")
    if _THOUSANDS_DOT.match(text):
        return text.replace(".", "")
    return text


_THOUSANDS_COMMA = re.compile(r"^\d{1,3}(,\d{3})+$")
_THOUSANDS_DOT = re.compile(r"^\d{1,3}(\.\d{3}){2,}$")


def parse_category(value: Any) -> list[str]:
    """Category levels from `A > B > C`, `A/B/C` is *not* split (slashes occur in names)."""
    if value is None:
        return []
    if isinstance(value, list):
        levels = [str(v).strip() for v in value if v is not None and str(v).strip()]
    else:
        levels = [p.strip() for p in str(value).split(">") if p.strip()]
    return levels


def normalise_row(
    row: dict[str, Any], *, roles: FieldRoles, price_multiplier: float = 1.0
) -> dict[str, Any]:
    """Turn one raw row into a product document; raises ValueError saying what is wrong."""
    used = {roles.column(r) for r in ROLES}
    doc: dict[str, Any] = {}
    pid = row.get(roles.column("id"))
    if pid is None or str(pid).strip() == "":
        raise ValueError(f"missing id (column {roles.column('id')!r})")
    if isinstance(pid, dict | list):
        raise ValueError(f"id must be a string or number, got {type(pid).__name__}")
    doc["id"] = str(pid).strip()
    title = _text(row.get(roles.column("title")))
    if title is None:
        raise ValueError(f"missing title (column {roles.column('title')!r})")
    doc["title"] = title
    for role in ("description", "brand", "image"):
        value = _text(row.get(roles.column(role)))
        if value is not None:
            doc[role] = value
    levels = parse_category(row.get(roles.column("category")))
    if levels:
        doc["category"] = CATEGORY_SEPARATOR.join(levels)
        doc["category_levels"] = [
            CATEGORY_SEPARATOR.join(levels[: i + 1]) for i in range(len(levels))
        ]
    price = parse_price(row.get(roles.column("price")), price_multiplier)
    if price is not None:
        doc["price"] = price
    for key, value in row.items():
        if key in used or key in doc or key.startswith("_") or value is None:
            continue
        doc[key] = value
    return doc


def read_catalog(
    path: Path,
    *,
    roles: FieldRoles | None = None,
    price_multiplier: float = 1.0,
    report: CatalogReport | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield normalised products from a catalog file, recording bad rows in `report`."""
    roles = roles or FieldRoles()
    report = report if report is not None else CatalogReport()
    for lineno, row in iter_rows(path, report):
        try:
            doc = normalise_row(row, roles=roles, price_multiplier=price_multiplier)
        except ValueError as exc:
            report.errors.append(RowError(lineno, str(exc)))
            continue
        report.products += 1
        yield doc


def embedding_text(doc: dict[str, Any]) -> str:
    """The text a product's text vector is computed from."""
    parts = [doc.get("title"), doc.get("brand"), doc.get("category"), doc.get("description")]
    return ". ".join(str(p) for p in parts if p)
