"""The benchmark harness still runs the loop's step: a smoke test at tiny width (numbers are not checked)."""

import torch

from benchmarks.harness import Config, measure_many


def test_interleaved_measurement_of_two_configurations():
    small = dict(size=64, ngf=4, ndf=4, batch=2, extra=("CCResBlock.hidden = 8", "SPADE.hidden = 8"))
    cfgs = [Config("ccfpse", impl="reference", **small),
            Config("ccfpse", mixed_precision="bf16", checkpoint_heads=True,
                   speed=(("channels_last", True), ("fused_adam", True)), **small)]
    results = measure_many(cfgs, torch.device("cpu"), steps=1, warmup=0)
    for r in results:
        assert r["images_per_s"] > 0 and r["peak_gib"] > r["g_saved_gib"] > 0
        assert min(r[f"{part}_s"] for part in ("G", "D", "VGG", "optim")) > 0
