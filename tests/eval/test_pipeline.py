"""`condgen.load` / `SynthesisPipeline`: the same pixels as the synthesis before it, through every way in.

The reference ("the old path") is written out here from the primitives the previous `synthesize` used:
`load_run`, 255 -> don't care, `encode_labels`, latents from numpy's SeedSequence of (seed, map, sample),
one `G` call, the 8-bit rounding of its PNGs; nothing of `condgen.infer` is used for it.
"""

import json
import shutil
import warnings

import gin
import numpy as np
import pytest
import torch
from PIL import Image

import condgen
from condgen.config import preserved_gin
from condgen.data.labels import encode_labels
from condgen.data.landscapes import export_landscapes
from condgen.eval.synthesize import synthesize_folder
from condgen.infer import UnsupportedInput
from condgen.infer.pretrained import ChecksumError


@pytest.fixture(scope="module")
def maps(tmp_path_factory):
    root = export_landscapes(tmp_path_factory.mktemp("maps"), 3, size=32, split="val")
    return root / "labels", root / "images"


def label_ids(folder, size):
    h, w = size
    out = []
    for f in sorted(folder.iterdir()):
        img = Image.open(f)
        img = img if img.size == (w, h) else img.resize((w, h), Image.NEAREST)
        out.append(torch.from_numpy(np.asarray(img).astype(np.int64)))
    return torch.stack(out)


