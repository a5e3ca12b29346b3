"""Images end to end with a tiny random CLIP: catalog images (files, data URLs) → CLIP vectors
in `image_vector` → a kNN leg over them, and bad images reported per product."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from .conftest import Server, cli, free_port

pytestmark = pytest.mark.ml


def _png(colour: tuple[int, int, int], *, stripe: bool = False) -> bytes:
    from PIL import Image

    image = Image.new("RGB", (48, 48), colour)
    if stripe:
        for x in range(0, 48, 6):
            for y in range(48):
                image.putpixel((x, y), (255 - colour[0], 255 - colour[1], 255 - colour[2]))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    pytest.importorskip("torch")
    from shoprank.testing.clip import make_tiny_clip

    root = tmp_path_factory.mktemp("images")
    model = make_tiny_clip(root / "tiny-clip", seed=1)
    pictures = root / "catalog" / "img"
    pictures.mkdir(parents=True)
    (pictures / "red.png").write_bytes(_png((220, 20, 20)))
    (pictures / "blue.png").write_bytes(_png((20, 20, 220), stripe=True))
    (pictures / "broken.png").write_bytes(b"\x89PNG not really an image")
    green = base64.b64encode(_png((20, 200, 20))).decode()
    rows = [
        {"id": "red", "title": "Red mug", "image": "img/red.png"},
        {"id": "blue", "title": "Blue striped mug", "image": "img/blue.png"},
        {"id": "green", "title": "Green mug", "image": f"data:image/png;base64,{green}"},
        {"id": "missing", "title": "Mug without picture file", "image": "img/nope.png"},
        {"id": "corrupt", "title": "Mug with a corrupt picture", "image": "img/broken.png"},
        {
            "id": "remote",
            "title": "Mug with an unreachable picture",
            "image": f"http://127.0.0.1:{free_port()}/mug.jpg",
        },
        {"id": "plain", "title": "Mug with no image at all"},
    ]
    catalog = root / "catalog" / "mugs.jsonl"
    catalog.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {"SHOPRANK_IMAGE_MODEL": str(model), "SHOPRANK_ENCODER_BACKEND": "numpy"}
    data_dir = root / "data"
    cli("models", "export-clip-text", data_dir=data_dir, env=env)
    result = cli(
        "index",
        "load",
        "--no-train-intent",
        str(catalog),
        "--index",
        "mugs",
        "--json",
        data_dir=data_dir,
        env=env,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["state"] == "done" and report["documents"] == 7
    return data_dir, env


def test_bad_images_are_recorded_per_product(shop: tuple[Path, dict[str, str]]) -> None:
    data_dir, _ = shop
    done = sorted((data_dir / "jobs" / "mugs-000001" / "done").glob("*.json"))
    failures = {
        f["id"]: f["reason"] for d in done for f in json.loads(d.read_text())["image_failures"]
    }
    assert set(failures) == {"missing", "corrupt", "remote"}
    assert all(reason for reason in failures.values())


def test_image_vectors_are_in_the_index_and_searchable(shop: tuple[Path, dict[str, str]]) -> None:
    data_dir, env = shop
    from shoprank.indexing.encoders.clip_image import ClipImageEncoder
    from shoprank.plugin.backends.embedded.backend import EmbeddedBackend

    backend = EmbeddedBackend(data_dir / "embedded")
    assert (
        backend.vector_fields("mugs")["image_vector"]
        == ClipImageEncoder(env["SHOPRANK_IMAGE_MODEL"]).dims
    )
    from PIL import Image

    red = ClipImageEncoder(env["SHOPRANK_IMAGE_MODEL"]).encode_images(
        [Image.open(io.BytesIO(_png((220, 20, 20))))]
    )[0]
    hits = backend.search(
        "mugs", {"knn": {"field": "image_vector", "query_vector": red.tolist(), "k": 10}}
    )["hits"]
    ids = [h["_id"] for h in hits["hits"]]
    assert ids[0] == "red"
    assert hits["hits"][0]["_score"] == pytest.approx(1.0, abs=1e-4)
    # Only products whose image loaded have an image vector.
    assert set(ids) == {"red", "blue", "green"}
    assert np.isclose(np.linalg.norm(red), 1.0, atol=1e-4)


def test_text_to_image_leg_in_hybrid_search(shop: tuple[Path, dict[str, str]]) -> None:
    data_dir, env = shop
    server = Server(data_dir, env=env).start()
    try:
        resp = httpx.post(
            server.url + "/mugs/_search",
            json={
                "query": {"match": {"title": "mug"}},
                "size": 10,
                "ext": {"shoprank": {"mode": "hybrid", "explain": True}},
            },
        ).json()
        assert "retrieve:image" in resp["_shoprank"]["stages"], resp["_shoprank"]
        with_image_leg = {
            h["_id"] for h in resp["hits"]["hits"] if "image" in h["_shoprank"]["legs"]
        }
        assert with_image_leg == {"red", "blue", "green"}
        off = httpx.post(
            server.url + "/mugs/_search",
            json={
                "query": {"match": {"title": "mug"}},
                "ext": {"shoprank": {"mode": "hybrid", "explain": True, "image": False}},
            },
        ).json()
        assert "retrieve:image" not in off["_shoprank"]["stages"]
    finally:
        server.stop()
