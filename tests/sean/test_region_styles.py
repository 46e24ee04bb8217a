"""Composing a style matrix from photos and vectors per region; style files; interpolation."""

import pytest
import torch

from condgen.networks.region_styles import compose_styles, interpolate, load_styles, save_styles
from condgen.networks.sean_generator import SEANGenerator


@pytest.fixture(scope="module")
def G() -> SEANGenerator:
    torch.manual_seed(0)
    G = SEANGenerator(3, crop_size=32, ngf=2, style_dim=4, encoder_widths=(2, 2, 2, 2)).eval()
    for name, p in G.named_parameters():
        if ".fc_mu." in name or ".conv_gamma." in name or name.startswith("style_encoder."):
            torch.nn.init.normal_(p, std=0.5)  # larger than the 0.02 init: styles visibly matter
    return G


def halves() -> torch.Tensor:
    seg = torch.zeros(1, 3, 32, 32)
    seg[:, 0, :16] = 1
    seg[:, 1, 16:] = 1
    return seg


def test_default_photo_and_per_region_overrides(G):
    seg = halves()
    photo, photo2 = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 48, 48) * 2 - 1
    own = compose_styles(G, seg, style=photo)
    assert torch.equal(own, G.encode_style(photo, seg))  # read with the map being synthesised
    mixed = compose_styles(G, seg, style=photo, region_styles={1: photo2})
    theirs = G.encode_style(photo2, torch.nn.functional.interpolate(seg, size=(48, 48)))
    assert torch.equal(mixed[0, 0], own[0, 0]) and torch.equal(mixed[0, 1], theirs[0, 1])
    vector = torch.arange(4.0)
    assert torch.equal(compose_styles(G, seg, style=photo, region_styles={0: vector})[0, 0], vector)
    with torch.no_grad():
        a, b = G(seg, own), G(seg, mixed)
    assert not torch.equal(a, b)


def test_a_photo_without_the_region_is_a_clear_error(G):
    seg = halves()
    photo_map = torch.zeros(1, 3, 32, 32)
    photo_map[:, 0] = 1  # the photo shows class 0 only
    with pytest.raises(ValueError, match="has no 'sky' region"):
        source = (torch.zeros(1, 3, 32, 32), photo_map)
        compose_styles(G, seg, region_styles={1: source}, names=["sea", "sky", "x"])
    with pytest.raises(ValueError, match="4 wide"):
        compose_styles(G, seg, region_styles={1: torch.zeros(5)})


def test_style_file_round_trip_and_interpolation(G, tmp_path):
    seg = halves()
    styles = compose_styles(G, seg, style=torch.rand(1, 3, 32, 32) * 2 - 1)[0]
    path = save_styles(tmp_path / "look.safetensors", styles, names=["sea", "sky", "x"])
    back, present, names = load_styles(path)
    assert torch.equal(back, styles) and names == ["sea", "sky", "x"]
    assert present.tolist() == [True, True, False]  # class 2 is absent: a zero row
    assert torch.equal(compose_styles(G, seg, style=back), styles[None])
    half = interpolate(styles[0], styles[1], 0.5)
    assert torch.allclose(half, (styles[0] + styles[1]) / 2)
    assert torch.equal(interpolate(styles[0], styles[1], 0.0), styles[0])
    with pytest.raises(ValueError, match="must end in .safetensors"):
        save_styles(tmp_path / "look.pt", styles)
