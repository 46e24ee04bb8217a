"""Moved to `condgen.infer.resample` (inference sits below evaluation); these names stay importable."""

from condgen.infer.resample import local_resample, resample_images  # noqa: F401
