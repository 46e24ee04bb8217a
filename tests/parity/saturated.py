"""Comparing a generator's output with an official one that is saturated by tanh.

The official CC-FPSE fixture's eval-mode image is fully saturated: fresh BN running statistics let the
activations before tanh grow to ~5e33, so every pixel is +-1 and only its sign carries information. fp32
sums in another order (another thread count, another CPU) move those activations by ~1e-7 of their scale,
which flips the sign of the rare pixel whose activation is within that of zero (one pixel in 393,216 with
one intra-op thread). Such a pixel is a correct fp32 result, not a parity failure; any other mismatch is.
"""

from torch import Tensor, nn

ROUNDOFF = 1e-5  # relative to max |activation|: fp32 eps (1.2e-7) times a generous summation depth


def generate_with_logits(G: nn.Module, seg: Tensor, z: Tensor | None) -> tuple[Tensor, Tensor]:
    """G's image and the activation fed to its final tanh (`conv_img`'s output)."""
    seen = {}
    handle = G.conv_img.register_forward_hook(lambda _m, _i, out: seen.setdefault("logits", out))
    try:
        fake = G(seg, z) if z is not None else G(seg)
    finally:
        handle.remove()
    return fake, seen["logits"]


def mismatch_beyond_roundoff(fake: Tensor, logits: Tensor, expected: Tensor, tol: float) -> float:
    """Max |fake - expected| over the pixels whose activation is not within fp32 round-off of zero."""
    decisive = logits.abs() > ROUNDOFF * logits.abs().max()
    flipped = ((fake - expected).abs() > tol) & ~decisive
    assert flipped.float().mean() < 1e-4, f"{int(flipped.sum())} pixels differ where the sign is uncertain"
    return (fake - expected).abs()[decisive].max().item()
