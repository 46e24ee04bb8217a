"""`train()`'s settings have one statement of their defaults: `TrainSettings`; gin sees them as before."""

import dataclasses
import inspect

import gin
import pytest

from condgen.train.loop import train
from condgen.train.setup import SettingsError, TrainSettings


def test_train_signature_is_made_from_train_settings():
    params = inspect.signature(train).parameters
    assert list(params)[:3] == ["run_dir", "resume", "new_rng"]
    fields = dataclasses.fields(TrainSettings)
    assert list(params)[3:] == [f.name for f in fields]
    for f in fields:
        expected = gin.REQUIRED if f.default is dataclasses.MISSING else f.default
        assert params[f.name].default is expected or params[f.name].default == expected, f.name
        assert params[f.name].kind is inspect.Parameter.KEYWORD_ONLY
    # the function itself states no setting's default: nothing that could drift from TrainSettings
    assert inspect.unwrap(train).__kwdefaults__ == {"resume": False, "new_rng": False}


def test_gin_bindings_reach_the_settings_and_the_operative_config(tmp_path):
    with gin.unlock_config():
        gin.clear_config()
    gin.parse_config("train.dataset = @SyntheticLandscapes\ntrain.batch_size = 3\ntrain.lr = -1.0")
    with pytest.raises(SettingsError, match="train.lr = -1.0"):  # refused before anything touches the disk
        train(tmp_path / "run")
    assert not (tmp_path / "run").exists()
    operative = gin.operative_config_str()
    assert "train.batch_size = 3" in operative
    for f in dataclasses.fields(TrainSettings):  # every default is recorded, as config.gin records it
        if f.name != "objective":  # gin leaves out a default that is a class (not a literal), as before
            assert f"train.{f.name} = " in operative, f.name
    assert "train.niter = 50" in operative and "train.sample_at = ()" in operative
    with pytest.raises(ValueError, match="doesn't have a parameter named 'batchsize'"):
        gin.parse_config("train.batchsize = 3")  # an unknown setting is still refused at parse time
    gin.clear_config()


def test_missing_dataset_is_gins_required_error(tmp_path):
    gin.clear_config()
    with pytest.raises(RuntimeError, match="dataset"):
        train(tmp_path / "run")
    assert not (tmp_path / "run").exists()
