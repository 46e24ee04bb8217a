"""FD-DINOv2, CMMD, precision / recall, density / coverage end to end: random reduced extractors on a tiny run
(flagged meaningless), and the landscape segmenter's features (real numbers); extractor files and sizes."""

from __future__ import annotations

import json

import pytest
import torch

from condgen.eval.evaluate import evaluate
from condgen.eval.extractors import CLIP_VITL14_336, DINOV2_VITL14, CLIPFeatures, DINOv2Features, DINOv2ViT
from condgen.weights import WeightsNotFoundError

EXTRA = ("fd_dinov2", "cmmd", "precision_recall", "density_coverage")


def test_random_extractors_end_to_end(spade_run, tmp_path):
    from condgen.eval.metrics import CMMD, DensityCoverage, FDDINOv2, PrecisionRecall

    metrics = [
        FDDINOv2(random_weights=True),
        CMMD(random_weights=True),
        PrecisionRecall(random_weights=True),
        DensityCoverage(random_weights=True),
    ]
    rec = evaluate(
        spade_run,
        out=tmp_path / "m.json",
        num_images=7,
        metrics=metrics,
        segmenter=None,
        cache=tmp_path / "cache",
        batch_size=4,
    )
    m, p = rec["metrics"], rec["protocol"]
    assert m["fd_dinov2"] > 0 and m["cmmd"] > 0
    for key in ("precision", "recall", "density", "coverage"):
        assert m[key] >= 0 and (key == "density" or m[key] <= 1)
        assert (m[key] * 7 * (5 if key == "density" else 1)) == pytest.approx(
            round(m[key] * 7 * (5 if key == "density" else 1))
        )
    assert p["fd_dinov2"]["features"]["name"] == "dinov2-vit-l-14"
    assert (
        p["fd_dinov2"]["features"]["resize"] == "legacy_tf"
        and p["cmmd"]["features"]["resize"] == "torch_bicubic"
    )
    assert p["cmmd"]["sigma"] == 10.0 and p["cmmd"]["scale"] == 1000.0
    assert p["precision_recall"]["k"] == 3 and p["density_coverage"]["k"] == 5
    assert p["precision_recall"]["features"]["name"] == "dinov2-vit-l-14"
    # never called a score: every random network is named in `meaningless`, and the line says so
    assert sum("RANDOM" in w for w in p["meaningless"]) == 4 and "MEANINGLESS" in rec["protocol_line"]
    assert "cmmd on clip-vit-l-14-336px" in rec["protocol_line"]
    cols = {c["key"] for c in json.loads((tmp_path / "m.json").read_text())["columns"]}
    assert {"fd_dinov2", "cmmd", "precision", "recall", "density", "coverage"} <= cols


def test_segmenter_feature_space_gives_real_numbers(spade_run, tiny_segmenter, tmp_path):
    kw = dict(
        num_images=8,
        features="segmenter",
        segmenter=tiny_segmenter,
        cache=tmp_path,
        kid_subsets=3,
        extra=("precision_recall", "density_coverage"),
        knn_features="segmenter",
    )
    rec = evaluate(spade_run, out=tmp_path / "a.json", batch_size=4, **kw)
    m, p = rec["metrics"], rec["protocol"]
    assert p["meaningless"] == [] and p["precision_recall"]["features"]["name"] == "segmenter:landscape"
    assert 0 <= m["precision"] <= 1 and 0 <= m["coverage"] <= 1 and m["density"] >= 0
    again = evaluate(spade_run, out=tmp_path / "b.json", batch_size=3, **kw)  # cached real features
    assert again["protocol"]["density_coverage"]["real_features_cache"]["hit"]
    assert {k: again["metrics"][k] for k in ("precision", "recall", "density", "coverage")} == pytest.approx(
        {k: m[k] for k in ("precision", "recall", "density", "coverage")}
    )


def test_extractor_weights_are_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    for env in ("CONDGEN_DINOV2", "CONDGEN_CLIP"):
        monkeypatch.delenv(env, raising=False)
    for cls, wf in ((DINOv2Features, DINOV2_VITL14), (CLIPFeatures, CLIP_VITL14_336)):
        with pytest.raises(WeightsNotFoundError) as e:
            cls()
        msg = str(e.value)
        assert wf.filenames[0] in msg and wf.url in msg and str(tmp_path) in msg
        assert msg.splitlines()[0].endswith(f"run: condgen weights fetch {wf.key}")


def test_dinov2_keys_and_size_match_the_official_vitl14():
    with torch.device("meta"):
        net = DINOv2ViT()
    sd = net.state_dict()
    assert sum(v.numel() for v in sd.values()) == 304_368_640  # dinov2_vitl14 (304.4 M parameters)
    assert sd["pos_embed"].shape == (1, 1370, 1024) and sd["mask_token"].shape == (1, 1024)
    assert {"blocks.23.ls2.gamma", "blocks.0.attn.qkv.weight", "patch_embed.proj.bias", "norm.weight"} <= set(
        sd
    )