def old_path(run, ids, *, seed, samples, instance=None):
    """(b, samples, H, W, 3) uint8 as the pre-pipeline synthesize computed them."""
    from condgen.train.state import load_run

    with preserved_gin():
        gan, spec, _ = load_run(run)
    label = ids[:, None].long()
    if spec.contain_dontcare_label:
        label = label.masked_fill(label == 255, spec.label_nc)
    seg = encode_labels(label, spec.label_nc, contain_dontcare_label=spec.contain_dontcare_label,
                        instance=instance, instance_edges=spec.instance_edges)
    G = gan.G
    cond = getattr(G, "condition", None)
    z_dim = cond.z_dim if type(cond).__name__ == "NoiseCondition" else getattr(G, "z_dim", None)
    multimodal = type(cond).__name__ == "NoiseCondition" or getattr(G, "use_vae", False)

    def z(i, k):
        state = np.random.SeedSequence([seed, i, k]).generate_state(2, dtype=np.uint64)
        return torch.randn(z_dim, generator=torch.Generator().manual_seed(int(state[0] >> np.uint64(1))))

    out = []
    with torch.no_grad():
        for k in range(samples):
            if multimodal:
                img = G(seg, torch.stack([z(i, k) for i in range(len(ids))]))
            else:
                img = G(seg)
            out.append(((img.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return np.stack(out, axis=1)


@pytest.mark.parametrize("run_name", ["spade_run", "vae_run", "oasis_run"])
def test_load_gives_the_old_synthesis_pixels(run_name, maps, request, tmp_path):
    run = request.getfixturevalue(run_name)
    gin.bind_parameter("train.seed", 123)  # a caller's config: loading must leave it as it is
    before = gin.config_str()
    pipe = condgen.load(run)
    assert gin.config_str() == before and gin.query_parameter("train.seed") == 123
    gin.clear_config()
    ids = label_ids(maps[0], pipe.spec.size)
    samples = 1 if pipe.latent_kind is None else 2
    ref = old_path(run, ids, seed=3, samples=samples)
    got = pipe(ids, seed=3, samples=samples, output_type="np")
    assert got.dtype == np.uint8 and np.array_equal(got, ref)
    pil = pipe(maps[0], seed=3, samples=samples)  # label PNGs in, PIL images out, map by map
    assert len(pil) == 3 * samples and all(isinstance(p, Image.Image) for p in pil)
    assert np.array_equal(np.stack([np.asarray(p) for p in pil]), ref.reshape(-1, *ref.shape[2:]))
    rec = synthesize_folder(pipe, maps[0], tmp_path / "s", seed=3, samples=samples, batch_size=2)
    files = [np.asarray(Image.open(tmp_path / "s" / f)) for f in rec["files"]]
    assert np.array_equal(np.stack(files), ref.reshape(-1, *ref.shape[2:]))


def test_state_json_records_dataset_and_paper_names(spade_run):
    from condgen.rundir import latest_checkpoint, read_state

    state = read_state(latest_checkpoint(spade_run))
    assert state["dataset"]["name"] == "SyntheticLandscapes" and len(state["dataset"]["classes"]) == 9
    assert state["paper_names"] == {"G": "SPADE", "D": "MsPatch"}
    pipe = condgen.load(spade_run)
    assert pipe.dataset.source == "state.json"
    assert pipe.dataset.class_names[0] == state["dataset"]["classes"][0]
    assert pipe.dataset.palette is not None and pipe.paper_names == ("SPADE", "MsPatch")
    assert pipe.params["G"] == sum(p.numel() for p in pipe.G.parameters())


def test_an_old_run_derives_its_dataset_and_warns_once(spade_run, tmp_path):
    from condgen.rundir import latest_checkpoint

    old = tmp_path / "old"
    shutil.copytree(spade_run, old)
    state_file = latest_checkpoint(old) / "state.json"
    state = json.loads(state_file.read_text())
    del state["dataset"], state["paper_names"]
    state_file.write_text(json.dumps(state))
    with pytest.warns(UserWarning, match="records no dataset.*derived from config.gin: SyntheticLandscapes"):
        pipe = condgen.load(old)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = condgen.load(old)
    assert pipe.dataset == again.dataset and pipe.dataset.name == "SyntheticLandscapes"
    assert pipe.dataset.class_names == condgen.load(spade_run).dataset.class_names
    assert pipe.paper_names == ("SPADE", "MsPatch")


@pytest.mark.parametrize("repo, flags", [
    ("spade", "--dataset_mode custom --label_nc 9 --no_instance --crop_size 32 --load_size 32 --ngf 4"),
    ("ccfpse", "--dataset_mode coco --crop_size 32 --load_size 32 --ngf 4"),
])
def test_a_converted_official_checkpoint_through_load(repo, flags, tmp_path):
    from condgen.convert.export import official_config_gin, write_run_dir
    from condgen.convert.official import load_official, parse_official_flags

    cfg = parse_official_flags(repo, flags)
    torch.manual_seed(0)
    nets = load_official(repo, flags)
    out = write_run_dir(tmp_path / "official", nets, official_config_gin(cfg, flags), cfg.spec,
                        {"repo": repo, "flags": flags})
    pipe = condgen.load(out)
    assert pipe.provenance["kind"] == "converted official"
    h, w = pipe.spec.size
    ids = torch.randint(0, pipe.spec.label_nc, (2, h, w))
    instance = None
    if pipe.spec.contain_dontcare_label:
        ids[:, :4, :4] = 255  # unlabelled pixels, as COCO-Stuff's PNGs have them
    if pipe.spec.instance_edges:
        instance = ids[:, None].clone()
    ref = old_path(out, ids, seed=0, samples=1, instance=instance)
    assert np.array_equal(pipe(ids, seed=0, instance=instance, output_type="np"), ref)
    if repo == "ccfpse":
        assert pipe.dataset.name == "CocoStuff" and pipe.dataset.dontcare == 182
        assert pipe.dataset.class_names[0] == "person" and pipe.paper_names[0] == "CC w/ FP"


def test_a_loaded_model_computes_with_its_runs_switches_not_the_callers(tmp_path):
    """The ops' speed switches (label-sparse mode, the depthwise op) are read once at load from the run's
    config: a caller's gin bindings, even invalid ones, no longer reach the generator."""
    from condgen.convert.export import official_config_gin, write_run_dir
    from condgen.convert.official import load_official, parse_official_flags

    flags = "--dataset_mode coco --crop_size 32 --load_size 32 --ngf 4"
    cfg = parse_official_flags("ccfpse", flags)
    torch.manual_seed(0)
    nets = load_official("ccfpse", flags)
    out = write_run_dir(tmp_path / "official", nets, official_config_gin(cfg, flags), cfg.spec,
                        {"repo": "ccfpse", "flags": flags})
    pipe = condgen.load(out)
    assert set(pipe.switches) == {"label_sparse", "cond_depthwise_impl"}
    ids = torch.randint(0, pipe.spec.label_nc, (1, *pipe.spec.size))
    ref = pipe(ids, seed=0, instance=ids[:, None].clone(), output_type="np")
    gin.parse_config("label_sparse.mode = 'bogus'\ncond_depthwise_conv2d.impl = 'bogus'")
    try:
        assert np.array_equal(pipe(ids, seed=0, instance=ids[:, None].clone(), output_type="np"), ref)
    finally:
        gin.clear_config()


def test_save_pretrained_round_trip_is_exact(vae_run, maps, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(vae_run, run)
    (run / "eval").mkdir(exist_ok=True)
    (run / "eval" / "val_step2_inception.json").write_text(
        json.dumps({"metrics": {"fid": 12.5}, "protocol_line": "3 val images at 32x32", "protocol": {}})
    )
    pipe = condgen.load(run)
    folder = pipe.save_pretrained(tmp_path / "tiny-vae")
    names = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "config.gin", "classes.json", "protocol.json", "README.md",
            "pipeline.json"} <= names
    back = condgen.load(folder)
    for name in ("G", "E"):
        a, b = pipe.named()[name].state_dict(), back.named()[name].state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert back.D is None and back.params == pipe.params and back.dataset == pipe.dataset
    assert back.config == pipe.config and back.spec == pipe.spec and back.paper_names == pipe.paper_names
    ids = label_ids(maps[0], pipe.spec.size)
    ref = old_path(run, ids, seed=1, samples=2)
    assert np.array_equal(back(ids, seed=1, samples=2, output_type="np"), ref)
    style = pipe.encode_style(sorted(maps[1].iterdir())[0])
    assert torch.equal(back.encode_style(sorted(maps[1].iterdir())[0])[0], style[0])
    assert np.array_equal(back(ids, seed=1, style=style, output_type="np"),
                          pipe(ids, seed=1, style=style, output_type="np"))
    classes = json.loads((folder / "classes.json").read_text())
    assert [c["name"] for c in classes["classes"]] == list(pipe.dataset.class_names)
    protocol = json.loads((folder / "protocol.json").read_text())
    assert protocol[0]["metrics"] == {"fid": 12.5}
    card = (folder / "README.md").read_text()
    front = card.split("---")[1]
    assert 'license: "other"' in front and '- "SyntheticLandscapes"' in front and '- "fid"' in front
    assert "base_model:" in front and "| fid | 12.5 | 3 val images at 32x32 |" in card
    # a save_pretrained folder of a save_pretrained folder is the same folder
    again = back.save_pretrained(tmp_path / "again")
    for f in ("model.safetensors", "classes.json", "protocol.json", "config.gin"):
        assert (again / f).read_bytes() == (folder / f).read_bytes(), f


def test_a_wrong_sha256_stops_with_the_file_and_both_hashes(spade_run, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = condgen.load(spade_run).save_pretrained(tmp_path / "m")
    expected = json.loads((folder / "pipeline.json").read_text())["files"]["model.safetensors"]
    weights = load_file(str(folder / "model.safetensors"))
    key = next(iter(weights))
    weights[key] = weights[key] + 1
    save_file(weights, str(folder / "model.safetensors"))
    with pytest.raises(ChecksumError, match="model.safetensors: sha256 mismatch: expected") as err:
        condgen.load(folder)
    assert expected in str(err.value) and "found" in str(err.value)


def fake_hub(cache, repo_id, folder, revision="0123456789abcdef0123456789abcdef01234567"):
    """A Hugging Face cache holding `folder` as `repo_id` at `revision` (the library's own layout)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(folder, repo / "snapshots" / revision)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    return repo


def test_a_hub_name_resolves_offline_from_the_cache(spade_run, maps, tmp_path, monkeypatch):
    import huggingface_hub.constants as hf

    from condgen.infer.pretrained import MODELS, PretrainedModel, register_pretrained
    from condgen.weights import sha256_file

    pipe = condgen.load(spade_run)
    folder = pipe.save_pretrained(tmp_path / "m")
    cache = tmp_path / "hf"
    fake_hub(cache, "condgen-test/tiny-spade", folder)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(cache))
    ids = label_ids(maps[0], pipe.spec.size)
    ref = pipe(ids, seed=0, output_type="np")
    by_repo = condgen.load("condgen-test/tiny-spade", local_files_only=True)
    assert np.array_equal(by_repo(ids, seed=0, output_type="np"), ref)
    entry = PretrainedModel(
        "tiny-spade", "test", "SyntheticLandscapes", (), "other", "spade", "", "", {}, "",
        hub_repo="condgen-test/tiny-spade",
        hub_files={"model.safetensors": sha256_file(folder / "model.safetensors")},
    )
    monkeypatch.setitem(MODELS, "tiny-spade", entry)
    assert np.array_equal(condgen.load("tiny-spade")(ids, seed=0, output_type="np"), ref)
    register_pretrained(  # the registered hash is not the file's: stop before loading anything
        PretrainedModel(**{**entry.__dict__, "hub_files": {"model.safetensors": "0" * 64}})
    )
    wrong = f"model.safetensors: sha256 mismatch: expected {'0' * 64}, found "
    with pytest.raises(ChecksumError, match=wrong):
        condgen.load("tiny-spade")
    with pytest.raises(FileNotFoundError, match="not in the local Hugging Face cache"):
        condgen.load("condgen-test/absent", local_files_only=True)


def test_a_registered_name_without_a_hub_copy_says_how_to_fetch_and_convert(tmp_path, monkeypatch):
    from condgen.infer.pretrained import MODELS
    from condgen.weights import WEIGHT_FILES, WeightFile

    monkeypatch.setenv("CONDGEN_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        condgen.load("spade-coco")
    msg = str(err.value)
    assert "is not converted yet" in msg and "cc-by-nc-sa-4.0" in msg
    assert "download by hand" in msg and "https://github.com/NVlabs/SPADE" in msg
    assert f"--out {tmp_path / 'pretrained' / 'spade-coco'}" in msg
    assert "python -m condgen.convert spade" in msg
    # once the release is a declared weight file, the message gives its fetch command instead
    declared = WeightFile("SPADE releases", ("checkpoints.tar.gz",), "https://example.invalid/x", None,
                          name="spade-coco")
    monkeypatch.setitem(WEIGHT_FILES, "spade-coco", declared)
    fetch = "Fetch the official release: condgen weights fetch spade-coco"
    with pytest.raises(FileNotFoundError, match=fetch):
        condgen.load("spade-coco")
    (tmp_path / "pretrained" / "spade-coco").mkdir(parents=True)  # converted: the folder is what loads
    with pytest.raises(FileNotFoundError, match="spade-coco is neither a checkpoint nor a run directory"):
        condgen.load("spade-coco")
    assert MODELS["spade-coco"].reported == {"mIoU": 37.4, "accu": 67.9, "FID": 22.6}
    assert MODELS["oasis-ade20k"].license == "agpl-3.0"


def test_push_to_hub_uploads_the_saved_folder(spade_run, monkeypatch):
    import huggingface_hub

    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, private=False, exist_ok=False):
            calls["repo"] = (repo_id, private, exist_ok)

        def upload_folder(self, folder_path, repo_id, commit_message):
            from pathlib import Path

            calls["files"] = sorted(p.name for p in Path(folder_path).iterdir())
            calls["card"] = (Path(folder_path) / "README.md").read_text()
            return "commit-url"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    assert condgen.load(spade_run).push_to_hub("me/tiny", private=True, token="t") == "commit-url"
    assert calls["repo"] == ("me/tiny", True, True) and calls["token"] == "t"
    assert {"model.safetensors", "config.gin", "README.md", "classes.json"} <= set(calls["files"])
    assert "# me/tiny" in calls["card"]


def test_unsupported_inputs_name_the_model_kind(spade_run, oasis_run, maps, tmp_path):
    pipe = condgen.load(spade_run)
    ids = label_ids(maps[0], pipe.spec.size)
    with pytest.raises(UnsupportedInput, match="region_styles= is not supported.*latent kind 'none'"):
        pipe(ids, seed=0, region_styles={1: "x"})
    with pytest.raises(NotImplementedError, match="steps= is not supported"):
        pipe(ids, seed=0, steps=50)
    with pytest.raises(ValueError, match="takes no latent"):
        pipe(ids, seed=0, samples=2)
    with pytest.raises(UnsupportedInput, match="VAE style encoder"):
        pipe.encode_style(sorted(maps[1].iterdir())[0])
    oasis = condgen.load(oasis_run)
    ids = label_ids(maps[0], oasis.spec.size)
    cls = int(ids[0].flatten()[0])
    got = oasis.resample(ids, cls, seed=2, samples=3, output_type="np")
    rec = synthesize_folder(oasis, maps[0], tmp_path / "r", seed=2, samples=3, resample_class=cls)
    files = np.stack([np.asarray(Image.open(tmp_path / "r" / f)) for f in rec["files"]])
    assert np.array_equal(got.reshape(files.shape), files)
    assert np.array_equal(got[:, 0], oasis(ids, seed=2, output_type="np")[:, 0])


def test_training_encodes_labels_through_the_one_route(monkeypatch):
    from condgen.data.spec import DataSpec
    from condgen.train.setup import to_device

    seen = []
    original = DataSpec.encode

    def spy(self, label, instance=None, *, source="label map"):
        seen.append(source)
        return original(self, label, instance, source=source)

    monkeypatch.setattr(DataSpec, "encode", spy)
    spec = DataSpec(label_nc=3, contain_dontcare_label=True)
    label = torch.tensor([[[[0, 255], [1, 2]]]])
    batch = {"label": label, "image": torch.zeros(1, 3, 2, 2), "path": ["a.png"]}
    seg, _ = to_device(batch, spec, torch.device("cpu"))
    assert seen == ["batch of a.png"] and seg[0, 3, 0, 1] == 1 and seg.shape == (1, 4, 2, 2)


def test_the_ema_generator_travels_with_the_folder(spade_run, tmp_path):
    from safetensors.torch import load_file, save_file

    from condgen.rundir import latest_checkpoint

    run = tmp_path / "run"
    shutil.copytree(spade_run, run)
    ckpt = latest_checkpoint(run)
    weights = load_file(str(ckpt / "model.safetensors"))  # G, as an EMA copy that differs from it
    ema = {k: v * 0.5 if v.is_floating_point() else v for k, v in weights.items()}
    save_file(ema, str(ckpt / "ema.safetensors"))
    folder = condgen.load(run).save_pretrained(tmp_path / "m")
    assert (folder / "ema.safetensors").is_file()
    for ema in (False, True):
        a, b = condgen.load(run, ema=ema).G.state_dict(), condgen.load(folder, ema=ema).G.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), ema
    plain, ema = condgen.load(folder).G.state_dict(), condgen.load(folder, ema=True).G.state_dict()
    assert any(not torch.equal(plain[k], ema[k]) for k in plain)
    again = condgen.load(folder).save_pretrained(tmp_path / "again")  # a folder's EMA file is kept too
    assert (again / "ema.safetensors").read_bytes() == (folder / "ema.safetensors").read_bytes()


def test_evaluate_takes_a_pipeline_and_leaves_gin_as_it_was(vae_run, tmp_path):
    from condgen.eval.evaluate import evaluate

    pipe = condgen.load(vae_run)
    gin.clear_config()
    gin.bind_parameter("train.seed", 5)
    before = gin.config_str()
    rec = evaluate(pipe, metrics=[], segmenter=None, num_images=2, out=tmp_path / "m.json")
    assert gin.config_str() == before  # the run's config was active only during the evaluation
    assert rec["protocol"]["source"] == pipe.provenance and rec["protocol"]["images"] == 2
    assert rec["protocol"]["dataset"] == "SyntheticLandscapes"  # built with the run's dataset bindings
    gin.clear_config()
