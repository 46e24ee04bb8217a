"""Per-region styles stay in their region: the border a style change reaches, measured; general widths.

A tiny SEAN generator (ngf 4, 8-wide styles) on a 128 x 1024 label map with three vertical bands. Changing
class 1's style row changes pixels of class 1's band and a border around it (the receptive field of the
convolutions after each style broadcast, at each block's scale, plus the nearest-downsampling of the band
at the coarse blocks); every pixel beyond that border is bit-identical. G runs in eval mode: batch-norm
statistics in training mode would couple all pixels of the batch.
"""

from functools import partial

import pytest
import torch

from condgen.blocks.sean import ACE, PerClassLinear, SEANResBlock, region_average
from condgen.networks.generator import block_schedule
from condgen.networks.sean_generator import SEANGenerator

H, W = 128, 1024
BAND = (448, 576)  # class 1's columns; class 0 left of it, class 2 right of it
BORDER_PX = 200  # measured: 183 px (docs/sean.md); the analytic bound is 222 px (`analytic_border`)


def analytic_border(num_upsampling_layers: str, out_w: int) -> int:
    """Columns a style change can reach beyond its region: at each block's scale s (output px per cell),
    the region's cells reach up to s - 1 px past it (nearest resizing), then conv_gamma (3x3, 1 cell), conv_0
    and conv_1 (1 cell each) spread it; every later block adds conv_0 + conv_1; conv_img adds 1 px."""
    stages = block_schedule(num_upsampling_layers)
    num_up = sum(s.upsample for s in stages)
    scale, scales = out_w // (out_w // 2**num_up), []
    for stage in stages:
        if stage.upsample:
            scale //= 2
        scales.append(scale)
    reach = 0
    for i, s in enumerate(scales):
        here = (s - 1) + 3 * s + sum(2 * t for t in scales[i + 1 :]) + 1
        reach = max(reach, here)
    return reach


@pytest.fixture(scope="module")
def generator() -> SEANGenerator:
    torch.manual_seed(0)
    block = partial(SEANResBlock, norm=partial(ACE, hidden=8))
    G = SEANGenerator(3, crop_size=W, aspect_ratio=W / H, ngf=4, style_dim=8, encoder_widths=(4, 4, 4, 4),
                      block=block)
    for m in G.modules():
        if isinstance(m, ACE):
            m.spade.mlp_shared[0] = torch.nn.Conv2d(3, 8, 3, padding=1)  # larger than init: visible changes
            torch.nn.init.normal_(m.blending_gamma)
            torch.nn.init.normal_(m.blending_beta)
            if m.use_style:
                torch.nn.init.normal_(m.fc_mu.weight, std=0.5)
    return G.eval()


def test_a_region_style_changes_only_its_region_and_border(generator):
    seg = torch.zeros(1, 3, H, W)
    seg[:, 0, :, : BAND[0]] = 1
    seg[:, 1, :, BAND[0] : BAND[1]] = 1
    seg[:, 2, :, BAND[1] :] = 1
    style = torch.randn(1, 3, 8)
    edited = style.clone()
    edited[0, 1] = torch.randn(8)
    with torch.no_grad():
        a, b = generator(seg, style), generator(seg, edited)
    changed = (a != b).any(1)[0].any(0)  # per column
    cols = changed.nonzero()[:, 0]
    assert changed[BAND[0] : BAND[1]].all()  # the region itself changes everywhere
    reach = max(BAND[0] - cols.min().item(), cols.max().item() - (BAND[1] - 1))
    assert 0 < reach <= BORDER_PX <= analytic_border("normal", W)
    assert torch.equal(a[..., : BAND[0] - BORDER_PX], b[..., : BAND[0] - BORDER_PX])  # bit-identical beyond
    assert torch.equal(a[..., BAND[1] + BORDER_PX :], b[..., BAND[1] + BORDER_PX :])


@pytest.mark.parametrize("classes,style_dim", [(3, 8), (200, 5)])
def test_any_number_of_classes_and_style_width(classes, style_dim):
    """More than the original's 19 classes and another width than 512: encode, generate, backpropagate."""
    torch.manual_seed(1)
    G = SEANGenerator(classes, crop_size=32, ngf=2, style_dim=style_dim, encoder_widths=(2, 2, 2, 2))
    ids = torch.randint(0, classes, (2, 1, 32, 32))
    seg = torch.zeros(2, classes, 32, 32).scatter_(1, ids, 1.0)
    img = torch.rand(2, 3, 32, 32) * 2 - 1
    style = G.encode_style(img, seg)
    assert style.shape == (2, classes, style_dim)
    G(seg, style).square().mean().backward()
    fc = G.head_0.norm_0.fc_mu
    assert isinstance(fc, PerClassLinear) and fc.weight.shape == (classes, style_dim, style_dim)
    present = seg[:, :, ::16, ::16].amax((0, 2, 3)) > 0  # classes present at head_0's 2 x 2 map
    grad_rows = fc.weight.grad.flatten(1).abs().amax(1) > 0
    assert torch.equal(grad_rows & ~present, torch.zeros_like(present))  # absent classes: zero gradient


def test_region_average_reads_each_region():
    codes = torch.arange(2 * 4 * 4, dtype=torch.float32).view(1, 2, 4, 4)
    seg = torch.zeros(1, 3, 8, 8)
    seg[:, 0, :4] = 1
    seg[:, 1, 4:] = 1  # class 2 absent
    style = region_average(codes, seg)
    assert torch.equal(style[0, 0], codes[0, :, :2].mean((1, 2)))
    assert torch.equal(style[0, 1], codes[0, :, 2:].mean((1, 2)))
    assert torch.equal(style[0, 2], torch.zeros(2))


def test_a_style_matrix_of_the_wrong_shape_is_a_clear_error():
    G = SEANGenerator(3, crop_size=32, ngf=2, style_dim=4, encoder_widths=(2, 2, 2, 2))
    with pytest.raises(ValueError, match=r"style matrix \(b, 3, style_dim\)"):
        G(torch.zeros(1, 3, 32, 32), torch.zeros(1, 2, 4))
