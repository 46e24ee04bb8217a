"""`condgen eval` end to end with the paper segmenters: synthesize -> segment -> score on the COCO-Stuff,
ADE20K and Cityscapes miniatures, the segmenters loading fixture-generated weights from the torch.hub folder
exactly as released files (the numbers are meaningless, the pipeline is real); plus the missing-file error,
the pins, the protocol records and `condgen weights`.
"""

import json

import pytest
import torch
from torch import nn

from condgen.cli.weights import list_weights
from condgen.eval.evaluate import evaluate
from condgen.eval.segmenters import Segmenter, get_segmenter, load_segmenter
from condgen.weights import WeightsMismatchError, WeightsNotFoundError, sha256_file
from tests.eval.conftest import train_tiny

pytestmark = pytest.mark.slow
TINY = ["SPADEGenerator.ngf = 4", "SPADE.hidden = 8", "MultiscalePatchDiscriminator.ndf = 4"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny SPADE run per paper dataset, on its miniature (32 px; Cityscapes 64x32)."""
    from condgen.data.miniature import make_miniature

    base = tmp_path_factory.mktemp("paper_runs")
    out = {}
    for layout, cls, size in (
        ("coco", "CocoStuff", 64),
        ("ade20k", "ADE20K", 64),
        ("cityscapes", "Cityscapes", 128),
    ):
        root = make_miniature(layout, base / layout, n=2, size=size)
        crop = 64 if layout == "cityscapes" else 32
        out[cls] = train_tiny(
            base / f"run_{layout}",
            *TINY,
            f"train.dataset = @{cls}",
            f"{cls}.root = '{root}'",
            f"{cls}.crop_size = {crop}",
            "train.max_steps = 1",
        )
    return out


class _CheapInception(nn.Module):
    """Stands in for the (random) FID Inception, ~9 s a call on 2 busy cores; FID is tested elsewhere."""

    name, weights_sha256, random_weights = "stub-inception", "random:stub", True

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, img):
        return torch.nn.functional.adaptive_avg_pool2d(img.float(), 2).flatten(1).double()


@pytest.fixture
def hub(paper_weights, monkeypatch):
    """torch.hub's checkpoint folder holds the three paper segmenters' files; downloads fail the test."""
    from condgen.eval import inception

    monkeypatch.setattr(inception, "InceptionFeatures", _CheapInception)

    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setenv("TORCH_HOME", str(paper_weights["torch_home"]))
    return paper_weights


def _eval(run, tmp_path, segmenter, **kw):
    return evaluate(
        run,
        out=tmp_path / f"{segmenter.replace(':', '_')}.json",
        num_images=2,
        random_inception=True,
        segmenter=segmenter,
        cache=tmp_path / "cache",
        kid_subsets=2,
        batch_size=2,
        **kw,
    )


def _check(rec, name, protocol, averaging, hub, k):
    m, seg = rec["metrics"], rec["protocol"]["segmenter"]
    assert 0 <= m["miou"] <= 1 and 0 <= m["real_miou"] <= 1 and len(m["per_class_iou"]) == k
    assert seg["name"] == name and seg["protocol_name"] == protocol and seg["averaging"] == averaging
    assert seg["seg_protocol"]["average"] == averaging and "same protocol" in seg["real_upper_bound"]
    files = hub["paths"][name]
    assert [w["sha256"] for w in seg["weights"]] == [sha256_file(f) for f in files]
    assert [w["path"] for w in seg["weights"]] == [str(f) for f in files]
    assert f"({protocol}, mean over {averaging})" in rec["protocol_line"]
    assert json.loads(open(rec["path"]).read())["protocol"]["segmenter"]["protocol_name"] == protocol


def test_coco_stuff_ccfpse_and_fullres(runs, hub, tmp_path):
    digest = sha256_file(hub["paths"]["deeplabv2_cocostuff"][0])
    rec = _eval(runs["CocoStuff"], tmp_path, "auto", segmenter_options={"expected_sha256": digest[:16]})
    _check(rec, "deeplabv2_cocostuff", "ccfpse", "gt", hub, 182)  # the dataset's default protocol
    assert rec["protocol"]["segmenter"]["input_size"] == [32, 32]  # fed as generated
    assert rec["protocol"]["segmenter"]["weights_sha256"] == digest
    full = _eval(runs["CocoStuff"], tmp_path, "auto:fullres")
    _check(full, "deeplabv2_cocostuff", "fullres", "gt", hub, 182)
    assert full["protocol"]["segmenter"]["labels"] == "original full-resolution files"


def test_pins_are_checked_before_anything_loads(hub):
    digest = sha256_file(hub["paths"]["deeplabv2_cocostuff"][0])
    with pytest.raises(WeightsMismatchError, match="pinned expected_sha256"):
        load_segmenter("deeplabv2_cocostuff", expected_sha256="0" * 64)
    with pytest.raises(ValueError, match="one digest per weight file"):
        load_segmenter("upernet101_ade20k", expected_sha256=[digest])


def test_ade20k_csail_recipe(runs, hub, tmp_path):
    rec = _eval(runs["ADE20K"], tmp_path, "auto")
    _check(rec, "upernet101_ade20k", "csail", "all", hub, 150)
    assert rec["protocol"]["segmenter"]["input_size"] == [256, 256]  # CSAIL: short side 256, multiple of 32
    old = load_segmenter("upernet101_ade20k:csail2019")  # the 2019 files' preprocessing, by name
    assert old.protocol.preprocess == "upernet_bgr2019" and old.describe((32, 32))["input_size"] == [256, 256]


def test_cityscapes_through_the_command_line(runs, hub, tmp_path, capsys):
    from condgen.cli.eval import main

    out = tmp_path / "city.json"
    weights = str(hub["paths"]["drn_d105_cityscapes"][0])
    code = main(
        [
            str(runs["Cityscapes"]),
            "--out",
            str(out),
            "--num_images",
            "2",
            "--random_inception",
            "--kid_subsets",
            "2",
            "--batch_size",
            "2",
            "--cache",
            str(tmp_path / "c"),
            "--segmenter",
            "drn_d105_cityscapes:512x256",
            "--weights",
            weights,
        ]
    )
    assert code == 0, capsys.readouterr().err
    rec = json.loads(out.read_text())
    rec["path"] = str(out)
    _check(rec, "drn_d105_cityscapes", "512x256", "gt_or_pred", hub, 19)
    assert rec["protocol"]["segmenter"]["input_size"] == [32, 64]


def test_cityscapes_2048x1024_feeds_full_size_and_scores_full_labels():
    """The protocol's plumbing with a stub network (the DRN itself at 2048x1024 is a minute on 2 cores)."""
    spec = get_segmenter("drn_d105_cityscapes")
    seen = []

    class Stub(nn.Module):
        def __init__(self):
            super().__init__()
            self.pool, self.seg = nn.AvgPool2d(8), nn.Conv2d(3, 19, 1)
            self.up = nn.ConvTranspose2d(19, 19, 16, 8, 4, groups=19, bias=False)

        def forward(self, x):
            seen.append(tuple(x.shape))
            return self.seg(self.pool(x))

    class Labels:
        def check_item(self, i):
            return torch.full((1024, 2048), 7, dtype=torch.long)  # labelId 7 'road' -> trainId 0

    seg = Segmenter(spec, Stub(), {}, spec.get_protocol("2048x1024"))
    conf = seg.confusion(torch.zeros(1, 3, 256, 512), torch.zeros(1, 1, 256, 512), ds=Labels(), indices=[0])
    assert seen == [(1, 3, 1024, 2048)] and conf.sum() == 1024 * 2048 and conf[0].sum() == conf.sum()
    with pytest.raises(ValueError, match="full-resolution"):
        seg.confusion(torch.zeros(1, 3, 256, 512), torch.zeros(1, 1, 256, 512))


def test_missing_weights_name_the_file_url_size_and_destination(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    for name in ("deeplabv2_cocostuff", "upernet101_ade20k", "drn_d105_cityscapes"):
        w = get_segmenter(name).weights[0]
        with pytest.raises(WeightsNotFoundError) as err:
            load_segmenter(name)
        msg = str(err.value)
        assert w.filenames[0] in msg and w.url in msg and w.size in msg
        assert msg.splitlines()[0].endswith(f"run: condgen weights fetch {name}")  # UperNet: the group
        assert str(tmp_path / "torch_home" / "hub" / "checkpoints" / w.filenames[0]) in msg


def test_missing_weights_through_condgen_eval(runs, tmp_path, monkeypatch, capsys):
    from condgen.cli.eval import main

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    code = main([str(runs["CocoStuff"]), "--num_images", "2", "--random_inception", "--cache", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "deeplabv2_resnet101_msc-cocostuff164k-100000.pth" in err and "224 MB" in err


def test_weights_command_lists_every_known_file(hub, capsys):
    rows = {(r["user"], r["file"]): r for r in list_weights()}
    assert {u for u, _ in rows} >= {
        "fid",
        "lpips",
        "vgg_loss",
        "segmenter:deeplabv2_cocostuff",
        "segmenter:upernet101_ade20k",
        "segmenter:drn_d105_cityscapes",
    }
    drn = rows[("segmenter:drn_d105_cityscapes", "drn-d-105_ms_cityscapes.pth")]
    assert drn["status"] == "present" and drn["sha256"] == sha256_file(hub["paths"]["drn_d105_cityscapes"][0])
    assert rows[("fid", "weights-inception-2015-12-05-6726825d.pth")]["status"] == "missing"
    from condgen.cli.main import main

    assert main(["weights", "--no_hash"]) == 0
    out = capsys.readouterr().out
    assert "present  segmenter:upernet101_ade20k" in out and "missing  fid" in out
