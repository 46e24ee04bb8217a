"""SPADEGenerator (and the shared Generator skeleton it configures)."""

import gin
import pytest
import torch

from condgen.blocks.condition import LabelMapCondition
from condgen.blocks.spade import SPADE, SPADEResBlock
from condgen.networks.generator import Generator
from condgen.networks.spade_generator import SPADEGenerator
from condgen.registry import create, get
from condgen.utils import count_parameters

SEM = 5


def _small(**kw):
    gin.parse_config("SPADE.hidden = 8")  # keep the full-resolution SPADE convs cheap
    return SPADEGenerator(SEM, ngf=2, **kw)


# (mode, crop_size, aspect_ratio) -> (H, W) of the output; the smallest crops each mode allows, and portrait.
SHAPES = [
    ("normal", 64, 1.0, (64, 64)),
    ("normal", 128, 2.0, (64, 128)),
    ("normal", 64, 0.5, (128, 64)),
    ("more", 128, 1.0, (128, 128)),
    ("more", 256, 2.0, (128, 256)),
    ("most", 256, 1.0, (256, 256)),
    ("most", 256, 2.0, (128, 256)),
]


@pytest.mark.parametrize("mode, crop, ar, hw", SHAPES)
@pytest.mark.parametrize("use_vae", [False, True])
def test_output_shapes(mode, crop, ar, hw, use_vae):
    G = _small(crop_size=crop, aspect_ratio=ar, num_upsampling_layers=mode, use_vae=use_vae).eval()
    seg = torch.rand(2, SEM, *hw)
    with torch.no_grad():
        out = G(seg, torch.randn(2, 256) if use_vae else None)
    assert out.shape == (2, 3, *hw)
    assert out.abs().max() <= 1
    names = [n for n, _ in G.named_children() if n.startswith(("head", "G_middle", "up_"))]
    assert ("up_4" in names) == (mode == "most") and len(names) == 7 + (mode == "most")
    assert G.conv_img.in_channels == (1 if mode == "most" else 2)


def test_latent_sizes_match_official():
    """sw = crop // 2**num_up, sh = round(sw / aspect_ratio) (official compute_latent_vector_size)."""
    G = SPADEGenerator(SEM, ngf=2)
    assert (G.sh, G.sw) == (8, 8)
    G = SPADEGenerator(SEM, ngf=2, crop_size=512, aspect_ratio=2.0, num_upsampling_layers="more")
    assert (G.sh, G.sw) == (4, 8)
    G = SPADEGenerator(
        SEM, ngf=2, use_vae=True, crop_size=512, aspect_ratio=2.0, num_upsampling_layers="more"
    )
    assert G.fc.weight.shape == (32 * 4 * 8, 256)


def test_vae_input():
    G = _small(crop_size=64, use_vae=True).eval()
    seg = torch.rand(2, SEM, 64, 64)
    z = torch.randn(2, 256)
    with torch.no_grad():
        a, b = G(seg, z), G(seg, z)
        c = G(seg, torch.randn(2, 256))
        d = G(seg)  # z ~ N(0, I) sampled on seg's device (works on CPU, unlike the official code)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c) and d.shape == a.shape
    assert isinstance(G.fc, torch.nn.Linear) and G.fc.in_features == 256


