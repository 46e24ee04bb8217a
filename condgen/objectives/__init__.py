"""Objectives: the losses of a training step as one swappable block (kind `objective`).

An objective declares the networks it trains and the updates of one step; each update turns (networks,
label map, real image) into named, weighted loss terms; the training loop only sums, backpropagates and
steps. `Pix2PixHDObjective` is SPADE's and CC-FPSE's (a G and a D update); `OASISObjective` is OASIS's;
`SEANObjective` SEAN's; `SDMObjective` is SDM's diffusion loss (one update of the denoiser, no discriminator).
"""

from condgen.objectives import base, dpgan, oasis, pix2pixhd, sdm, sean  # noqa: F401
from condgen.objectives.base import Objective
from condgen.objectives.oasis import OASISObjective
from condgen.objectives.pix2pixhd import Pix2PixHDObjective
from condgen.objectives.sdm import SDMObjective
from condgen.objectives.sean import SEANObjective

__all__ = ["OASISObjective", "Objective", "Pix2PixHDObjective", "SDMObjective", "SEANObjective"]
