"""Training: `train` (the gin-configured GAN loop), `build_gan`, checkpoints.

The run directory's files are listed in `condgen.rundir`.
Load a trained run with `load_run(run_dir)` (networks, spec, provenance) or one state dict with
`load_weights(run_dir, "G")`.
"""

from condgen.train.build import GAN, build_gan, convert_sync_batchnorm
from condgen.train.loop import NonFiniteLossError, train
from condgen.train.setup import Run, TrainSettings, build_run
from condgen.train.state import latest_checkpoint, load_networks, load_run, load_weights

__all__ = [
    "GAN",
    "NonFiniteLossError",
    "build_gan",
    "convert_sync_batchnorm",
    "latest_checkpoint",
    "Run",
    "TrainSettings",
    "build_run",
    "load_networks",
    "load_run",
    "load_weights",
    "train",
]