def test_dinov2_position_grid_and_resize_choice():
    a = DINOv2Features(random_weights=True)
    b = DINOv2Features(random_weights=True, resize="clean")
    img = torch.randint(0, 256, (2, 3, 40, 56), dtype=torch.uint8)
    fa, fb = a(img), b(img)
    assert fa.shape == (2, 64) and fa.dtype == torch.float64
    assert not torch.allclose(fa, fb)  # the resize mode changes the features, hence it is recorded
    assert a.net.pos_embed_for(16, 16).shape == (1, 257, 64)
    with pytest.raises(ValueError, match="resize='area'"):
        DINOv2Features(random_weights=True, resize="area")


def test_cli_metrics_flag_and_weights_listing(spade_run, tmp_path, capsys):
    from condgen.cli.eval import main
    from condgen.cli.weights import list_weights

    out = tmp_path / "cli.json"
    argv = [
        str(spade_run),
        "--out",
        str(out),
        "--num_images",
        "4",
        "--segmenter",
        "none",
        "--random_inception",
        "--kid_subsets",
        "2",
        "--metrics",
        "cmmd",
        "precision_recall",
        "--knn_features",
        "clip",
        "--resize",
        "clean",
        "--fid_resize",
        "clean",
        "--random_extractors",
        "--cache",
        str(tmp_path),
    ]
    assert main(argv) == 0
    p = json.loads(out.read_text())["protocol"]
    assert p["cmmd"]["features"]["resize"] == "clean" == p["precision_recall"]["features"]["resize"]
    assert p["precision_recall"]["features"]["name"] == "clip-vit-l-14-336px"
    assert p["features"]["resize"] == "clean (then rounded to 8 bits)"  # the FID Inception's
    assert main([*argv[:-2], "--metrics", "fid_dinov2"]) == 2
    assert "unknown metrics ['fid_dinov2']" in capsys.readouterr().err
    users = {r["user"]: r for r in list_weights(hash_files=False)}
    assert users["fd_dinov2"]["file"] == "dinov2_vitl14_pretrain.pth"
    assert users["cmmd"]["url"] == CLIP_VITL14_336.url


def test_weight_files_load_through_the_real_path(tmp_path, monkeypatch):
    """A DINOv2 checkpoint and an OpenAI-style TorchScript CLIP archive (reduced sizes, random values) load
    through the same code as the released files: sizes from the file, keys checked, digest recorded."""
    import dataclasses

    from torch_fidelity.feature_extractor_clip import CLIPVisual

    import condgen.eval.extractors as ex

    with torch.random.fork_rng():
        torch.manual_seed(1)
        dino = DINOv2ViT(64, 2, 1, grid=5)
    torch.save(dino.state_dict(), tmp_path / "dinov2.pth")
    feats = DINOv2Features(weights=str(tmp_path / "dinov2.pth"))
    assert feats.dim == 64 and len(feats.net.blocks) == 2 and len(feats.weights_sha256) == 64
    img = torch.randint(0, 256, (2, 3, 30, 30), dtype=torch.uint8)
    x = (
        ex.resize_images(img, (224, 224), "legacy_tf") - torch.tensor(feats.mean).view(1, 3, 1, 1)
    ) / torch.tensor(feats.std).view(1, 3, 1, 1)
    torch.testing.assert_close(feats(img), dino(x).double())

    class OpenAIFile(torch.nn.Module):  # what OpenAI's archive holds: the vision tower + text-side tensors
        def __init__(self) -> None:
            super().__init__()
            self.visual = CLIPVisual(768, 336, 2, 64, 14).visual
            self.text_projection = torch.nn.Parameter(torch.randn(32, 768))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.visual(x)

    torch.jit.save(torch.jit.script(OpenAIFile()), str(tmp_path / "clip.pt"))
    unpinned = dataclasses.replace(CLIP_VITL14_336, sha256=None)  # the real file's digest would not match
    monkeypatch.setattr(ex, "CLIP_VITL14_336", unpinned)
    clip = CLIPFeatures(weights=str(tmp_path / "clip.pt"))
    assert clip.dim == 768 and clip(img).shape == (2, 768) and not clip.random_weights


def test_fid_inception_with_clean_resize():
    """`clean` reaches torch-fidelity's Inception as a 299x299 8-bit image (its own resize is then the
    identity): equal to legacy_tf on a 299x299 input, different on a small one; recorded either way."""
    from types import SimpleNamespace

    from condgen.eval.metrics.fid import FeatureSpace

    ctx = SimpleNamespace(device="cpu")
    legacy, clean = (
        FeatureSpace("inception", ctx, weights=None, random_weights=True, resize=r)
        for r in ("legacy_tf", "clean")
    )
    assert (
        legacy.record["resize"] == "legacy_tf" and clean.record["resize"] == "clean (then rounded to 8 bits)"
    )
    g = torch.Generator().manual_seed(0)
    big, small = (torch.rand(1, 3, h, w, generator=g) * 2 - 1 for h, w in ((299, 299), (40, 56)))
    torch.testing.assert_close(legacy(big, "a"), clean(big, "a"))
    assert not torch.allclose(legacy(small, "b"), clean(small, "b"))
    with pytest.raises(ValueError, match="segmenter's protocol"):
        FeatureSpace("segmenter", ctx, weights=None, random_weights=False, resize="clean")
