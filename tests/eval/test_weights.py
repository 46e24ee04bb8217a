"""Offline weight policy: missing files and wrong digests are clear errors; loading never downloads."""

import dataclasses

import pytest
import torch

from condgen.eval import inception as inception_mod
from condgen.eval.inception import INCEPTION, InceptionFeatures
from condgen.weights import (
    WeightFile,
    WeightsMismatchError,
    WeightsNotFoundError,
    cache_dir,
    sha256_file,
)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch, tmp_path):
    """Any download attempt fails the test; torch.hub's cache points at an empty folder."""

    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("CONDGEN_INCEPTION", raising=False)


def test_missing_file_names_the_file_the_url_and_the_destination(tmp_path):
    with pytest.raises(WeightsNotFoundError) as err:
        INCEPTION.resolve()
    msg = str(err.value)
    assert "weights-inception-2015-12-05-6726825d.pth" in msg and INCEPTION.url in msg
    assert str(tmp_path / "torch_home" / "hub" / "checkpoints") in msg
    assert msg.endswith("run: condgen weights fetch inception")
    with pytest.raises(WeightsNotFoundError):
        InceptionFeatures()


def test_digest_is_checked_in_full_or_by_prefix(tmp_path):
    f = tmp_path / "w.pth"
    f.write_bytes(b"not the weights")
    digest = sha256_file(f)
    assert WeightFile("x", ("w.pth",), "u", digest).resolve(f) == f
    assert WeightFile("x", ("w.pth",), "u", digest[:8]).resolve(f) == f
    assert WeightFile("x", ("w.pth",), "u", None).resolve(f) == f  # unpinned: accepted, digest recorded
    with pytest.raises(WeightsMismatchError, match="does not match"):
        WeightFile("x", ("w.pth",), "u", "0" * 64).resolve(f)


def test_environment_variable_and_hub_folder_are_searched(tmp_path, monkeypatch):
    f = tmp_path / "elsewhere.pth"
    f.write_bytes(b"abc")
    spec = WeightFile("x", ("w.pth",), "u", None, env="CONDGEN_TEST_W")
    monkeypatch.setenv("CONDGEN_TEST_W", str(f))
    assert spec.resolve() == f
    monkeypatch.delenv("CONDGEN_TEST_W")
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "w.pth").write_bytes(b"abc")
    assert spec.resolve() == hub / "w.pth"


def test_cache_dir_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CONDGEN_CACHE", str(tmp_path / "c"))
    assert cache_dir("stats") == tmp_path / "c" / "stats"


def test_inception_loads_a_verified_file_strictly(tmp_path, monkeypatch):
    random_net = InceptionFeatures(random_weights=True, seed=3)
    f = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    torch.save(random_net.net.state_dict(), f)
    monkeypatch.setattr(inception_mod, "INCEPTION", dataclasses.replace(INCEPTION, sha256=sha256_file(f)))
    loaded = InceptionFeatures(weights=str(f))
    assert loaded.weights_sha256 == sha256_file(f) and not loaded.random_weights
    img = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    a, b = random_net(img), loaded(img)
    assert a.shape == (2, 2048) and a.dtype == torch.float64
    assert torch.equal(a, b)
    assert a.std() > 1e-3  # the random network is informative (default init would give ~1e-8)
    with pytest.raises(TypeError, match="uint8"):
        loaded(img.float())
    with pytest.raises(WeightsMismatchError):  # the published digest rejects this file
        monkeypatch.setattr(inception_mod, "INCEPTION", INCEPTION)
        InceptionFeatures(weights=str(f))
