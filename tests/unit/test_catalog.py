"""Catalog reading: formats, field roles, normalisation, bad rows with their line numbers."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from shoprank.errors import CatalogError
from shoprank.indexing.catalog import (
    CatalogReport,
    FieldRoles,
    embedding_text,
    normalise_row,
    parse_category,
    parse_price,
    read_catalog,
)

# -- helpers -------------------------------------------------------------------------------


def _jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _csv(path: Path, header: list[str], rows: list[list[str]], *, delimiter: str = ",") -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _read(path: Path, **kwargs: Any) -> tuple[list[dict[str, Any]], CatalogReport]:
    report = CatalogReport()
    docs = list(read_catalog(path, report=report, **kwargs))
    return docs, report


ROWS = [
    {"id": "p1", "title": "Trail running shoes", "brand": "Acme", "price": 59.9},
    {"id": "p2", "title": "Espresso machine", "brand": "Brewmaster", "price": 249},
]


# -- formats -------------------------------------------------------------------------------


def test_jsonl_rows_become_products(tmp_path: Path) -> None:
    docs, report = _read(_jsonl(tmp_path / "c.jsonl", ROWS))
    assert docs == [
        {"id": "p1", "title": "Trail running shoes", "brand": "Acme", "price": 59.9},
        {"id": "p2", "title": "Espresso machine", "brand": "Brewmaster", "price": 249.0},
    ]
    assert (report.rows, report.products, report.errors) == (2, 2, [])
    assert report.summary() == "2 products from 2 rows"


def test_jsonl_gz_reads_like_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for row in ROWS:
            fh.write(json.dumps(row) + "\n")
    docs, report = _read(path)
    assert [d["id"] for d in docs] == ["p1", "p2"]
    assert docs[1]["price"] == 249.0
    assert report.products == 2


def test_ndjson_extension_is_jsonl(tmp_path: Path) -> None:
    docs, _ = _read(_jsonl(tmp_path / "c.ndjson", ROWS))
    assert [d["id"] for d in docs] == ["p1", "p2"]


def test_csv_rows_are_strings_and_empty_cells_are_absent(tmp_path: Path) -> None:
    path = _csv(
        tmp_path / "c.csv",
        ["id", "title", "brand", "price", "colour"],
        [
            ["p1", "Trail running shoes", "Acme", "59.90", "red"],
            ["p2", "Espresso machine", "", "249", ""],
        ],
    )
    docs, report = _read(path)
    assert docs == [
        {
            "id": "p1",
            "title": "Trail running shoes",
            "brand": "Acme",
            "price": 59.9,
            "colour": "red",
        },
        {"id": "p2", "title": "Espresso machine", "price": 249.0},
    ]
    assert report.rows == 2 and not report.errors


def test_tsv(tmp_path: Path) -> None:
    path = _csv(tmp_path / "c.tsv", ["id", "title"], [["p1", "A, with comma"]], delimiter="\t")
    docs, _ = _read(path)
    assert docs == [{"id": "p1", "title": "A, with comma"}]


def test_csv_gz(tmp_path: Path) -> None:
    plain = _csv(tmp_path / "plain.csv", ["id", "title"], [["p1", "Mug"]])
    path = tmp_path / "c.csv.gz"
    path.write_bytes(gzip.compress(plain.read_bytes()))
    docs, _ = _read(path)
    assert docs == [{"id": "p1", "title": "Mug"}]


@pytest.mark.parametrize("name", ["catalog.xml", "catalog.parquet", "catalog", "catalog.gz"])
def test_unknown_extension_is_a_catalog_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text('{"id": "p1", "title": "x"}\n', encoding="utf-8")
    with pytest.raises(CatalogError, match="cannot tell the format"):
        _read(path)


def test_missing_file_is_a_catalog_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="not found"):
        _read(tmp_path / "nope.jsonl")


def test_catalog_error_is_a_400() -> None:
    assert CatalogError("x").status == 400


def test_upper_case_gz_extension(tmp_path: Path) -> None:
    path = tmp_path / "CATALOG.JSONL.GZ"
    path.write_bytes(gzip.compress(b'{"id": "p1", "title": "Mug"}\n'))
    docs, _ = _read(path)
    assert docs == [{"id": "p1", "title": "Mug"}]


def test_csv_with_utf8_bom(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffid,title\r\np1,Mug\r\n".encode())
    docs, report = _read(path)
    assert report.errors == []
    assert docs == [{"id": "p1", "title": "Mug"}]


# -- field roles ---------------------------------------------------------------------------


def test_fields_mapping_and_unmapped_roles_use_their_own_names(tmp_path: Path) -> None:
    roles = FieldRoles.parse("id=sku,title=name,brand=supplier")
    row = {
        "sku": "A-1",
        "name": "Desk lamp",
        "supplier": "Lumo",
        "price": "19.99",
        "description": "LED, dimmable",
        "category": "Home > Lighting",
        "image": "a.jpg",
    }
    docs, _ = _read(_jsonl(tmp_path / "c.jsonl", [row]), roles=roles)
    assert docs == [
        {
            "id": "A-1",
            "title": "Desk lamp",
            "brand": "Lumo",
            "price": 19.99,
            "description": "LED, dimmable",
            "category": "Home > Lighting",
            "category_levels": ["Home", "Home > Lighting"],
            "image": "a.jpg",
        }
    ]
    # The mapped source columns are consumed, not copied as extra fields.
    assert not {"sku", "name", "supplier"} & set(docs[0])


def test_fields_parse_tolerates_spaces_and_empty_entries() -> None:
    roles = FieldRoles.parse(" id = sku , ,brand=supplier,")
    assert roles.columns == {"id": "sku", "brand": "supplier"}
    assert roles.column("id") == "sku"
    assert roles.column("title") == "title"
    assert FieldRoles.parse(None).columns == {}
    assert FieldRoles.parse("").columns == {}


def test_fields_mapped_role_column_missing_means_role_missing() -> None:
    roles = FieldRoles.parse("id=sku")
    with pytest.raises(ValueError, match="missing id.*'sku'"):
        normalise_row({"id": "p1", "title": "x"}, roles=roles)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("title", r"bad --fields entry 'title'.*role=column"),
        ("id=", r"bad --fields entry 'id='"),
        ("id=sku,brand", r"bad --fields entry 'brand'"),
        ("colour=color", r"unknown role 'colour'.*roles are: id, title, description"),
        ("=sku", r"unknown role ''"),
        ("Title=name", r"unknown role 'Title'"),
    ],
)
def test_bad_fields_specs_are_rejected_clearly(spec: str, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        FieldRoles.parse(spec)


# -- normalisation -------------------------------------------------------------------------


def test_category_path_string_gives_category_and_levels() -> None:
    doc = normalise_row(
        {"id": "1", "title": "t", "category": "Electronics > Audio > Headphones"},
        roles=FieldRoles(),
    )
    assert doc["category"] == "Electronics > Audio > Headphones"
    assert doc["category_levels"] == [
        "Electronics",
        "Electronics > Audio",
        "Electronics > Audio > Headphones",
    ]


def test_category_list_and_untidy_separators() -> None:
    as_list = normalise_row(
        {"id": "1", "title": "t", "category": [" Electronics ", "Audio", "", "Headphones"]},
        roles=FieldRoles(),
    )
    untidy = normalise_row(
        {"id": "1", "title": "t", "category": "Electronics>Audio >  Headphones"}, roles=FieldRoles()
    )
    for doc in (as_list, untidy):
        assert doc["category"] == "Electronics > Audio > Headphones"
        assert doc["category_levels"] == [
            "Electronics",
            "Electronics > Audio",
            "Electronics > Audio > Headphones",
        ]


def test_category_slashes_are_not_split_and_blank_category_is_absent() -> None:
    assert parse_category("Audio/Video > TV") == ["Audio/Video", "TV"]
    doc = normalise_row({"id": "1", "title": "t", "category": "  "}, roles=FieldRoles())
    assert "category" not in doc and "category_levels" not in doc


def test_category_list_with_null_item() -> None:
    assert parse_category(["Electronics", None, "Audio"]) == ["Electronics", "Audio"]


@pytest.mark.parametrize(
    ("value", "multiplier", "expected"),
    [
        (1250, 0.01, 12.5),  # integer cents -> euros
        ("1999", 0.01, 19.99),
        ("€12,50", 1.0, 12.5),  # decimal comma
        ("1,299.00", 1.0, 1299.0),  # thousands comma
        ("$ 7.25", 1.0, 7.25),
        ("£3", 1.0, 3.0),
        (" 0 ", 1.0, 0.0),
        (9.99, 1.0, 9.99),
    ],
)
def test_parse_price(value: Any, multiplier: float, expected: float) -> None:
    assert parse_price(value, multiplier) == pytest.approx(expected)


@pytest.mark.parametrize("value", [None, ""])
def test_absent_price_is_none(value: Any) -> None:
    assert parse_price(value, 1.0) is None


@pytest.mark.parametrize("value", ["twelve", "-3", -1, True, "nan", "inf", "1.2.3"])
def test_unparseable_price_raises(value: Any) -> None:
    with pytest.raises(ValueError, match="unparseable price"):
        parse_price(value, 1.0)


def test_european_thousands_price_is_not_silently_wrong() -> None:
    assert parse_price("1.299,00", 1.0) == pytest.approx(1299.0)


def test_price_multiplier_applies_to_catalog(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "c.jsonl",
        [{"id": "1", "title": "t", "price": 4599}, {"id": "2", "title": "u", "price": "100"}],
    )
    docs, _ = _read(path, price_multiplier=0.01)
    assert [d["price"] for d in docs] == [pytest.approx(45.99), pytest.approx(1.0)]


def test_extra_columns_kept_underscore_columns_dropped() -> None:
    doc = normalise_row(
        {
            "id": 42,
            "title": ["Red", "mug"],
            "colour": "red",
            "attrs": {"size": "M"},
            "tags": ["a", "b"],
            "_internal": "x",
            "stock": None,
        },
        roles=FieldRoles(),
    )
    assert doc == {
        "id": "42",
        "title": "Red mug",
        "colour": "red",
        "attrs": {"size": "M"},
        "tags": ["a", "b"],
    }


def test_text_roles_are_stripped_and_blank_optional_roles_absent() -> None:
    doc = normalise_row(
        {"id": " p1 ", "title": "  Mug ", "brand": "   ", "description": None}, roles=FieldRoles()
    )
    assert doc == {"id": "p1", "title": "Mug"}


def test_id_must_be_scalar() -> None:
    with pytest.raises(ValueError, match="id must be a string or number"):
        normalise_row({"id": {"a": 1}, "title": "t"}, roles=FieldRoles())


def test_embedding_text_joins_present_parts() -> None:
    doc = {
        "id": "1",
        "title": "Mug",
        "brand": "Acme",
        "category": "Home > Kitchen",
        "description": "Stoneware",
        "colour": "red",
    }
    assert embedding_text(doc) == "Mug. Acme. Home > Kitchen. Stoneware"
    assert embedding_text({"id": "2", "title": "Cup"}) == "Cup"


# -- bad rows ------------------------------------------------------------------------------


def test_bad_jsonl_rows_are_reported_with_line_numbers_and_skipped(tmp_path: Path) -> None:
    lines = [
        '{"id": "ok1", "title": "Good one", "price": 10}',  # 1
        '{"title": "No id"}',  # 2
        "",  # 3 blank: not a row
        '{"id": "x3", "price": 5}',  # 4 no title
        '{"id": "x4", "title": "Bad price", "price": "cheap"}',  # 5
        '{"id": "x5", "title": "broken"',  # 6 malformed JSON
        '["not", "an", "object"]',  # 7
        '{"id": "", "title": "Empty id"}',  # 8
        '{"id": "ok2", "title": "Good two"}',  # 9
    ]
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    docs, report = _read(path)
    assert [d["id"] for d in docs] == ["ok1", "ok2"]
    assert report.rows == 8
    assert report.products == 2
    got = [(e.line, e.reason) for e in report.errors]
    assert [line for line, _ in got] == [2, 4, 5, 6, 7, 8]
    reasons = dict(got)
    assert reasons[2].startswith("missing id")
    assert reasons[4].startswith("missing title")
    assert "unparseable price 'cheap'" in reasons[5]
    assert reasons[6].startswith("malformed JSON")
    assert reasons[7] == "a line must be a JSON object"
    assert reasons[8].startswith("missing id")
    assert report.summary() == "2 products from 8 rows, 6 rows skipped"


def test_bad_csv_rows_are_reported_with_file_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(
        "id,title,price\n"  # 1 header
        "p1,Good,1.50\n"  # 2
        ",No id,2\n"  # 3
        "p3,,3\n"  # 4
        "p4,Bad price,abc\n"  # 5
        "p5,Too,many,values\n"  # 6
        'p6,"Multi\nline title",7\n'  # 7-8
        "p7,Last,€8,00\n"  # 9 unquoted comma -> too many values
        'p8,Last,"€8,00"\n',  # 10
        encoding="utf-8",
    )
    docs, report = _read(path)
    assert [(d["id"], d.get("price")) for d in docs] == [
        ("p1", 1.5),
        ("p6", 7.0),
        ("p8", 8.0),
    ]
    assert docs[1]["title"] == "Multi\nline title"
    assert [e.line for e in report.errors] == [3, 4, 5, 6, 9]
    assert report.rows == 8
    assert "more values than header columns" in report.errors[3].reason


def test_catalog_of_only_bad_rows_yields_nothing(tmp_path: Path) -> None:
    docs, report = _read(_jsonl(tmp_path / "c.jsonl", [{"title": "a"}, {"id": "b"}]))
    assert docs == []
    assert report.products == 0 and len(report.errors) == 2