def test_segmap_input():
    G = _small(crop_size=64).eval()
    assert isinstance(G.fc, torch.nn.Conv2d) and G.fc.in_channels == SEM
    seg = torch.rand(2, SEM, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(G(seg), G(seg.flip(-1)))
        torch.testing.assert_close(G(seg), G(seg, torch.randn(2, 256)))  # z is ignored without VAE


def test_errors_name_the_fix():
    G = _small(crop_size=64)
    with pytest.raises(ValueError, match="label map has 4 channels, generator expects 5"):
        G(torch.rand(1, 4, 64, 64))
    with pytest.raises(ValueError, match="crop_size >= 32"):
        _small(crop_size=16)  # a 0x0 latent
    with pytest.raises(ValueError, match="crop_size >= 256"):
        _small(crop_size=64, aspect_ratio=4.0, num_upsampling_layers="more")
    with pytest.raises(ValueError, match="num_upsampling_layers"):
        _small(num_upsampling_layers="many")


def test_gradients_flow():
    G = _small(crop_size=64, use_vae=True).train()
    z = torch.randn(2, 256, requires_grad=True)
    G(torch.rand(2, SEM, 64, 64), z).square().mean().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    for name, p in G.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_defaults_are_the_papers_and_registered():
    entry = get("SPADEGenerator", "generator")
    assert entry.cls is SPADEGenerator and issubclass(SPADEGenerator, Generator)
    args = dict(entry.arguments())
    assert args["block"] is SPADEResBlock and args["condition"] is LabelMapCondition
    assert (args["ngf"], args["z_dim"], args["crop_size"], args["num_upsampling_layers"]) == (
        64,
        256,
        256,
        "normal",
    )
    assert args["use_vae"] is False
    G = create("generator", "SPADEGenerator", semantic_nc=SEM, ngf=2, crop_size=64)
    assert type(G) is SPADEGenerator and isinstance(G.head_0, SPADEResBlock)


def test_gin_binding_reaches_nested_spade_layers():
    gin.parse_config(
        "SPADE.kernel_size = 5\nSPADE.param_free = 'instance'\nSPADEGenerator.num_upsampling_layers = 'more'"
    )
    with torch.device("meta"):
        G = SPADEGenerator(184)
    spades = [m for m in G.modules() if isinstance(m, SPADE)]
    assert len(spades) == 2 * 7 + 4  # norm_0, norm_1 per block; norm_s in up_0..up_3
    for m in spades:
        assert m.mlp_shared[0].kernel_size == m.mlp_gamma.kernel_size == m.mlp_beta.kernel_size == (5, 5)
        assert isinstance(m.param_free_norm, torch.nn.InstanceNorm2d)
    assert (G.sh, G.sw) == (4, 4)


def test_spectral_binding_and_official_key_names():
    gin.parse_config("SPADEResBlock.spectral = False")
    with torch.device("meta"):
        keys = set(SPADEGenerator(SEM, ngf=2).state_dict())
    assert "head_0.conv_0.weight" in keys and not any("parametrizations" in k for k in keys)
    gin.clear_config()
    with torch.device("meta"):
        keys = set(SPADEGenerator(SEM, ngf=2).state_dict())
    want = {
        "fc.weight", "conv_img.weight", "up_3.conv_s.parametrizations.weight.original",
        "up_3.norm_s.mlp_shared.0.weight", "G_middle_1.norm_1.param_free_norm.running_var",
    }  # fmt: skip
    assert want <= keys
    assert not any(k.startswith(("head_0.conv_s", "G_middle_0.norm_s")) for k in keys)


# Official full-size counts (reference §1.10 and the fixtures README).
PAPER_COUNTS = [
    (dict(semantic_nc=184), 97_480_899),  # COCO-Stuff
    (dict(semantic_nc=151), 96_492_483),  # ADE20K
    (
        dict(semantic_nc=36, crop_size=512, aspect_ratio=2.0, num_upsampling_layers="more"),
        93_048_003,
    ),  # Cityscapes
    (dict(semantic_nc=184, use_vae=True), 112_626_883),  # COCO with VAE: "112.63 M"
    (
        dict(semantic_nc=36, crop_size=512, aspect_ratio=2.0, num_upsampling_layers="more", use_vae=True),
        101_136_579,
    ),
]


@pytest.mark.parametrize("kwargs, count", PAPER_COUNTS)
def test_parameter_counts_match_official(kwargs, count):
    with torch.device("meta"):
        G = SPADEGenerator(**kwargs)
    assert count_parameters(G) == count


@pytest.mark.parametrize("crop, ar", [(300, 1.0), (256, 1.5)])
def test_output_size_must_equal_the_configured_image_size(crop, ar):
    with pytest.raises(ValueError, match="multiples of 32"):
        SPADEGenerator(SEM, ngf=2, crop_size=crop, aspect_ratio=ar)
