"""Objectives: the losses of a GAN step as one swappable block (kind `objective`).

An objective turns (G, D, E, label map, real image) into named, weighted loss terms for the G step and the
D step; the training loop only sums, backpropagates and steps. `Pix2PixHDObjective` is SPADE's and CC-FPSE's;
`OASISObjective` is OASIS's; `SEANObjective` SEAN's.
"""

from condgen.objectives import base, dpgan, oasis, pix2pixhd, sean  # noqa: F401
from condgen.objectives.base import Objective
from condgen.objectives.oasis import OASISObjective
from condgen.objectives.pix2pixhd import Pix2PixHDObjective
from condgen.objectives.sean import SEANObjective

__all__ = ["OASISObjective", "Objective", "Pix2PixHDObjective", "SEANObjective"]
