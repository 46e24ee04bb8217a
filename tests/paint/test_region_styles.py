"""The style panel's API for a SEAN model: photos read per region, a class's style from another photo,
mixing two styles."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

from condgen.data.landscapes import CLASSES, landscape  # noqa: E402
from condgen.paint.app import create_app  # noqa: E402
from condgen.paint.model import PaintModel  # noqa: E402

SKY = CLASSES.index("sky")


def url(arr: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def image(data_url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


@pytest.fixture(scope="module")
def client(sean_run):
    return TestClient(create_app(PaintModel(sean_run)))


def upload(client, index: int) -> dict:
    scene = landscape(0, index, 64, 64, split="val")
    body = {"photo": url(scene["image"]), "labels": url(scene["label"].astype(np.uint8))}
    r = client.post("/region_style", json=body)
    assert r.status_code == 200, r.text
    return r.json() | {"ids": scene["label"].astype(np.uint8)}


def test_a_class_takes_its_style_from_another_photo(client):
    assert client.get("/region_style").json() == {"enabled": True, "style_dim": 8}
    a, b = upload(client, 0), upload(client, 1)
    assert SKY in a["present"] and SKY in b["present"] and a["style"] != b["style"]
    assert len(a["swatches"][str(SKY)]) == 3  # the photo's mean colour over its sky
    labels = url(a["ids"])
    plain = client.post("/region_synthesize?seed=3", json={"labels": labels, "default": a["style"]})
    swapped = client.post("/region_synthesize?seed=3", json={
        "labels": labels, "default": a["style"], "regions": {str(SKY): b["style"]}})
    assert plain.status_code == swapped.status_code == 200, swapped.text
    assert swapped.json()["regions"] == {str(SKY): b["style"]}
    x, y = image(plain.json()["images"][0]), image(swapped.json()["images"][0])
    assert x.shape == (64, 64, 3) and not np.array_equal(x, y)
    again = client.post("/region_synthesize?seed=3", json={"labels": labels, "default": a["style"]})
    assert np.array_equal(image(again.json()["images"][0]), x)  # same seed, same noise
    state = client.app.state.region_styles.last_request
    assert state["default"] == a["style"] and np.array_equal(state["ids"], a["ids"])
    mixes = [client.post("/region_synthesize?seed=3", json={
        "labels": labels, "default": a["style"], "mix": {"class": SKY, "with": b["style"], "alpha": t}})
        for t in (0.0, 1.0)]
    assert np.array_equal(image(mixes[0].json()["images"][0]), x)  # alpha 0: the default's sky
    assert np.array_equal(image(mixes[1].json()["images"][0]), y)  # alpha 1: the other photo's sky


def test_bad_requests_name_the_problem(client, vae_run):
    a = upload(client, 0)
    labels = url(a["ids"])
    r = client.post("/region_synthesize", json={"labels": labels, "default": "nope"})
    assert r.status_code == 404 and "upload the photo again" in r.json()["error"]
    absent = next(j for j in range(len(CLASSES)) if j not in a["present"])
    r = client.post("/region_synthesize", json={"labels": labels, "regions": {str(absent): a["style"]}})
    assert r.status_code == 400 and f"no {CLASSES[absent]!r} region" in r.json()["error"]
    r = client.post("/region_style", content=b"not json")
    assert r.status_code == 400 and "not JSON" in r.json()["error"]
    other = TestClient(create_app(PaintModel(vae_run)))
    assert other.get("/region_style").json()["enabled"] is False
    r = other.post("/region_style", json={"photo": labels, "labels": labels})
    assert r.status_code == 409 and "SEAN" in r.json()["error"]
