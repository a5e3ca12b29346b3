"""Per-category spec generators of the demo catalog: title fragment, attributes, price factor."""

from __future__ import annotations

import math
import random
from typing import Any

_Spec = tuple[str, dict[str, Any], float]
"""Title fragment, category attributes, price multiplier."""


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
