import pytest

from condgen.convert.official import parse_official_flags


@pytest.mark.parametrize(
    "flags, semantic_nc, size, up",
    [
        ("--dataset_mode coco", 184, (256, 256), "normal"),
        ("--dataset_mode ade20k", 151, (256, 256), "normal"),
        ("--dataset_mode cityscapes", 36, (256, 512), "more"),
        ("--dataset_mode custom --label_nc 12 --contain_dontcare_label", 14, (256, 256), "normal"),
        ("--dataset_mode custom --no_instance", 13, (256, 256), "normal"),
        ("--dataset_mode coco --crop_size 128 --num_upsampling_layers most", 184, (128, 128), "most"),
    ],
)
def test_dataset_mode_defaults_and_overrides(flags, semantic_nc, size, up):
    cfg = parse_official_flags("spade", flags)
    assert cfg.spec.semantic_nc == semantic_nc
    assert cfg.spec.size == size
    assert cfg.generator == "SPADEGenerator"
    assert cfg.generator_kwargs["num_upsampling_layers"] == up
    assert cfg.discriminator == "MultiscalePatchDiscriminator"


def test_spade_norm_string_is_read():
    cfg = parse_official_flags("spade", ["--norm_G", "spectralspadeinstance5x5", "--ngf", "32", "--use_vae"])
    g = cfg.generator_kwargs
    assert (g["norm_param_free"], g["norm_kernel_size"], g["spectral"]) == ("instance", 5, True)
    assert g["ngf"] == 32 and g["use_vae"] and cfg.use_vae


def test_ccfpse_defaults_and_cityscapes_more():
    cfg = parse_official_flags("ccfpse", "--dataset_mode coco --use_vae")
    assert (cfg.generator, cfg.discriminator) == ("CCFPSEGenerator", "FPSEDiscriminator")
    assert cfg.generator_kwargs["num_upsampling_layers"] == "normal"
    cs = parse_official_flags("ccfpse", "--dataset_mode cityscapes --netG condconv --netD fpse")
    assert cs.generator_kwargs["num_upsampling_layers"] == "more"


def test_bad_flags_have_clear_errors():
    with pytest.raises(ValueError, match="dataset_mode 'imagenet'"):
        parse_official_flags("spade", "--dataset_mode imagenet")
    with pytest.raises(ValueError, match="--netG 'pix2pixhd'"):
        parse_official_flags("spade", "--netG pix2pixhd")
    with pytest.raises(ValueError, match="repo must be one of"):
        parse_official_flags("gaugan2", "")
    with pytest.warns(UserWarning, match="--made_up_flag"):
        parse_official_flags("spade", "--made_up_flag 3")
