"""Seeded, self-contained demo catalog for ``shoprank demo``.

The catalog is generated from the tables below with ``random.Random(seed)`` only, so the
same ``(n, seed)`` always yields byte-identical output and no external data is needed.
Products have realistic titles (brand, model line, key spec, leaf noun, colour), varied
descriptions, per-category price bands, skewed popularity and category attributes.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

__all__ = [
    "CATEGORY_PATHS",
    "REFERENCE_DATE",
    "generate_demo_catalog",
    "write_demo_catalog",
]

#: Fixed "today" for release dates, so output never depends on the wall clock.
REFERENCE_DATE = date(2025, 6, 30)
_RELEASE_WINDOW_DAYS = 4 * 365

_Spec = tuple[str, dict[str, Any], float]
"""Title fragment, category attributes, price multiplier."""


# --------------------------------------------------------------------------- helpers


def _cap(gb: int) -> str:
    """Human storage label: 512 -> '512GB', 1024 -> '1TB', 2000 -> '2TB'."""
    if gb < 1000:
        return f"{gb}GB"
    return f"{gb / (1024 if gb % 1024 == 0 else 1000):g}TB"


def _inches(rng: random.Random, size: float) -> str:
    return f'{size:g}"' if rng.random() < 0.5 else f"{size:g}-inch"


def _article(word: str) -> str:
    first = word[:1].lower()
    if first in "aeio" or word.lower().startswith(("un", "ul", "um")):
        return "an"
    return "a"


def _lower_noun(noun: str) -> str:
    """Lower-case a noun phrase but keep acronyms and codes ('Smart TV' -> 'smart TV')."""
    words = []
    for w in noun.split():
        parts = [p for p in w.split("-") if len(p) > 1]
        keep = any(p.isupper() for p in parts) or any(c.isdigit() for c in w)
        words.append(w if keep else w.lower())
    return " ".join(words)


def _noun_phrase(noun: str) -> str:
    """Singular-looking phrase for descriptions: 'Running Shoes' -> 'pair of running shoes'."""
    lowered = _lower_noun(noun)
    return f"pair of {lowered}" if noun.endswith("s") else lowered


def _gender(rng: random.Random) -> str:
    return rng.choices(("Men's", "Women's", "Unisex"), weights=(45, 45, 10))[0]


# --------------------------------------------------------------------- spec builders


def _laptop(rng: random.Random) -> _Spec:
    screen = rng.choice((13.3, 14.0, 14.0, 15.6, 16.0, 17.3))
    ram = rng.choice((8, 16, 16, 32))
    storage = rng.choice((256, 512, 512, 1024, 2048))
    spec = f"{_inches(rng, screen)} {ram}GB RAM {_cap(storage)} SSD"
    mult = 0.7 + ram / 32 + storage / 4096
    return spec, {"screen_inches": screen, "ram_gb": ram, "capacity_gb": storage}, mult


def _monitor(rng: random.Random) -> _Spec:
    screen = rng.choice((24, 24, 27, 27, 32, 34))
    res = rng.choice(("Full HD", "QHD", "4K UHD"))
    hz = rng.choice((60, 75, 144, 165))
    mult = screen / 27 * {"Full HD": 0.75, "QHD": 1.0, "4K UHD": 1.4}[res]
    mult *= 1.15 if hz >= 144 else 1.0
    attrs = {"screen_inches": float(screen), "resolution": res, "refresh_hz": hz}
    return f"{_inches(rng, screen)} {res} {hz}Hz", attrs, mult


def _tv(rng: random.Random) -> _Spec:
    screen = rng.choice((43, 50, 55, 55, 65, 65, 75, 85))
    panel = rng.choice(("LED", "LED", "QLED", "OLED"))
    mult = (screen / 55) ** 1.6 * {"LED": 0.75, "QLED": 1.0, "OLED": 1.7}[panel]
    attrs = {"screen_inches": float(screen), "resolution": "4K UHD", "panel": panel}
    return f"{_inches(rng, screen)} 4K {panel}", attrs, mult


def _drive(rng: random.Random) -> _Spec:
    cap = rng.choice((500, 1000, 1000, 2000, 4000, 5000))
    kind = rng.choice(("SSD", "SSD", "HDD"))
    mult = (cap / 1000) ** 0.6 * (1.5 if kind == "SSD" else 0.7)
    attrs = {"capacity_gb": cap, "drive_type": kind, "interface": "USB-C 3.2"}
    return f"{_cap(cap)} USB-C {kind}", attrs, mult


def _phone(rng: random.Random) -> _Spec:
    storage = rng.choice((128, 128, 256, 256, 512))
    screen = rng.choice((6.1, 6.1, 6.4, 6.7))
    mult = 0.75 + storage / 512 * 0.6
    return f"{_cap(storage)} 5G", {"capacity_gb": storage, "screen_inches": screen}, mult


def _phone_case(rng: random.Random) -> _Spec:
    style = rng.choice(("Slim", "Rugged", "Wallet", "MagSafe-Compatible", "Clear"))
    model = rng.choice(("Orbis 15", "Orbis 15 Pro", "Nexa S24", "Kovo P8", "Zentrix Z5"))
    mult = {"Wallet": 1.4, "Rugged": 1.3}.get(style, 1.0)
    return f"{style} for {model}", {"style": style, "compatible_with": model}, mult


def _cable(rng: random.Random) -> _Spec:
    conn = rng.choice(("USB-C to USB-C", "USB-A to USB-C", "USB-C to Lightning", "Micro-USB"))
    length = rng.choice((0.5, 1.0, 1.0, 1.5, 2.0, 3.0))
    braided = rng.random() < 0.4
    mult = (0.8 + length * 0.2) * (1.3 if braided else 1.0)
    spec = f"{conn} {length:g} m" + (" Braided" if braided else "")
    return spec, {"connector": conn, "length_m": length, "braided": braided}, mult


def _toner(rng: random.Random) -> _Spec:
    pages = rng.choice((1500, 2500, 3000, 6000))
    pack = rng.choice((1, 1, 1, 2, 4))
    spec = "High-Yield" if pages >= 3000 else "Standard-Yield"
    if pack > 1:
        spec += f" {pack}-Pack"
    mult = (pages / 2500) ** 0.6 * pack * (0.85 if pack > 1 else 1.0)
    return spec, {"page_yield": pages, "pack_size": pack}, mult


def _headphones(rng: random.Random) -> _Spec:
    style = rng.choice(("Wireless Noise-Cancelling", "Wireless", "Wired Studio", "Gaming"))
    wireless = style.startswith("Wireless")
    attrs: dict[str, Any] = {"wireless": wireless, "noise_cancelling": "Noise" in style}
    if wireless:
        attrs["battery_hours"] = rng.choice((20, 30, 40, 60))
    mult = {"Wireless Noise-Cancelling": 1.6, "Wireless": 1.0, "Wired Studio": 0.8}.get(style, 0.9)
    return style, attrs, mult


def _earbuds(rng: random.Random) -> _Spec:
    style = rng.choice(("True Wireless", "Noise-Cancelling", "Sport", "Open-Ear"))
    attrs = {
        "wireless": True,
        "noise_cancelling": style == "Noise-Cancelling",
        "battery_hours": rng.choice((6, 8, 10, 24, 30)),
    }
    return style, attrs, 1.5 if style == "Noise-Cancelling" else 1.0


def _espresso(rng: random.Random) -> _Spec:
    bar = rng.choice((15, 15, 19, 20))
    kind = rng.choice(("Manual", "Manual", "Bean-to-Cup", "Capsule"))
    mult = {"Manual": 1.0, "Bean-to-Cup": 2.0, "Capsule": 0.45}[kind]
    return f"{bar}-Bar {kind}", {"pressure_bar": bar, "machine_type": kind}, mult


def _grinder(rng: random.Random) -> _Spec:
    burr = rng.choice(("Conical Burr", "Flat Burr", "Blade"))
    settings = rng.choice((15, 18, 30, 40, 60))
    mult = {"Conical Burr": 1.0, "Flat Burr": 1.6, "Blade": 0.35}[burr]
    return burr, {"grinder_type": burr, "grind_settings": settings}, mult


def _pan(rng: random.Random) -> _Spec:
    diameter = rng.choice((20, 24, 26, 28, 28, 30, 32))
    coating = rng.choice(("Non-Stick", "Non-Stick", "Cast Iron", "Stainless Steel", "Ceramic"))
    material = {
        "Non-Stick": "hard-anodised aluminium",
        "Cast Iron": "cast iron",
        "Stainless Steel": "tri-ply stainless steel",
        "Ceramic": "ceramic-coated aluminium",
    }[coating]
    attrs = {"diameter_cm": diameter, "material": material, "induction_compatible": True}
    mult = diameter / 26 * (1.5 if coating in ("Cast Iron", "Stainless Steel") else 1.0)
    return f"{diameter} cm {coating}", attrs, mult


def _kettle(rng: random.Random) -> _Spec:
    litres = rng.choice((1.0, 1.2, 1.5, 1.7, 1.7))
    temp = rng.random() < 0.35
    spec = f"{litres:g} L" + (" Variable Temperature" if temp else "")
    attrs = {
        "capacity_l": litres,
        "wattage": rng.choice((2200, 2400, 3000)),
        "temperature_control": temp,
    }
    return spec, attrs, 1.6 if temp else 1.0


def _office_chair(rng: random.Random) -> _Spec:
    style = rng.choice(("Ergonomic Mesh", "High-Back", "Executive", "Task", "Gaming"))
    attrs = {
        "adjustable_armrests": rng.random() < 0.7,
        "max_load_kg": rng.choice((120, 136, 150)),
    }
    mult = {"Executive": 1.4, "Task": 0.55, "Ergonomic Mesh": 1.2}.get(style, 1.0)
    return style, attrs, mult


def _bookcase(rng: random.Random) -> _Spec:
    shelves = rng.randint(3, 6)
    height = 60 + shelves * 33
    return f"{shelves}-Shelf", {"shelves": shelves, "height_cm": height}, shelves / 4.5


def _duvet(rng: random.Random) -> _Spec:
    size = rng.choice(("Single", "Double", "Double", "King", "Super King"))
    tc = rng.choice((200, 300, 400, 600))
    mult = {"Single": 0.7, "Double": 1.0, "King": 1.2, "Super King": 1.4}[size] * (tc / 300) ** 0.4
    return f"{size} {tc} Thread Count", {"size": size, "thread_count": tc}, mult


def _shoe_size(rng: random.Random, gender: str) -> str:
    lo, hi = {"Men's": (40, 47), "Women's": (36, 42)}.get(gender, (37, 46))
    return f"EU {rng.randint(lo, hi)}"


def _running_shoes(rng: random.Random) -> _Spec:
    gender = _gender(rng)
    terrain = rng.choice(("", "", "Road", "Trail", "Lightweight"))
    spec = f"{gender} {terrain}".strip()
    attrs = {"gender": gender, "size": _shoe_size(rng, gender)}
    return spec, attrs, 1.2 if terrain == "Trail" else 1.0


def _boots(rng: random.Random) -> _Spec:
    gender = _gender(rng)
    waterproof = rng.random() < 0.45
    spec = f"{gender} Waterproof" if waterproof else gender
    attrs = {"gender": gender, "size": _shoe_size(rng, gender), "waterproof": waterproof}
    return spec, attrs, 1.25 if waterproof else 1.0


def _apparel_size(rng: random.Random) -> str:
    return rng.choices(("XS", "S", "M", "L", "XL", "XXL"), weights=(5, 15, 30, 28, 15, 7))[0]


def _tshirt(rng: random.Random) -> _Spec:
    gender = _gender(rng)
    fit = rng.choice(("Regular Fit", "Slim Fit", "Oversized", "Crew Neck"))
    pack = rng.choice((1, 1, 1, 3))
    spec = f"{gender} {fit}" + (" 3-Pack" if pack == 3 else "")
    attrs = {"gender": gender, "size": _apparel_size(rng), "fit": fit, "pack_size": pack}
    return spec, attrs, 2.3 if pack == 3 else 1.0


def _jacket(rng: random.Random) -> _Spec:
    gender = _gender(rng)
    kind = rng.choice(("Waterproof", "Insulated", "Softshell", "Down", "Lightweight"))
    mult = {"Down": 1.6, "Insulated": 1.3, "Lightweight": 0.7}.get(kind, 1.0)
    return f"{gender} {kind}", {"gender": gender, "size": _apparel_size(rng)}, mult


def _jeans(rng: random.Random) -> _Spec:
    gender = _gender(rng)
    fit = rng.choice(("Slim", "Straight", "Skinny", "Relaxed", "Bootcut"))
    waist = rng.randrange(26, 40, 2)
    leg = rng.choice((30, 32, 34))
    attrs = {"gender": gender, "size": f"W{waist} L{leg}", "fit": fit}
    return f"{gender} {fit} Fit", attrs, 1.0


def _backpack(rng: random.Random) -> _Spec:
    litres = rng.choice((15, 20, 25, 25, 30, 35, 40))
    laptop = rng.random() < 0.4
    spec = f"{litres} L" + (" Laptop" if laptop else "")
    attrs = {"capacity_l": litres, "laptop_sleeve": laptop}
    return spec, attrs, (litres / 25) ** 0.5 * (1.15 if laptop else 1.0)


def _tent(rng: random.Random) -> _Spec:
    persons = rng.choices((1, 2, 3, 4, 6), weights=(10, 35, 20, 25, 10))[0]
    season = rng.choice(("3-Season", "3-Season", "4-Season"))
    attrs = {
        "capacity_persons": persons,
        "season": season,
        "weight_kg": round(0.9 + persons * rng.uniform(0.7, 1.3), 1),
    }
    mult = persons**0.6 * (1.6 if season == "4-Season" else 1.0)
    return f"{persons}-Person {season}", attrs, mult


def _sleeping_bag(rng: random.Random) -> _Spec:
    temp = rng.choice((-10, -5, 0, 5, 10))
    fill = rng.choice(("Down", "Synthetic", "Synthetic"))
    mult = (1.7 if fill == "Down" else 1.0) * (1.0 + (10 - temp) / 40)
    return f"{temp}°C {fill}", {"comfort_temp_c": temp, "fill": fill}, mult


def _yoga_mat(rng: random.Random) -> _Spec:
    mm = rng.choice((3, 4, 6, 6, 8, 10))
    return f"{mm} mm Non-Slip", {"thickness_mm": mm, "length_cm": 183}, (mm / 6) ** 0.4


def _moisturiser(rng: random.Random) -> _Spec:
    ml = rng.choice((30, 50, 50, 75, 100))
    spf = rng.choice((0, 0, 15, 30, 50))
    skin = rng.choice(("Dry Skin", "Sensitive Skin", "Oily Skin", "All Skin Types"))
    spec = (f"SPF {spf} " if spf else "") + f"{ml} ml"
    attrs = {"volume_ml": ml, "spf": spf, "skin_type": skin}
    return spec, attrs, (ml / 50) ** 0.7


def _lipstick(rng: random.Random) -> _Spec:
    finish = rng.choice(("Matte", "Satin", "Gloss", "Cream", "Long-Lasting Matte"))
    return finish, {"finish": finish}, 1.0


def _fragrance(rng: random.Random) -> _Spec:
    conc = rng.choice(("Eau de Parfum", "Eau de Parfum", "Eau de Toilette", "Parfum"))
    ml = rng.choice((30, 50, 50, 100))
    mult = (ml / 50) ** 0.7 * {"Eau de Toilette": 0.75, "Parfum": 1.5}.get(conc, 1.0)
    return f"{conc} {ml} ml", {"concentration": conc, "volume_ml": ml}, mult


def _hair_dryer(rng: random.Random) -> _Spec:
    watts = rng.choice((1800, 2000, 2200, 2400))
    ionic = rng.random() < 0.5
    spec = f"{watts} W" + (" Ionic" if ionic else "")
    return spec, {"wattage": watts, "ionic": ionic}, (1.3 if ionic else 1.0) * watts / 2100


def _building_set(rng: random.Random) -> _Spec:
    pieces = round(rng.lognormvariate(math.log(500), 0.8) / 10) * 10 + 60
    age = rng.choice((4, 6, 8, 9, 12, 18))
    attrs = {"pieces": pieces, "age_min": age}
    return f"{pieces:,}-Piece", attrs, (pieces / 500) ** 0.8


def _board_game(rng: random.Random) -> _Spec:
    lo = rng.choice((1, 2, 2, 3))
    hi = rng.choice((4, 4, 5, 6, 8))
    attrs = {
        "players_min": lo,
        "players_max": hi,
        "age_min": rng.choice((6, 8, 10, 12, 14)),
        "playing_time_min": rng.choice((20, 30, 45, 60, 90, 120)),
    }
    return f"{lo}-{hi} Player", attrs, 1.0


def _rc_car(rng: random.Random) -> _Spec:
    scale = rng.choice((10, 12, 16, 18, 24))
    drive = rng.choice(("4WD", "4WD", "2WD"))
    attrs = {"scale": f"1:{scale}", "drive": drive, "top_speed_kmh": rng.randrange(15, 70, 5)}
    return f"1:{scale} {drive}", attrs, (16 / scale) ** 1.1 * (1.2 if drive == "4WD" else 1.0)


def _power_tool(rng: random.Random) -> str:
    return rng.choices(("Cordless", "Electric", "Petrol"), weights=(45, 35, 20))[0]


def _mower(rng: random.Random) -> _Spec:
    power = _power_tool(rng)
    width = rng.choice((32, 34, 37, 40, 42, 46, 51))
    if power == "Petrol" and rng.random() < 0.5:
        power = "Self-Propelled Petrol"
    mult = (width / 40) * {"Electric": 0.6, "Cordless": 1.0}.get(power, 1.4)
    attrs = {"cutting_width_cm": width, "power_source": power.split()[-1].lower()}
    return f"{width} cm {power}", attrs, mult


def _hedge_trimmer(rng: random.Random) -> _Spec:
    power = _power_tool(rng)
    blade = rng.choice((45, 50, 55, 60, 65))
    mult = (blade / 55) * {"Electric": 0.7, "Cordless": 1.0, "Petrol": 1.5}[power]
    return f"{blade} cm {power}", {"blade_length_cm": blade, "power_source": power.lower()}, mult


def _hose(rng: random.Random) -> _Spec:
    length = rng.choice((10, 15, 20, 25, 30, 50))
    kind = rng.choice(("Expandable", "Reinforced", "Anti-Kink"))
    attrs = {"length_m": float(length), "hose_type": kind}
    return f"{length} m {kind}", attrs, (length / 20) ** 0.7


def _plant_pot(rng: random.Random) -> _Spec:
    diameter = rng.choice((12, 16, 20, 25, 30, 40))
    pack = rng.choice((1, 1, 2, 3))
    spec = f"{diameter} cm" + (f" Set of {pack}" if pack > 1 else "")
    return spec, {"diameter_cm": diameter, "pack_size": pack}, (diameter / 20) * pack**0.8


def _dog_bed(rng: random.Random) -> _Spec:
    size = rng.choice(("S", "M", "M", "L", "XL"))
    style = rng.choice(("Orthopaedic", "Donut", "Bolster", "Cooling"))
    mult = {"S": 0.7, "M": 1.0, "L": 1.3, "XL": 1.6}[size]
    mult *= 1.4 if style == "Orthopaedic" else 1.0
    return f"{style} Size {size}", {"size": size, "style": style}, mult


def _leash(rng: random.Random) -> _Spec:
    kind = rng.choice(("Retractable", "Standard", "Hands-Free", "Training"))
    length = {"Retractable": 5.0, "Training": 10.0}.get(kind, rng.choice((1.2, 1.5, 2.0)))
    return f"{kind} {length:g} m", {"length_m": length, "leash_type": kind}, 1.0


def _cat_tree(rng: random.Random) -> _Spec:
    height = rng.randrange(60, 190, 10)
    levels = min(6, 1 + height // 35)
    attrs = {"height_cm": height, "levels": levels}
    return f"{height} cm {levels}-Level", attrs, (height / 100) ** 1.1


# ------------------------------------------------------------------------ the tables

_PALETTES: dict[str, tuple[str, ...]] = {
    "tech": ("Black", "Silver", "Space Grey", "White", "Graphite", "Midnight Blue"),
    "audio": ("Black", "White", "Midnight Blue", "Sage Green", "Rose Gold", "Silver"),
    "phone": ("Black", "Silver", "Graphite", "Ocean Blue", "Lavender", "Mint Green"),
    "case": ("Black", "Clear", "Navy", "Red", "Pink", "Forest Green"),
    "cable": ("Black", "White", "Grey", "Blue"),
    "toner": ("Black", "Black", "Black", "Cyan", "Magenta", "Yellow"),
    "kitchen": ("Stainless Steel", "Matte Black", "Cream", "Red", "Copper", "White"),
    "cookware": ("Black", "Graphite", "Copper", "Stone Grey", "Red"),
    "chair": ("Black", "Grey", "Blue", "Charcoal", "White"),
    "wood": ("Oak", "Walnut", "White", "Black", "Natural Pine"),
    "bedding": ("White", "Ivory", "Dusty Pink", "Sage Green", "Charcoal", "Navy", "Linen Beige"),
    "shoes": ("Black", "White", "Black/White", "Navy", "Grey/Volt", "Coral", "Triple Black"),
    "boots": ("Black", "Brown", "Tan", "Dark Brown", "Grey"),
    "apparel": ("Black", "White", "Navy", "Olive", "Burgundy", "Heather Grey", "Sand"),
    "denim": ("Indigo", "Dark Wash", "Light Wash", "Black", "Stone Wash"),
    "outdoor": ("Olive", "Forest Green", "Orange", "Navy", "Grey", "Sand", "Red"),
    "yoga": ("Purple", "Teal", "Black", "Pink", "Sage Green", "Blue"),
    "skincare": ("White", "Pink", "Green", "Blue"),
    "lipstick": ("Ruby Red", "Nude", "Coral", "Berry", "Rose Pink", "Plum", "Classic Red"),
    "fragrance": ("Gold", "Clear", "Black", "Pink", "Amber"),
    "hair": ("Black", "White", "Rose Gold", "Pink", "Silver"),
    "toys": ("Multicolour", "Red", "Blue", "Yellow", "Green"),
    "garden": ("Green", "Orange", "Black/Green", "Yellow", "Red"),
    "hose": ("Green", "Black", "Blue", "Grey"),
    "pots": ("Terracotta", "White", "Anthracite", "Sage Green", "Black", "Cream"),
    "pet": ("Grey", "Brown", "Beige", "Navy", "Charcoal"),
    "leash": ("Red", "Black", "Blue", "Orange", "Pink"),
}


@dataclass(frozen=True, slots=True)
class _Leaf:
    """One leaf category and everything needed to invent products for it."""

    path: str
    weight: float  # relative popularity; drives category size
    nouns: tuple[str, ...]  # first is the canonical noun, the rest are synonyms
    brands: tuple[str, ...]
    lines: tuple[str, ...]
    price: tuple[float, float]  # median EUR, log-sigma
    palette: str
    spec: Callable[[random.Random], _Spec]
    materials: tuple[str, ...]
    features: tuple[str, ...]
    uses: tuple[str, ...]
    colour_in_title: float = 0.95
    material_attr: bool = False
    formula: bool = False  # describe "materials" as ingredients


_LEAVES: tuple[_Leaf, ...] = (
    # ------------------------------------------------------------ Electronics
    _Leaf(
        "Electronics > Computers > Laptops",
        5.5,
        ("Laptop", "Notebook", "Ultrabook"),
        ("Aster", "Kovo", "Northwave", "Zentrix", "Helix Systems", "Orbis"),
        ("Pro", "Air", "Book", "Flex", "Studio", "Edge", "Vector"),
        (600.0, 0.35),
        "tech",
        _laptop,
        ("brushed aluminium", "magnesium alloy", "recycled aluminium", "polycarbonate"),
        (
            "a backlit keyboard",
            "all-day battery life",
            "two Thunderbolt 4 ports",
            "a fingerprint reader",
            "a high-brightness IPS display",
            "Wi-Fi 6E",
            "a 1080p webcam",
            "fast charging",
        ),
        (
            "working on the go",
            "students and home offices",
            "photo and video editing",
            "everyday browsing and streaming",
            "business travel",
        ),
    ),
    _Leaf(
        "Electronics > Computers > Monitors",
        3.0,
        ("Monitor", "Computer Screen", "Display"),
        ("Aster", "Kovo", "Zentrix", "Viewra", "Pixelon", "Helix Systems"),
        ("View", "Sharp", "Vista", "Pro", "Ultra", "Prime"),
        (220.0, 0.35),
        "tech",
        _monitor,
        ("matte plastic", "brushed aluminium", "recycled plastic"),
        (
            "a height-adjustable stand",
            "thin bezels",
            "an IPS panel",
            "HDR10 support",
            "USB-C power delivery",
            "a flicker-free backlight",
            "built-in speakers",
        ),
        ("home office setups", "gaming", "photo editing", "multi-screen workstations"),
    ),
    _Leaf(
        "Electronics > Storage > External Drives",
        2.5,
        ("External Drive", "Portable Drive", "External Storage"),
        ("DataVault", "Kovo", "Stormline", "Nexa", "Arcwell"),
        ("Vault", "Go", "Shield", "Rapid", "Edge"),
        (70.0, 0.3),
        "tech",
        _drive,
        ("rugged rubberised plastic", "anodised aluminium", "shock-resistant plastic"),
        (
            "hardware encryption",
            "automatic backup software",
            "USB-C and USB-A cables",
            "drop resistance",
            "read speeds up to 1,050 MB/s",
        ),
        (
            "backing up photos and documents",
            "gaming libraries",
            "creative professionals",
            "carrying files between computers",
        ),
    ),
    _Leaf(
        "Electronics > Audio > Headphones",
        5.0,
        ("Headphones", "Headset", "Over-Ear Headphones", "Cans"),
        ("Sonara", "Aurion", "Bass & Co", "Kovo", "Hush Audio", "Northwave", "Pulse Labs"),
        ("Quiet", "Studio", "Tempo", "Wave", "Solo", "Pulse"),
        (110.0, 0.55),
        "audio",
        _headphones,
        ("memory foam and aluminium", "lightweight aluminium", "vegan leather", "recycled plastic"),
        (
            "active noise cancellation",
            "40 mm drivers",
            "multipoint Bluetooth",
            "a built-in microphone",
            "fast USB-C charging",
            "a foldable design",
        ),
        ("commuting", "long flights", "working from home", "music lovers", "gaming"),
    ),
    _Leaf(
        "Electronics > Audio > Earbuds",
        4.0,
        ("Earbuds", "In-Ear Headphones", "Wireless Earphones", "Earphones"),
        ("Sonara", "Aurion", "Hush Audio", "Pulse Labs", "Bass & Co", "Orbis"),
        ("Buds", "Air", "Fit", "Go", "Free", "Mini"),
        (55.0, 0.5),
        "audio",
        _earbuds,
        ("soft silicone", "sweat-resistant plastic", "recycled plastic"),
        (
            "a pocket-sized charging case",
            "IPX5 water resistance",
            "touch controls",
            "transparency mode",
            "wireless charging",
            "low-latency mode",
        ),
        ("running and workouts", "commuting", "phone calls", "everyday listening"),
    ),
    _Leaf(
        "Electronics > TV & Video > Televisions",
        3.0,
        ("TV", "Smart TV", "Television"),
        ("Viewra", "Pixelon", "Kovo", "Lumina Vision", "Orbis"),
        ("Vivid", "Cinema", "Crystal", "Q", "Horizon"),
        (620.0, 0.35),
        "tech",
        _tv,
        ("metal and recycled plastic", "brushed aluminium", "matte plastic"),
        (
            "Dolby Vision",
            "a 120 Hz refresh rate",
            "built-in streaming apps",
            "voice control",
            "four HDMI 2.1 ports",
            "Dolby Atmos sound",
        ),
        ("movie nights", "sports fans", "next-gen gaming", "the living room"),
    ),
    _Leaf(
        "Electronics > Cables & Adapters > USB Cables",
        4.0,
        ("USB Cable", "Charging Cable", "Charger Cord", "Data Cable"),
        ("Linkwire", "Volta Connect", "Cablecraft", "Arcwell", "Kovo", "PowerLane", "Tripp Line"),
        ("Flex", "Basic", "Pro", "Max", "Dura"),
        (9.0, 0.35),
        "cable",
        _cable,
        ("braided nylon", "TPE", "tangle-free silicone"),
        (
            "60 W fast charging",
            "480 Mbps data transfer",
            "reinforced connectors",
            "a 10,000-bend lifespan",
        ),
        ("charging phones and tablets", "travel bags", "the office desk", "the car"),
    ),
    _Leaf(
        "Electronics > Printers & Ink > Toner Cartridges",
        2.0,
        ("Toner Cartridge", "Toner", "Laser Toner"),
        ("Inkwell", "PrintPro", "Tonermax", "OfficeLine", "Kovo"),
        ("TN", "CF", "LT", "Series"),
        (55.0, 0.3),
        "toner",
        _toner,
        ("recycled plastic", "remanufactured components"),
        (
            "crisp, smudge-free text",
            "an installed chip",
            "a drop-in design",
            "consistent print density",
        ),
        ("busy offices", "home laser printers", "high-volume printing", "schools"),
        colour_in_title=0.98,
    ),
    _Leaf(
        "Electronics > Phones > Smartphones",
        4.0,
        ("Smartphone", "Mobile Phone", "Cell Phone"),
        ("Orbis", "Kovo", "Nexa", "Zentrix", "Aurion Mobile"),
        ("Nova", "S", "Edge", "Pixel", "Neo", "Ultra"),
        (480.0, 0.4),
        "phone",
        _phone,
        ("glass and aluminium", "recycled aluminium", "Gorilla Glass"),
        (
            "a triple-lens camera",
            "a 120 Hz OLED screen",
            "a 5,000 mAh battery",
            "wireless charging",
            "IP68 water resistance",
            "face unlock",
        ),
        ("photography", "mobile gaming", "staying connected", "business users"),
    ),
    _Leaf(
        "Electronics > Phones > Phone Cases",
        3.5,
        ("Phone Case", "Phone Cover", "Protective Case"),
        ("Shellguard", "Armorwell", "Nexa", "Casewise", "Urban Fold"),
        ("Guard", "Slim", "Armor", "Lite", "Folio"),
        (17.0, 0.35),
        "case",
        _phone_case,
        ("shock-absorbing TPU", "vegan leather", "recycled polycarbonate", "silicone"),
        (
            "raised camera edges",
            "a grippy texture",
            "wireless charging compatibility",
            "3 m drop protection",
            "a card slot",
        ),
        ("everyday protection", "outdoor use", "keeping your phone slim"),
        material_attr=True,
    ),
    # ------------------------------------------------------------ Home & Kitchen
    _Leaf(
        "Home & Kitchen > Coffee > Espresso Machines",
        3.0,
        ("Espresso Machine", "Coffee Machine", "Espresso Maker"),
        ("Caffè Milano", "Crema & Co", "Vellano", "Kaffeehaus", "Brewmaster", "Kitchenly"),
        ("Barista", "Classico", "Crema", "Dual", "Compact"),
        (300.0, 0.45),
        "kitchen",
        _espresso,
        ("stainless steel", "brushed steel and ABS", "die-cast aluminium"),
        (
            "a steam wand for milk froth",
            "a removable water tank",
            "a built-in grinder",
            "programmable shot volumes",
            "a cup-warming tray",
            "fast heat-up",
        ),
        (
            "café-style coffee at home",
            "latte and cappuccino lovers",
            "busy mornings",
            "small kitchens",
        ),
    ),
    _Leaf(
        "Home & Kitchen > Coffee > Coffee Grinders",
        1.5,
        ("Coffee Grinder", "Burr Grinder", "Coffee Mill"),
        ("Crema & Co", "Vellano", "Kaffeehaus", "Brewmaster", "Millhaus"),
        ("Grind", "Precision", "Mill", "Aroma"),
        (80.0, 0.4),
        "kitchen",
        _grinder,
        ("stainless steel", "brushed aluminium", "BPA-free plastic"),
        (
            "a timed dose setting",
            "low-retention burrs",
            "a quiet motor",
            "an anti-static grounds bin",
        ),
        ("espresso", "pour-over and filter coffee", "French press", "daily brewing"),
    ),
    _Leaf(
        "Home & Kitchen > Cookware > Frying Pans",
        3.0,
        ("Frying Pan", "Skillet", "Fry Pan"),
        ("Ferro Cucina", "Kitchenly", "Steelcraft", "Copper Lane", "Cookwell"),
        ("Chef", "Classic", "Everyday", "Pro", "Heritage"),
        (38.0, 0.4),
        "cookware",
        _pan,
        ("hard-anodised aluminium",),
        (
            "a PFAS-free non-stick coating",
            "a stay-cool handle",
            "even heat distribution",
            "oven-safe construction up to 260 °C",
            "a dishwasher-safe finish",
        ),
        ("searing steaks", "eggs and pancakes", "everyday cooking", "induction hobs"),
    ),
    _Leaf(
        "Home & Kitchen > Appliances > Kettles",
        2.0,
        ("Electric Kettle", "Kettle", "Water Boiler"),
        ("Kitchenly", "Brewmaster", "Vellano", "Hearth & Home", "Steelcraft"),
        ("Boil", "Quick", "Classic", "Pour"),
        (40.0, 0.35),
        "kitchen",
        _kettle,
        ("brushed stainless steel", "borosilicate glass", "BPA-free plastic"),
        (
            "rapid boil",
            "a limescale filter",
            "a 360° swivel base",
            "boil-dry protection",
            "a keep-warm function",
        ),
        ("tea lovers", "pour-over coffee", "office kitchens", "quick morning brews"),
    ),
    _Leaf(
        "Home & Kitchen > Furniture > Office Chairs",
        2.5,
        ("Office Chair", "Desk Chair", "Ergonomic Chair", "Computer Chair"),
        ("Ergoform", "Sitwell", "Nordhaus", "Oak & Ash", "Deskline"),
        ("Ergo", "Comfort", "Task", "Motion", "Posture"),
        (210.0, 0.45),
        "chair",
        _office_chair,
        ("breathable mesh", "bonded leather", "fabric upholstery", "recycled mesh"),
        (
            "adjustable lumbar support",
            "a synchro-tilt mechanism",
            "4D armrests",
            "a height-adjustable headrest",
            "smooth-rolling castors",
        ),
        ("long work days", "home offices", "gaming setups", "study desks"),
        material_attr=True,
    ),
    _Leaf(
        "Home & Kitchen > Furniture > Bookcases",
        1.5,
        ("Bookcase", "Bookshelf", "Shelving Unit"),
        ("Nordhaus", "Oak & Ash", "Timberline", "Hearth & Home"),
        ("Nordic", "Loft", "Classic", "Studio"),
        (130.0, 0.4),
        "wood",
        _bookcase,
        ("solid oak", "walnut veneer", "solid pine", "engineered wood"),
        (
            "adjustable shelves",
            "a wall-anchor kit",
            "easy tool-free assembly",
            "a scratch-resistant finish",
        ),
        ("living rooms", "home libraries", "children's rooms", "displaying plants and decor"),
        material_attr=True,
    ),
    _Leaf(
        "Home & Kitchen > Bedding > Duvet Covers",
        2.0,
        ("Duvet Cover", "Quilt Cover", "Comforter Cover"),
        ("Slumberwell", "Hearth & Home", "Cotton Field", "Nordhaus", "Linen Loft"),
        ("Classic", "Pure", "Cloud", "Hotel"),
        (45.0, 0.4),
        "bedding",
        _duvet,
        ("100% cotton percale", "washed linen", "cotton sateen", "organic cotton"),
        ("hidden button fastening", "matching pillowcases", "a breathable weave", "corner ties"),
        ("year-round sleeping", "guest rooms", "warm sleepers"),
        material_attr=True,
    ),
    # ------------------------------------------------------------ Fashion
    _Leaf(
        "Fashion > Shoes > Running Shoes",
        5.5,
        ("Running Shoes", "Sneakers", "Trainers", "Runners"),
        ("Stride", "Velo Sport", "Apex Runner", "Kinetic", "Fleetfoot", "North Ridge"),
        ("Glide", "Cloud", "Tempo", "Rush", "Pace", "Boost", "Nova"),
        (95.0, 0.35),
        "shoes",
        _running_shoes,
        ("engineered mesh", "recycled knit", "breathable mesh"),
        (
            "responsive foam cushioning",
            "a grippy rubber outsole",
            "a padded heel collar",
            "reflective details",
            "a carbon-fibre plate",
        ),
        ("daily training", "marathon racing", "gym sessions", "casual wear"),
        material_attr=True,
    ),
    _Leaf(
        "Fashion > Shoes > Boots",
        2.5,
        ("Boots", "Chelsea Boots", "Ankle Boots", "Hiking Boots"),
        ("North Ridge", "Timberline", "Fleetfoot", "Urban Fold", "Cobbler & Sons"),
        ("Ridge", "Trek", "Heritage", "Chelsea", "Summit"),
        (120.0, 0.35),
        "boots",
        _boots,
        ("full-grain leather", "suede", "nubuck leather", "vegan leather"),
        ("a cushioned footbed", "a lug rubber sole", "a pull-on loop", "a moisture-wicking lining"),
        ("autumn walks", "city wear", "hiking trails", "rainy days"),
        material_attr=True,
    ),
    _Leaf(
        "Fashion > Clothing > T-Shirts",
        5.0,
        ("T-Shirt", "Tee", "Top"),
        ("Urban Fold", "Basic Thread", "Kinetic", "Coastline", "Cotton Field"),
        ("Essential", "Everyday", "Core", "Classic", "Pima"),
        (18.0, 0.4),
        "apparel",
        _tshirt,
        ("organic cotton", "cotton jersey", "recycled polyester", "cotton-modal blend"),
        ("a tag-free neckline", "a pre-shrunk fabric", "reinforced seams", "a soft hand feel"),
        ("everyday wear", "layering", "the gym", "summer days"),
        material_attr=True,
    ),
    _Leaf(
        "Fashion > Clothing > Jackets",
        3.0,
        ("Jacket", "Coat", "Windbreaker", "Shell Jacket"),
        ("North Ridge", "Urban Fold", "Coastline", "Alpine Peak", "Kinetic"),
        ("Storm", "Trail", "Summit", "Urban", "Breeze"),
        (110.0, 0.4),
        "apparel",
        _jacket,
        ("recycled nylon", "ripstop polyester", "waxed cotton", "waterproof-breathable laminate"),
        (
            "a detachable hood",
            "taped seams",
            "zipped hand pockets",
            "a packable design",
            "adjustable cuffs",
        ),
        ("hiking", "city commutes", "cold winter days", "travel"),
        material_attr=True,
    ),
    _Leaf(
        "Fashion > Clothing > Jeans",
        3.0,
        ("Jeans", "Denim Trousers", "Denim Pants"),
        ("Basic Thread", "Urban Fold", "Indigo Mill", "Coastline"),
        ("Original", "Classic", "Flex", "Heritage", "Raw"),
        (60.0, 0.35),
        "denim",
        _jeans,
        ("stretch denim", "rigid selvedge denim", "organic cotton denim"),
        ("a five-pocket design", "a button fly", "reinforced rivets", "a comfortable stretch"),
        ("everyday wear", "smart-casual outfits", "weekend plans"),
        material_attr=True,
    ),
    _Leaf(
        "Fashion > Accessories > Backpacks",
        3.0,
        ("Backpack", "Rucksack", "Daypack"),
        ("North Ridge", "Alpine Peak", "Urban Fold", "Trailhead", "Velo Sport"),
        ("Trek", "Commute", "Daypack", "Roam", "Venture"),
        (55.0, 0.45),
        "outdoor",
        _backpack,
        ("water-resistant nylon", "recycled polyester", "waxed canvas", "ripstop nylon"),
        (
            "padded shoulder straps",
            "a padded laptop sleeve",
            "side water-bottle pockets",
            "a hidden anti-theft pocket",
            "a ventilated back panel",
        ),
        ("daily commuting", "day hikes", "school and university", "weekend trips"),
        material_attr=True,
    ),
    # ------------------------------------------------------------ Sports & Outdoors
    _Leaf(
        "Sports & Outdoors > Camping > Tents",
        2.5,
        ("Tent", "Dome Tent", "Backpacking Tent"),
        ("North Ridge", "Alpine Peak", "Trailhead", "Campwell", "Summit Gear"),
        ("Basecamp", "Trail", "Dome", "Ultralight", "Explorer"),
        (110.0, 0.5),
        "outdoor",
        _tent,
        ("ripstop polyester", "silicone-coated nylon", "aluminium poles"),
        (
            "a 3,000 mm waterproof rating",
            "two vestibules",
            "colour-coded poles",
            "mesh ventilation panels",
            "a quick-pitch design",
        ),
        ("backpacking trips", "festival camping", "family holidays", "wild camping"),
    ),
    _Leaf(
        "Sports & Outdoors > Camping > Sleeping Bags",
        1.5,
        ("Sleeping Bag", "Mummy Bag", "Camping Sleeping Bag"),
        ("North Ridge", "Alpine Peak", "Trailhead", "Campwell"),
        ("Cocoon", "Summit", "Trail", "Night"),
        (55.0, 0.45),
        "outdoor",
        _sleeping_bag,
        ("ripstop nylon", "recycled polyester", "water-repellent down"),
        ("a two-way zip", "an insulated hood", "a compression stuff sack", "a draft collar"),
        ("three-season camping", "alpine trips", "scout camps", "festivals"),
    ),
    _Leaf(
        "Sports & Outdoors > Fitness > Yoga Mats",
        2.0,
        ("Yoga Mat", "Exercise Mat", "Fitness Mat"),
        ("Kinetic", "Lotus Flow", "Velo Sport", "Zen Studio", "Apex Fitness"),
        ("Balance", "Flow", "Grip", "Core"),
        (28.0, 0.45),
        "yoga",
        _yoga_mat,
        ("natural rubber", "TPE foam", "cork and rubber", "PVC-free foam"),
        (
            "alignment lines",
            "a carry strap",
            "a non-slip textured surface",
            "extra cushioning for joints",
        ),
        ("yoga and pilates", "home workouts", "stretching", "hot yoga"),
        material_attr=True,
    ),
    # ------------------------------------------------------------ Beauty
    _Leaf(
        "Beauty > Skincare > Moisturisers",
        3.0,
        ("Moisturiser", "Face Cream", "Day Cream", "Moisturizer"),
        ("Dermalis", "Pure Bloom", "Aqualis", "Verdance", "Maison Belle"),
        ("Hydra", "Daily", "Calm", "Glow", "Barrier"),
        (22.0, 0.5),
        "skincare",
        _moisturiser,
        ("hyaluronic acid", "ceramides and niacinamide", "shea butter", "squalane"),
        (
            "a lightweight, non-greasy texture",
            "48-hour hydration",
            "a fragrance-free formula",
            "dermatologist testing",
        ),
        ("daily skincare routines", "sensitive skin", "wearing under make-up"),
        colour_in_title=0.35,
        formula=True,
    ),
    _Leaf(
        "Beauty > Makeup > Lipsticks",
        2.0,
        ("Lipstick", "Lip Colour", "Lip Stick"),
        ("Maison Belle", "Rouge Atelier", "Pure Bloom", "Velvet Kiss"),
        ("Velvet", "Icon", "Kiss", "Luxe"),
        (16.0, 0.4),
        "lipstick",
        _lipstick,
        ("vitamin E and jojoba oil", "nourishing waxes", "shea butter"),
        ("long-lasting colour", "a transfer-resistant finish", "a creamy glide", "rich pigment"),
        ("everyday looks", "evening events", "all-day wear"),
        formula=True,
    ),
    _Leaf(
        "Beauty > Fragrance",
        2.0,
        ("Perfume", "Fragrance", "Scent"),
        ("Maison Belle", "Rouge Atelier", "Ambra", "Éclat Paris", "Noir Atelier"),
        ("Nuit", "Bloom", "Oud", "Étoile", "Aqua"),
        (65.0, 0.45),
        "fragrance",
        _fragrance,
        (
            "bergamot, jasmine and sandalwood",
            "amber, vanilla and musk",
            "citrus and vetiver",
            "rose and oud",
        ),
        ("long-lasting sillage", "a refillable bottle", "a travel spray"),
        ("evening wear", "gifting", "everyday wear", "special occasions"),
        colour_in_title=0.3,
        formula=True,
    ),
    _Leaf(
        "Beauty > Hair Care > Hair Dryers",
        1.5,
        ("Hair Dryer", "Blow Dryer", "Hairdryer"),
        ("Aeris", "Salonique", "Kovo", "Stylera"),
        ("Air", "Salon", "Swift", "Pro"),
        (55.0, 0.5),
        "hair",
        _hair_dryer,
        ("heat-resistant polymer", "lightweight ABS", "soft-touch plastic"),
        (
            "three heat settings",
            "a cool-shot button",
            "a concentrator nozzle",
            "a diffuser attachment",
            "a foldable handle",
        ),
        ("frizz-free styling", "travel", "curly hair", "quick drying"),
    ),
    # ------------------------------------------------------------ Toys
    _Leaf(
        "Toys > Building Sets",
        3.0,
        ("Building Set", "Construction Kit", "Brick Set", "Brick Kit"),
        ("Brickwise", "Buildmore", "Tinker Town", "Blockhaus"),
        ("City", "Space", "Castle", "Racers", "Creator"),
        (40.0, 0.45),
        "toys",
        _building_set,
        ("durable ABS plastic", "plant-based plastic"),
        (
            "step-by-step instructions",
            "compatible bricks",
            "collectible minifigures",
            "moving parts",
        ),
        ("creative play", "family building sessions", "display models", "gifts"),
        colour_in_title=0.6,
    ),
    _Leaf(
        "Toys > Board Games",
        2.5,
        ("Board Game", "Family Game", "Strategy Game", "Tabletop Game"),
        ("Meeple Works", "Tabletop Co", "Dice Forge", "Family Night Games"),
        ("Kingdoms", "Harbour", "Quest", "Frontier", "Alchemy"),
        (32.0, 0.4),
        "toys",
        _board_game,
        ("sturdy cardboard and wooden pieces", "FSC-certified cardboard"),
        (
            "easy-to-learn rules",
            "high replay value",
            "beautifully illustrated cards",
            "a solo mode",
        ),
        ("game nights", "family evenings", "parties", "two-player duels"),
        colour_in_title=0.3,
    ),
    _Leaf(
        "Toys > Remote Control > RC Cars",
        1.5,
        ("RC Car", "Remote Control Car", "Radio-Controlled Car"),
        ("Turbo Trax", "Zoomtek", "Speedline RC", "Buildmore"),
        ("Racer", "Crawler", "Buggy", "Monster"),
        (65.0, 0.5),
        "toys",
        _rc_car,
        ("impact-resistant nylon", "aluminium"),
        (
            "a 2.4 GHz controller",
            "rechargeable batteries",
            "all-terrain tyres",
            "oil-filled shocks",
        ),
        ("backyard racing", "off-road fun", "beginners and hobbyists"),
    ),
    # ------------------------------------------------------------ Garden
    _Leaf(
        "Garden > Tools > Lawn Mowers",
        2.0,
        ("Lawn Mower", "Lawnmower", "Mower", "Grass Cutter"),
        ("Greenline", "Yardmaster", "Grasswell", "Mowtek", "Arbor & Vine"),
        ("Cut", "Yard", "Turf", "Pro"),
        (260.0, 0.5),
        "garden",
        _mower,
        ("pressed steel", "polypropylene", "lightweight composite"),
        (
            "a 50-litre grass box",
            "central height adjustment",
            "a mulching plug",
            "foldable handles",
            "a brushless motor",
        ),
        ("small and medium lawns", "large gardens", "uneven ground"),
    ),
    _Leaf(
        "Garden > Tools > Hedge Trimmers",
        1.0,
        ("Hedge Trimmer", "Hedge Cutter", "Hedge Clippers"),
        ("Greenline", "Yardmaster", "Mowtek", "Arbor & Vine"),
        ("Trim", "Edge", "Shape"),
        (85.0, 0.45),
        "garden",
        _hedge_trimmer,
        ("laser-cut steel blades", "glass-fibre reinforced plastic"),
        ("a rotating rear handle", "a blade guard", "low vibration", "a debris sweeper"),
        ("shaping hedges", "trimming shrubs", "garden maintenance"),
    ),
    _Leaf(
        "Garden > Watering > Garden Hoses",
        1.5,
        ("Garden Hose", "Hosepipe", "Water Hose"),
        ("Greenline", "Aquaflow", "Hosewell", "Arbor & Vine"),
        ("Flow", "Flex", "Aqua", "Pro"),
        (28.0, 0.4),
        "hose",
        _hose,
        ("UV-resistant PVC", "latex and woven polyester", "reinforced rubber"),
        ("brass fittings", "an eight-pattern spray gun", "kink-free flexibility", "a storage bag"),
        ("watering flower beds", "washing the car", "balconies and small gardens"),
    ),
    _Leaf(
        "Garden > Plant Care > Plant Pots",
        2.0,
        ("Plant Pot", "Planter", "Flower Pot"),
        ("Terra & Co", "Arbor & Vine", "Potterie", "Greenline"),
        ("Terra", "Urban", "Bloom", "Classic"),
        (22.0, 0.5),
        "pots",
        _plant_pot,
        ("terracotta", "glazed ceramic", "recycled plastic", "fibreclay", "concrete"),
        ("drainage holes", "a matching saucer", "frost resistance", "a self-watering insert"),
        ("indoor plants", "patios and balconies", "herb gardens"),
        material_attr=True,
    ),
    # ------------------------------------------------------------ Pets
    _Leaf(
        "Pets > Dogs > Dog Beds",
        2.0,
        ("Dog Bed", "Pet Bed", "Dog Cushion"),
        ("Pawsome", "Happy Tails", "Furrow & Co", "Snoozy Paws"),
        ("Snooze", "Comfy", "Calm", "Nest"),
        (45.0, 0.45),
        "pet",
        _dog_bed,
        ("memory foam", "faux fur", "water-resistant canvas", "recycled polyester"),
        ("a removable washable cover", "a non-slip base", "raised bolsters", "a cooling gel layer"),
        ("senior dogs", "crates and car boots", "anxious pets", "large breeds"),
        material_attr=True,
    ),
    _Leaf(
        "Pets > Dogs > Dog Leashes",
        1.0,
        ("Dog Leash", "Dog Lead", "Leash"),
        ("Pawsome", "Happy Tails", "Trailhead", "LeadWell"),
        ("Walk", "Trail", "Urban", "Flex"),
        (18.0, 0.45),
        "leash",
        _leash,
        ("reflective nylon webbing", "braided rope", "leather"),
        ("a padded handle", "a locking carabiner", "reflective stitching", "a one-button brake"),
        ("daily walks", "training", "running with your dog", "night walks"),
    ),
    _Leaf(
        "Pets > Cats > Cat Trees",
        1.0,
        ("Cat Tree", "Cat Tower", "Scratching Post"),
        ("Pawsome", "Whisker Works", "Happy Tails", "Snoozy Paws"),
        ("Climb", "Tower", "Hideaway"),
        (60.0, 0.45),
        "pet",
        _cat_tree,
        ("natural sisal rope and plush", "engineered wood and faux fur"),
        ("sisal scratching posts", "a cosy condo", "hanging toys", "a top perch"),
        ("indoor cats", "multi-cat homes", "kittens", "small apartments"),
    ),
)

#: Every leaf category path in the demo catalog, in table order.
CATEGORY_PATHS: tuple[str, ...] = tuple(leaf.path for leaf in _LEAVES)

_ADJECTIVES = ("versatile", "reliable", "well-designed", "popular", "dependable", "premium")
_CODE_LETTERS = "ABCEGHKMRSTVXZ"


# ------------------------------------------------------------------------ generation


@dataclass(frozen=True, slots=True)
class _Model:
    """A product family: brand, model name, base price, quality and release date."""

    brand: str
    name: str
    base_price: float
    quality: float
    released: date
    popularity: float


def _quotas(n: int) -> list[int]:
    """Split ``n`` products across leaves by weight (largest-remainder rounding)."""
    total = sum(leaf.weight for leaf in _LEAVES)
    raw = [n * leaf.weight / total for leaf in _LEAVES]
    counts = [math.floor(x) for x in raw]
    order = sorted(range(len(raw)), key=lambda i: (counts[i] - raw[i], i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def _model_code(rng: random.Random) -> str:
    pattern = rng.randrange(6)
    if pattern == 0:
        return f"{rng.choice(_CODE_LETTERS)}-{rng.randrange(100, 1000)}"
    if pattern == 1:
        return str(rng.randrange(2, 10))
    if pattern == 2:
        return f"{rng.choice(_CODE_LETTERS)}{rng.randrange(10, 100)}"
    if pattern == 3:
        return rng.choice(("II", "III", "IV", "Mk2", "Plus", "Max", "Lite"))
    if pattern == 4:
        return str(rng.choice((12, 14, 15, 16, 20, 24, 300, 500, 700)))
    return ""


def _make_models(rng: random.Random, leaf: _Leaf, count: int) -> list[_Model]:
    n_models = max(2, round(count / rng.uniform(2.5, 4.5)))
    seen: set[tuple[str, str]] = set()
    models: list[_Model] = []
    median, sigma = leaf.price
    for rank in range(n_models):
        for _ in range(8):
            brand = rng.choice(leaf.brands)
            name = f"{rng.choice(leaf.lines)} {_model_code(rng)}".strip()
            if (brand, name) not in seen:
                break
        seen.add((brand, name))
        released = REFERENCE_DATE - timedelta(days=rng.randrange(_RELEASE_WINDOW_DAYS))
        models.append(
            _Model(
                brand=brand,
                name=name,
                base_price=median * math.exp(rng.gauss(0.0, sigma)),
                quality=min(4.9, max(2.2, rng.gauss(4.1, 0.45))),
                released=released,
                popularity=1.0 / (rank + 1) ** 0.8,
            )
        )
    return models


def _shop_price(rng: random.Random, value: float) -> float:
    """Round to shop-style prices: 899.99, 49.95, 7.49."""
    if value >= 10:
        price = round(value) - rng.choice((0.01, 0.01, 0.05, 0.51, 0.0))
    else:
        price = round(value, 1) - 0.01
    return round(max(0.99, price), 2)


def _title(
    rng: random.Random, leaf: _Leaf, model: _Model, spec: str, noun: str, colour: str
) -> str:
    head = " ".join(p for p in (model.brand, model.name, spec, noun) if p)
    if rng.random() >= leaf.colour_in_title:
        return head
    style = rng.random()
    if style < 0.75:
        return f"{head} – {colour}"
    if style < 0.9:
        return f"{head}, {colour}"
    return f"{head} ({colour})"


def _description(
    rng: random.Random, leaf: _Leaf, model: _Model, noun: str, colour: str, material: str
) -> str:
    f1, f2, f3 = rng.sample(leaf.features, 3)
    use = rng.choice(leaf.uses)
    adj = rng.choice(_ADJECTIVES)
    full = f"{model.brand} {model.name}"
    noun_l = _noun_phrase(noun)
    colour_l = _lower_noun(colour)
    intro = rng.choice(
        (
            f"The {full} is {_article(adj)} {adj} {noun_l} with {f1} and {f2}.",
            f"Meet the {model.name} from {model.brand}: {_article(adj)} {adj} {noun_l} built "
            f"around {f1}.",
            f"This {colour_l} {noun_l} from {model.brand} combines {f1} with {f2}.",
            f"{f1[0].upper()}{f1[1:]}, {f2} and {f3} set the {full} apart.",
        )
    )
    if leaf.formula:
        body = rng.choice(
            (
                f"The formula contains {material}.",
                f"Enriched with {material}, it feels as good as it looks.",
                f"Its blend of {material} is suitable for daily use.",
            )
        )
    else:
        body = rng.choice(
            (
                f"It is made from {material}.",
                f"Crafted from {material}, it is built to last.",
                f"The {material} construction is durable and easy to care for.",
            )
        )
    outro = rng.choice(
        (
            f"Ideal for {use}.",
            f"A great choice for {use}.",
            f"Perfect for {use}, and backed by a {rng.choice((1, 2, 2, 3, 5))}-year warranty.",
            f"Designed with {use} in mind.",
        )
    )
    sentences = rng.random()
    if sentences < 0.6:
        return f"{intro} {body} {outro}"
    if sentences < 0.8:
        return f"{intro} {body}"
    return f"{intro} {outro}"


def _product(rng: random.Random, leaf: _Leaf, model: _Model) -> dict[str, Any]:
    spec, attrs, mult = leaf.spec(rng)
    noun = leaf.nouns[0] if rng.random() < 0.55 else rng.choice(leaf.nouns[1:])
    desc_noun = rng.choice([x for x in leaf.nouns if x != noun] or [noun])
    colour = rng.choice(_PALETTES[leaf.palette])
    material = str(attrs.get("material") or rng.choice(leaf.materials))
    if leaf.material_attr:
        attrs["material"] = material
    price = _shop_price(rng, model.base_price * mult * rng.uniform(0.95, 1.05))
    rating = round(min(5.0, max(1.0, rng.gauss(model.quality, 0.3))), 1)
    reviews = int(rng.lognormvariate(math.log(30 * leaf.weight * model.popularity + 1), 1.2))
    return {
        "title": _title(rng, leaf, model, spec, noun, colour),
        "description": _description(rng, leaf, model, desc_noun, colour, material),
        "brand": model.brand,
        "category": leaf.path,
        "colour": colour,
        "price": price,
        "rating": rating,
        "review_count": reviews,
        "in_stock": rng.random() < 0.88,
        "released": model.released.isoformat(),
        **attrs,
    }


def generate_demo_catalog(*, n: int = 3000, seed: int = 7) -> list[dict[str, Any]]:
    """Return ``n`` synthetic products; identical for identical ``(n, seed)``.

    Each product has ``id``, ``title``, ``description``, ``brand``, ``category``
    ("Top > Mid > Leaf"), ``colour``, ``price`` (EUR), ``rating``, ``review_count``,
    ``in_stock``, ``released`` (ISO date) and category-specific attributes.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    drafts: list[dict[str, Any]] = []
    for leaf, count in zip(_LEAVES, _quotas(n), strict=True):
        if count == 0:
            continue
        models = _make_models(rng, leaf, count)
        weights = [m.popularity for m in models]
        for model in rng.choices(models, weights=weights, k=count):
            drafts.append(_product(rng, leaf, model))
    rng.shuffle(drafts)
    return [{"id": f"SR-{i:06d}", **draft} for i, draft in enumerate(drafts, start=1)]


def write_demo_catalog(path: Path, *, n: int = 3000, seed: int = 7) -> Path:
    """Write the demo catalog to ``path`` as UTF-8 JSONL (one product per line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for product in generate_demo_catalog(n=n, seed=seed):
            fh.write(json.dumps(product, ensure_ascii=False))
            fh.write("\n")
    return path
