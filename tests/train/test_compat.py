"""Runs saved before the architecture change still load and resume.

Their `config.gin` binds the loss weights and classes on `train` (`train.lambda_feat = 10.0`,
`train.gan_loss = @GANLoss`); condgen reads them as the objective's bindings, with a warning, in saved
configs, gin files and bindings.
"""

import re
import warnings

import gin
import pytest

from condgen.cli.gin_setup import ConfigError, parse_gin
from condgen.config import translate_legacy
from condgen.rundir import CONFIG_FILE, checkpoint_dirs
from condgen.train.loop import train
from condgen.train.report import read_metrics
from condgen.train.state import load_run
from tests.train.test_loop import TINY

OLD_NAMES = re.compile(r"^Pix2PixHDObjective\.(lambda_\w+|\w+_loss) =", re.MULTILINE)


def as_old_config(text: str) -> str:
    """What condgen wrote before objectives were blocks: the same bindings on `train`."""
    return OLD_NAMES.sub(lambda m: f"train.{m[1]} =", text) + "train.gan_loss = @GANLoss\n"


def test_translation_keeps_everything_else():
    text = "train.lambda_vgg = 0.0\nscope/train.lambda_feat = 20.0\ntrain.lr = 1e-4\n# train.lambda_kld = 1\n"
    new, found = translate_legacy(text)
    assert new.splitlines() == [
        "Pix2PixHDObjective.lambda_vgg = 0.0",
        "scope/Pix2PixHDObjective.lambda_feat = 20.0",
        "train.lr = 1e-4",
        "# train.lambda_kld = 1",
    ]
    assert found == ["train.lambda_vgg", "train.lambda_feat"]


def test_a_run_saved_with_old_bindings_loads_and_resumes(tmp_path):
    parse_gin([TINY], ["train.max_steps = 2", "Pix2PixHDObjective.lambda_feat = 7.0"])
    train(tmp_path)
    for config in [tmp_path / CONFIG_FILE, *(c / CONFIG_FILE for c in checkpoint_dirs(tmp_path))]:
        old = as_old_config(config.read_text())
        assert "train.lambda_feat = 7.0" in old and "train.gan_loss = @GANLoss" in old
        config.write_text(old)

    with pytest.warns(UserWarning, match=r"train.lambda_feat -> Pix2PixHDObjective.lambda_feat"):
        gan, spec, info = load_run(tmp_path)
    assert info["step"] == 2 and spec.crop_size == 32
    assert gin.query_parameter("Pix2PixHDObjective.lambda_feat") == 7.0

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parse_gin([], ["train.max_steps = 4"], saved_config=checkpoint_dirs(tmp_path)[-1] / CONFIG_FILE)
    assert gin.query_parameter("Pix2PixHDObjective.lambda_feat") == 7.0  # the saved value, translated
    train(tmp_path, resume=True)
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3, 4]


def test_an_old_binding_on_the_command_line_still_works_and_a_typo_says_where_it_went():
    with pytest.warns(UserWarning, match="legacy gin bindings"):
        parse_gin([TINY], ["train.lambda_vgg = 0.0"])
    assert gin.query_parameter("Pix2PixHDObjective.lambda_vgg") == 0.0
    with pytest.raises(ConfigError, match=r"Did you mean 'lambda_vgg' \(now Pix2PixHDObjective.lambda_vgg\)"):
        parse_gin([TINY], ["train.lamda_vgg = 0.0"])


def test_a_generator_binding_reaches_every_preset():
    from condgen.networks.ccfpse_generator import CCFPSEGenerator
    from condgen.networks.spade_generator import SPADEGenerator

    gin.clear_config()
    gin.parse_config(
        [
            "Generator.ngf = 4",
            "SPADEGenerator.z_dim = 8",
            "FeaturePyramidCondition.width = 4",
            "CCResBlock.hidden = 8",
        ]
    )
    spade, cc = SPADEGenerator(13, crop_size=32), CCFPSEGenerator(13, crop_size=32)
    assert spade.conv_img.in_channels == 4 and cc.conv_img.in_channels == 4  # ngf reaches both presets
    assert spade.z_dim == 8 and cc.z_dim == 256  # a preset's own binding reaches only that preset
    assert not spade.use_vae and cc.use_vae  # the presets' defaults
    gin.clear_config()
