"""What the painter refuses (docs/tutorials/09_paint.md, "Security"): other sites' pages, images that would
take more memory than their upload suggests, hosts that are not this machine."""

from __future__ import annotations

import io
import threading
import time
import tracemalloc

import numpy as np
import pytest
from PIL import Image, ImageFile

pytest.importorskip("starlette")
pytest.importorskip("httpx")
from starlette.testclient import TestClient  # noqa: E402

from condgen.data.landscapes import landscape  # noqa: E402
from condgen.paint.app import create_app  # noqa: E402
from condgen.paint.model import PaintModel  # noqa: E402
from tests.conftest import declared_png  # noqa: E402

PNG = {"Content-Type": "image/png"}


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def painter(vae_run):
    model = PaintModel(vae_run)
    with TestClient(create_app(model)) as client:  # its Host header is "testserver"
        yield model, client


def scene() -> bytes:
    return png(landscape(0, 0, 32, 32, split="val")["label"])


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
    {"Origin": "http://testserver.evil.example"},
    {"Origin": "http://127.0.0.1:8000"},  # another port or name than the one the page was served from
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
])  # fmt: skip
def test_posts_from_other_sites_are_refused(painter, headers):
    """A "simple" POST (text/plain, no preflight) from any web page in the user's browser: refused before
    any work is done (the style cache stays as it was)."""
    model, client = painter
    before = dict(model.styles)
    simple = {"Content-Type": "text/plain", **headers}
    for path in ("/synthesize", "/labels", "/style"):
        r = client.post(path, content=scene(), headers=simple)
        assert r.status_code == 403 and "another web site" in r.json()["error"], (path, r.text)
    assert model.styles == before


def test_the_page_itself_and_scripts_are_served(painter):
    _, client = painter
    page = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    for headers in ({}, {"Origin": "http://testserver"}, {"Sec-Fetch-Site": "same-origin"}, page,
                    {"Sec-Fetch-Site": "none"}):
        r = client.post("/synthesize", content=scene(), headers={**PNG, **headers})
        assert r.status_code == 200, (headers, r.text)
    # reading is not guarded (a page elsewhere cannot read the answers): the page loads as before
    assert client.get("/classes", headers={"Origin": "http://evil.example"}).status_code == 200


def test_an_image_over_pils_bomb_limit_is_a_clean_413(painter):
    """30000 x 30000 (0.9 gigapixels) is over PIL's own limit, whose error is not an OSError."""
    _, client = painter
    bomb = declared_png(30000, 30000)
    for path in ("/synthesize", "/labels", "/style"):
        r = client.post(path, content=bomb, headers=PNG)
        assert r.status_code == 413 and "30000x30000" in r.json()["error"], (path, r.text)


def test_the_declared_size_is_checked_before_decoding(painter, monkeypatch):
    model, client = painter
    big = png(np.zeros((4096, 4096), np.uint8))  # 16 KB, the largest size allowed

    def no_decoding(self):
        raise AssertionError("pixels decoded")

    with monkeypatch.context() as m:
        m.setattr(ImageFile.ImageFile, "load", no_decoding)
        r = client.post("/synthesize", content=big, headers=PNG)
        assert r.status_code == 400 and "this model paints 32x32" in r.json()["error"]
        r = client.post("/labels", content=declared_png(5000, 4000), headers=PNG)
        assert r.status_code == 413 and "pixels" in r.json()["error"]
    # where it is decoded (/labels resizes it), ids stay 8-bit: no int64 copies (~134 MB each)
    tracemalloc.start()
    ids, note = model.decode_labels(big, kind="ids", resize=True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert ids.shape == (32, 32) and ids.dtype == np.uint8 and "resized" in note
    assert peak < 3 * 4096 * 4096, f"{peak / 2**20:.0f} MiB of numpy arrays for a 16 MiB map"
    # a colour map is looked up in row blocks: no int64 keys or np.unique inverse over all its pixels
    from condgen.data.landscapes import PALETTE

    stripes = np.repeat(np.arange(4, dtype=np.uint8), 2048 * 512).reshape(2048, 2048)
    colours = np.array(PALETTE, np.uint8)[stripes]
    tracemalloc.start()
    ids, _ = model.decode_labels(png(colours), kind="color", resize=True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert sorted(np.unique(ids).tolist()) == [0, 1, 2, 3]
    assert peak < 16 * 2048 * 2048, f"{peak / 2**20:.0f} MiB of numpy arrays for a 2048 x 2048 colour map"


def test_concurrent_decodes_are_bounded(painter, monkeypatch):
    from condgen.paint import model as paint_model

    model, _ = painter
    active, most = [0], [0]
    lock = threading.Lock()
    original = PaintModel._image_ids

    def slow(self, img, what):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return original(self, img, what)

    monkeypatch.setattr(PaintModel, "_image_ids", slow)
    body = scene()
    threads = [threading.Thread(target=model.decode_labels, args=(body,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 1 <= most[0] <= paint_model.DECODER._max_workers < 8


def test_listening_beyond_localhost_warns_and_keeps_a_host_check(vae_run, capsys):
    from condgen.cli.paint import LOOPBACK, allowed_hosts, main

    assert main(["--run", str(vae_run), "--check", "--port", "0", "--host", "0.0.0.0"]) == 0
    err = capsys.readouterr().err
    assert "warning: --host 0.0.0.0" in err and "every machine" in err and str(vae_run) in err
    assert "requests must name this machine" in err
    hosts = allowed_hosts("0.0.0.0", ["paint.lan"])
    assert set(LOOPBACK) <= set(hosts) and "paint.lan" in hosts
    assert allowed_hosts("0.0.0.0", ["*"]) is None
    app = create_app(PaintModel(vae_run), allowed_hosts=hosts)
    assert TestClient(app, base_url="http://paint.lan:8000").get("/classes").status_code == 200
    assert TestClient(app, base_url="http://rebound.evil.example").get("/classes").status_code == 400
