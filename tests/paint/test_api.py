"""The painter's API through the ASGI test client: every endpoint, every bad input, seeded determinism."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette")
pytest.importorskip("httpx")
from starlette.testclient import TestClient  # noqa: E402

from condgen.data.landscapes import CLASSES, PALETTE, landscape  # noqa: E402
from condgen.paint.app import create_app  # noqa: E402
from condgen.paint.model import PaintModel  # noqa: E402

PNG = {"Content-Type": "image/png"}


def png(arr: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(arr)
    (img.convert(mode) if mode else img).save(buf, format="PNG")
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def ids_of(response) -> np.ndarray:
    body = response.json()
    return np.frombuffer(base64.b64decode(body["ids"]), np.uint8).reshape(body["height"], body["width"])


def images_of(response) -> list[np.ndarray]:
    return [decode(base64.b64decode(src.split(",", 1)[1])) for src in response.json()["images"]]


@pytest.fixture(scope="module")
def vae(vae_run):
    (vae_run / "examples").mkdir(exist_ok=True)
    (vae_run / "examples" / "mine.png").write_bytes(png(np.full((32, 32), 6, np.uint8)))
    model = PaintModel(vae_run)
    with TestClient(create_app(model)) as client:
        yield model, client


@pytest.fixture(scope="module")
def coco(coco_run):
    model = PaintModel(coco_run)
    with TestClient(create_app(model)) as client:
        yield model, client


def scene(i: int = 0, size: int = 32) -> np.ndarray:
    return landscape(0, i, size, size, split="val")["label"]


# ----- reading the model
def test_page_and_static_files(vae):
    _, client = vae
    page = client.get("/")
    assert page.status_code == 200 and "condgen paint" in page.text
    for name in ("paint.js", "paint.css"):
        assert client.get(f"/static/{name}").status_code == 200
    # offline by construction: no external resource in the page
    for name in ("index.html", "paint.js", "paint.css"):
        text = client.get(f"/static/{name}").text
        assert "http://" not in text and "https://" not in text and "@import" not in text


def test_classes(vae):
    _, client = vae
    info = client.get("/classes").json()
    assert (info["width"], info["height"], info["dataset"]) == (32, 32, "SyntheticLandscapes")
    assert [c["name"] for c in info["classes"]] == list(CLASSES)
    assert [tuple(c["color"]) for c in info["classes"]] == list(PALETTE)
    assert info["multimodal"] and info["style_encoder"] and info["dontcare"] is None
    assert info["groups"] == ["classes"] and info["max_samples"] == 8


def test_classes_of_a_converted_coco_checkpoint_are_grouped(coco):
    _, client = coco
    info = client.get("/classes").json()
    assert info["kind"] == "converted official" and info["dataset"] == "CocoStuff"
    assert len(info["classes"]) == 183 and info["dontcare"] == 182
    by_id = {c["id"]: c for c in info["classes"]}
    assert (by_id[0]["name"], by_id[0]["group"]) == ("person", "person")
    assert (by_id[2]["name"], by_id[2]["group"]) == ("car", "vehicle")
    assert (by_id[156]["name"], by_id[156]["group"]) == ("sky-other", "stuff")
    assert info["groups"][:3] == ["person", "vehicle", "outdoor"] and info["groups"][-1] == "other"
    assert len({tuple(c["color"]) for c in info["classes"]}) == 183  # colours map back to ids unambiguously
    assert not info["multimodal"] and not info["style_encoder"]


def test_examples(vae):
    model, client = vae
    names = [e["name"] for e in client.get("/examples").json()["examples"]]
    assert names[:2] == ["landscape_0", "landscape_1"] and "mine" in names
    ids = decode(client.get("/examples/landscape_3?format=ids").content)
    assert ids.dtype == np.uint8 and ids.ndim == 2 and np.array_equal(ids, scene(3))
    color = decode(client.get("/examples/landscape_3?format=color").content)
    assert np.array_equal(color, np.array(PALETTE, np.uint8)[scene(3)])
    photo = decode(client.get("/examples/landscape_3?format=photo").content)
    assert photo.shape == (32, 32, 3)
    assert np.array_equal(decode(client.get("/examples/mine").content), np.full((32, 32), 6))
    assert client.get("/examples/mine?format=photo").status_code == 404


@pytest.mark.parametrize("path", [
    "/examples/nothing", "/examples/landscape_99", "/examples/..%2F..%2Fconfig",
    "/examples/%2Fetc%2Fpasswd", "/static/../model.py", "/static/%2e%2e/model.py", "/static/..%2Fapp.py",
    "/../config.gin",
])  # fmt: skip
def test_no_path_outside_the_run_or_the_page(vae, path):
    _, client = vae
    r = client.get(path)
    assert r.status_code == 404, (path, r.status_code, r.text[:200])
    assert "Traceback" not in r.text and "def " not in r.text


def test_bad_query_values(vae):
    _, client = vae
    r = client.get("/examples/landscape_0?format=jpeg")
    assert r.status_code == 400 and "format must be one of" in r.json()["error"]


# ----- label maps in and out
def test_labels_round_trip_ids_and_colours(vae):
    model, client = vae
    ids = scene(1)
    r = client.post("/labels", content=png(ids), headers=PNG)
    assert r.status_code == 200 and np.array_equal(ids_of(r), ids) and r.json()["note"] is None
    grey_rgba = np.repeat(ids[..., None], 4, -1)
    grey_rgba[..., 3] = 255  # what a browser canvas writes
    assert np.array_equal(ids_of(client.post("/labels", content=png(grey_rgba), headers=PNG)), ids)
    colour = client.post("/labels?input=ids&output=color", content=png(ids), headers=PNG)
    assert colour.headers["content-type"] == "image/png"
    back = client.post("/labels?input=color", content=colour.content, headers=PNG)
    assert np.array_equal(ids_of(back), ids)
    as_png = client.post("/labels?input=color&output=ids", content=colour.content, headers=PNG)
    reopened = Image.open(io.BytesIO(as_png.content))
    assert reopened.mode == "L" and np.array_equal(np.asarray(reopened), ids)
    palette = Image.fromarray(ids, "P")  # palette PNGs store ids as indices
    palette.putpalette([v for c in PALETTE for v in c])
    buf = io.BytesIO()
    palette.save(buf, format="PNG")
    assert np.array_equal(ids_of(client.post("/labels", content=buf.getvalue(), headers=PNG)), ids)


def test_labels_of_another_size_are_resized_nearest(vae):
    _, client = vae
    big = scene(2, size=64)
    r = client.post("/labels", content=png(big), headers=PNG)
    assert r.status_code == 200 and "resized from 64x64 to 32x32" in r.json()["note"]
    assert np.array_equal(ids_of(r), np.asarray(Image.fromarray(big).resize((32, 32), Image.NEAREST)))


def test_labels_bad_input(vae):
    model, client = vae
    colours = np.array(PALETTE, np.uint8)[scene(0)]
    colours[3, 4] = (1, 2, 3)
    r = client.post("/labels?input=color", content=png(colours), headers=PNG)
    assert r.status_code == 400 and "not in this model's palette" in r.json()["error"]
    assert "rgb(1, 2, 3)" in r.json()["error"]
    r = client.post("/labels", content=png(colours), headers=PNG)  # colours sent as ids
    assert r.status_code == 400 and "colour visualisation" in r.json()["error"]
    r = client.post("/labels", content=png(np.full((32, 32), 9, np.uint8)), headers=PNG)
    assert r.status_code == 400 and "unknown class ids 9" in r.json()["error"]
    assert "0..8" in r.json()["error"]
    r = client.post("/labels", content=b"this is not an image", headers=PNG)
    assert r.status_code == 415 and "not a PNG" in r.json()["error"]
    buf = io.BytesIO()
    Image.fromarray(scene(0)).save(buf, format="JPEG")
    r = client.post("/labels", content=buf.getvalue(), headers=PNG)
    assert r.status_code == 415 and "lossless" in r.json()["error"]
    r = client.post("/labels", content=b"", headers=PNG)
    assert r.status_code == 400 and "no body" in r.json()["error"]
    r = client.post("/labels?input=rgb", content=png(scene(0)), headers=PNG)
    assert r.status_code == 400
    huge = png(np.zeros((5000, 4000), bool))  # a small file of a huge image
    r = client.post("/labels", content=huge, headers=PNG)
    assert r.status_code == 413 and "pixels" in r.json()["error"]
    r = client.post("/labels", content=b"\x89PNG" + bytes(17 * 2**20), headers=PNG)
    assert r.status_code == 413 and "MiB" in r.json()["error"]


# ----- synthesis
def test_synthesize_is_deterministic_with_a_seed(vae):
    _, client = vae
    body = png(scene(0))
    a = client.post("/synthesize?seed=7&samples=2", content=body, headers=PNG)
    b = client.post("/synthesize?seed=7&samples=2", content=body, headers=PNG)
    c = client.post("/synthesize?seed=8&samples=2", content=body, headers=PNG)
    assert a.status_code == 200 and a.json()["seed"] == 7 and len(a.json()["ms"]) == 2
    ia, ib, ic = images_of(a), images_of(b), images_of(c)
    assert len(ia) == 2 and ia[0].shape == (32, 32, 3)
    assert all(np.array_equal(x, y) for x, y in zip(ia, ib, strict=True))
    assert not np.array_equal(ia[0], ia[1]) and not np.array_equal(ia[0], ic[0])
    one = client.post("/synthesize?seed=7&format=png", content=body, headers=PNG)
    assert one.headers["content-type"] == "image/png" and np.array_equal(decode(one.content), ia[0])
    assert float(one.headers["x-generation-ms"]) > 0


def test_synthesize_matches_experiments_synthesize(vae, vae_run, tmp_path):
    """The page and the batch script go through the same code: same map, same seed, same image."""
    from condgen.eval.synthesize import synthesize_folder

    _, client = vae
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "a.png").write_bytes(png(scene(4)))
    synthesize_folder(vae_run, tmp_path / "maps", tmp_path / "out", samples=2, seed=3)
    page = images_of(client.post("/synthesize?seed=3&samples=2", content=png(scene(4)), headers=PNG))
    for k in range(2):
        batch = np.asarray(Image.open(tmp_path / "out" / "images" / "synthesized_image" / f"a_s{k:02d}.png"))
        assert np.array_equal(page[k], batch)


def test_synthesize_bad_input(vae):
    model, client = vae
    cases = [
        ("/synthesize", png(scene(0, size=64)), 400, "this model paints 32x32"),
        ("/synthesize", png(np.full((32, 32), 200, np.uint8)), 400, "unknown class ids 200"),
        ("/synthesize", b"GIF89a not a png", 415, "not a PNG"),
        ("/synthesize", b"", 400, "no body"),
        ("/synthesize?samples=0", png(scene(0)), 400, "samples must be 1..8"),
        ("/synthesize?samples=9", png(scene(0)), 400, "samples must be 1..8"),
        ("/synthesize?seed=abc", png(scene(0)), 400, "seed must be an integer"),
        ("/synthesize?seed=-1", png(scene(0)), 400, "seed must be"),
        ("/synthesize?style=0123456789abcdef", png(scene(0)), 404, "unknown style"),
        ("/synthesize?format=gif", png(scene(0)), 400, "format must be one of"),
    ]
    for path, body, status, text in cases:
        r = client.post(path, content=body, headers=PNG)
        assert r.status_code == status and text in r.json()["error"], (path, r.status_code, r.text)
    assert client.get("/synthesize").status_code == 405


def test_style_guided_synthesis(vae):
    model, client = vae
    photo = landscape(0, 5, 48, 48, split="val")["image"]  # any size: resized to the model's
    r = client.post("/style", content=png(photo), headers=PNG)
    assert r.status_code == 200 and r.json()["preview"].startswith("data:image/png;base64,")
    key = r.json()["style"]
    body = png(scene(0))
    a = images_of(client.post(f"/synthesize?seed=1&samples=2&style={key}", content=body, headers=PNG))
    b = images_of(client.post(f"/synthesize?seed=2&samples=2&style={key}", content=body, headers=PNG))
    free = images_of(client.post("/synthesize?seed=1", content=body, headers=PNG))
    assert np.array_equal(a[0], b[0])  # sample 0 is the style's posterior mean: no seed involved
    assert not np.array_equal(a[1], b[1]) and not np.array_equal(a[0], free[0])
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, format="JPEG")
    jpeg = client.post("/style", content=buf.getvalue(), headers={"Content-Type": "image/jpeg"})
    assert jpeg.status_code == 200
    r = client.post("/style", content=b"<html>", headers=PNG)
    assert r.status_code == 415 and "style image" in r.json()["error"]


def test_a_model_without_latent_or_encoder_says_so(coco):
    model, client = coco
    ids = np.zeros((32, 32), np.uint8)
    ids[:, 16:] = 156
    ids[10:20, 10:20] = 255  # don't care, as in the dataset's files
    r = client.post("/synthesize", content=png(ids), headers=PNG)
    assert r.status_code == 200 and len(images_of(r)) == 1
    assert model.last_labels[15, 15] == 182  # 255 -> the don't-care channel
    r = client.post("/synthesize?samples=2", content=png(ids), headers=PNG)
    assert r.status_code == 400 and "takes no latent" in r.json()["error"]
    r = client.post("/style", content=png(np.zeros((32, 32, 3), np.uint8)), headers=PNG)
    assert r.status_code == 409 and "no VAE style encoder" in r.json()["error"]
    saved = client.post("/labels?output=ids", content=png(ids), headers=PNG)
    assert np.array_equal(decode(saved.content), ids)  # don't care is written back as 255
    r = client.post("/labels", content=png(np.full((32, 32), 183, np.uint8)), headers=PNG)
    assert r.status_code == 400 and "255 (don't care)" in r.json()["error"]
    assert client.get("/examples").json() == {"examples": []}


# ----- command line
def test_cli_check_serves_on_localhost(vae_run, capsys):
    from condgen.cli.main import main
    from condgen.cli.paint import build_parser

    assert build_parser().parse_args(["--run", "x"]).host == "127.0.0.1"
    assert main(["paint", "--run", str(vae_run), "--check", "--port", "0"]) == 0
    out = capsys.readouterr().out
    assert "http://127.0.0.1:" in out and "check ok" in out and "32x32 image in" in out


def test_cli_refuses_a_missing_run(tmp_path, capsys):
    from condgen.cli.paint import main

    assert main(["--run", str(tmp_path / "nope"), "--check"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_describe_is_json(vae):
    model, _ = vae
    json.dumps(model.describe())


def test_localhost_server_refuses_other_host_names(vae):
    from condgen.cli.paint import LOOPBACK

    model, _ = vae
    app = create_app(model, allowed_hosts=LOOPBACK)
    assert TestClient(app, base_url="http://127.0.0.1:8000").get("/classes").status_code == 200
    assert TestClient(app, base_url="http://localhost:8000").get("/classes").status_code == 200
    assert TestClient(app, base_url="http://attacker.example").get("/classes").status_code == 400


def test_a_run_still_training_serves_its_newer_checkpoint(vae_run, tmp_path):
    """The painter started on a run whose trainer then saves step_5: /checkpoint offers it, /reload serves
    it (other weights, other photo), and says so when nothing newer is there."""
    import shutil

    from safetensors.torch import load_file, save_file

    run = shutil.copytree(vae_run, tmp_path / "run")
    model = PaintModel(run)
    with TestClient(create_app(model)) as client:
        body = png(scene(1))
        before = images_of(client.post("/synthesize?seed=0", content=body, headers=PNG))[0]
        assert client.get("/checkpoint").json()["newer_step"] is None
        assert client.post("/reload").json() == {"reloaded": False, "step": 0,
                                                 "checkpoint": str(run / "step_0")}
        # the trainer saves step_5 (G's weights moved) and points `latest` at it
        new = shutil.copytree(run / "step_0", run / "step_5")
        state = json.loads((new / "state.json").read_text())
        (new / "state.json").write_text(json.dumps(state | {"step": 5}))
        weights = load_file(new / "G.safetensors")
        halved = {k: v * 0.5 if v.is_floating_point() else v for k, v in weights.items()}
        save_file(halved, new / "G.safetensors")
        (run / "latest").write_text("step_5\n")
        assert client.get("/checkpoint").json()["newer_step"] == 5
        assert client.get("/classes").json()["step"] == 0  # nothing changes until asked
        answer = client.post("/reload").json()
        assert answer["reloaded"] and answer["step"] == 5
        assert client.get("/classes").json()["step"] == 5
        assert client.get("/checkpoint").json()["newer_step"] is None
        after = images_of(client.post("/synthesize?seed=0", content=body, headers=PNG))[0]
        assert np.abs(after.astype(int) - before.astype(int)).max() > 0
