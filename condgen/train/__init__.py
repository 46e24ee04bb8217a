"""Training: `train` (the gin-configured GAN loop), `build_gan`, checkpoints.

A run directory (`--run_dir`, default `runs/<last gin file>`) holds:
  config.gin        the operative gin configuration (every bound and default value actually used)
  metrics.jsonl     one JSON record per `log_every` steps: step, epoch, lr_G, lr_D, losses, images_per_s
  samples/          step_<N>.png grids, one row per fixed item: label | real | fake (EMA G when kept)
  tb/               TensorBoard events: the same scalars, the grids, the config (`tensorboard --logdir`)
  step_<N>/         checkpoints (Accelerate state + config.gin + state.json), the newest `keep_last` kept
  latest            the name of the newest complete checkpoint, replaced atomically
  summary.json      written at the end: where everything is, wall time, images/s, per-process weight hashes
Load a trained generator with `load_networks(run_dir)` or one state dict with `load_weights(run_dir, "G")`.
"""

from condgen.train.build import GAN, build_gan, convert_sync_batchnorm
from condgen.train.loop import NonFiniteLossError, train
from condgen.train.state import latest_checkpoint, load_networks, load_weights

__all__ = [
    "GAN",
    "NonFiniteLossError",
    "build_gan",
    "convert_sync_batchnorm",
    "latest_checkpoint",
    "load_networks",
    "load_weights",
    "train",
]
