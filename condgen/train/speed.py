"""Training-speed switches of the GAN step; each keeps the results of a plain fp32 step within tolerance.

`SpeedOptions` holds the switches the loop applies (gin: `SpeedOptions.channels_last = True`, ...); the other
speed settings live where they act: `train.mixed_precision = 'bf16'`, `train.num_workers`,
`cond_depthwise_conv2d.impl = 'auto'` (Triton on CUDA), `CCResBlock.checkpoint_heads` (memory for time).
How to choose: docs/performance.md; measured effect: benchmarks/RESULTS.md; equivalence: tests/perf/.

Spectral norm needs no switch: the parametrization computes each normalised weight once per network call
(a conv reads `.weight` once; no built-in network reuses a spectral-norm layer within a call) and backward
reuses it. Per step, D runs once in the G step and once in the D step, each time on cat(fake, real) with one
power iteration, as the official code; G runs once per step for its update and once under no_grad, after
that update, for the D step (another weight). tests/perf/test_speed.py counts these calls.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable

import gin
import torch
from torch import Tensor, nn

from condgen.data.labels import LabelLayout, attach_layout, attached_layout

log = logging.getLogger("condgen.train")


def _channels_last(t: Tensor) -> Tensor:
    """t in channels-last memory; a label map's layout (attached where it was encoded) goes with the copy."""
    out = t.contiguous(memory_format=torch.channels_last)
    layout = attached_layout(t) if out is not t else None
    if isinstance(layout, LabelLayout):
        attach_layout(out, layout)
    return out


@gin.configurable
@dataclasses.dataclass(frozen=True)
class SpeedOptions:
    """Switches for the training step; all off by default (the official fp32 behaviour).

    Args:
        channels_last: keep networks and images in NHWC memory format (tensor-core friendly convs on GPUs;
            the conditional depthwise op follows the input's layout).
        compile: `torch.compile` the forward of G, D (and E); the first steps are slow (compilation), and a
            change of batch shape recompiles. Checkpoints keep their usual keys.
        compile_mode: torch.compile mode (None, 'reduce-overhead', 'max-autotune').
        compile_backend: torch.compile backend ('inductor'; 'aot_eager' or 'eager' only check tracing).
        fused_adam: Adam's fused kernel (CUDA and CPU); falls back, with a warning, where unsupported.
        cudnn_benchmark: let cuDNN time its conv algorithms for each new shape (CUDA only; fixed crops
            make this pay off after the first step).
        pin_memory: page-locked host batches for asynchronous copies to the GPU (CUDA only).
    """

    channels_last: bool = False
    compile: bool = False
    compile_mode: str | None = None
    compile_backend: str = "inductor"
    fused_adam: bool = False
    cudnn_benchmark: bool = False
    pin_memory: bool = True

    def configure_backends(self, device: torch.device) -> None:
        """Process-wide backend flags (cuDNN autotuning) for `device`."""
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = self.cudnn_benchmark

    def pin(self, device: torch.device) -> bool:
        """Whether the loader should pin host memory (only useful when copying to a GPU)."""
        return self.pin_memory and device.type == "cuda"

    def to_memory_format(self, module: nn.Module) -> nn.Module:
        """Put a network's 4-d parameters and buffers in channels-last order (in place) when switched on."""
        return module.to(memory_format=torch.channels_last) if self.channels_last else module

    def inputs(self, *tensors: Tensor) -> tuple[Tensor, ...]:
        """Images and label maps in the networks' memory format."""
        if not self.channels_last:
            return tensors
        return tuple(_channels_last(t) if t.dim() == 4 else t for t in tensors)

    def compiled(self, module: nn.Module) -> nn.Module:
        """`torch.compile(module)` when switched on: a wrapper sharing the module's parameters."""
        if not self.compile:
            return module
        return torch.compile(module, mode=self.compile_mode, backend=self.compile_backend)

    def adam(
        self, params: Iterable[nn.Parameter], *, lr: float, betas: tuple[float, float]
    ) -> torch.optim.Adam:
        """Adam, fused when switched on and supported for these parameters."""
        params = list(params)
        if self.fused_adam:
            try:
                return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
            except (RuntimeError, TypeError) as err:  # e.g. a device or dtype without the fused kernel
                log.warning("SpeedOptions.fused_adam: no fused Adam here (%s); using the default", err)
        return torch.optim.Adam(params, lr=lr, betas=betas)
