"""`recalibrate_batchnorm`: the EMA generator's BN statistics re-estimated on training batches (OASIS)."""

import copy
import itertools
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from condgen.blocks.noise import NoiseCondition
from condgen.blocks.spade import SPADE, SPADEResBlock
from condgen.networks.oasis_generator import OASISGenerator
from condgen.networks.spade_generator import SPADEGenerator
from condgen.train.ema import recalibrate_batchnorm


def tiny_oasis() -> OASISGenerator:
    block = partial(SPADEResBlock, norm=partial(SPADE, hidden=8))
    return OASISGenerator(
        4, crop_size=32, ngf=2, block=block, condition=partial(NoiseCondition, z_dim=8)
    ).eval()


def segs(n: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        F.one_hot(torch.randint(0, 4, (2, 32, 32), generator=g), 4).permute(0, 3, 1, 2).float()
        for _ in range(n)
    ]


def buffers(net):
    return {k: v.clone() for k, v in net.state_dict().items() if "running" in k or k.endswith(("_u", "_v"))}


def test_equals_train_mode_forwards_and_restores_modes():
    G = tiny_oasis()
    G.body_0.train()  # a mixed mode comes back as it was
    params = {k: p.clone() for k, p in G.named_parameters()}
    ref = copy.deepcopy(G).train()
    batches = segs(3)
    torch.manual_seed(1)
    with torch.no_grad():
        for seg in batches:
            ref(seg)
    torch.manual_seed(1)
    assert recalibrate_batchnorm(G, [(s, None) for s in batches], num_batches=51) == 3
    for k, v in buffers(ref).items():
        torch.testing.assert_close(G.state_dict()[k], v, rtol=0, atol=0, msg=k)
    assert not G.training and G.body_0.training and not G.conv_img.training
    assert all(torch.equal(p, params[k]) for k, p in G.named_parameters())
    assert all(m.momentum == 0.1 for m in G.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_stops_after_num_batches_of_an_endless_stream():
    G = tiny_oasis()
    assert recalibrate_batchnorm(G, itertools.repeat(segs(1)[0]), num_batches=4) == 4
    with pytest.raises(ValueError):
        recalibrate_batchnorm(G, [], num_batches=0)


def test_reset_averages_the_batches_exactly():
    """reset=True: running stats = the statistics of the recalibration data (here one fixed input)."""
    G = tiny_oasis()
    seg, z = segs(1)[0], torch.randn(2, 8)
    recalibrate_batchnorm(G, itertools.repeat(seg), num_batches=3, reset=True, generate=lambda g, s: g(s, z))
    x = G.fc(F.interpolate(G.condition.label_input(seg, z), size=(1, 1), mode="nearest"))
    bn = G.body_0.norm_0.param_free_norm
    torch.testing.assert_close(bn.running_mean, x.mean((0, 2, 3)), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bn.running_var, x.var((0, 2, 3), unbiased=True), rtol=1e-4, atol=1e-6)
    assert bn.momentum == 0.1


def test_spectral_norm_vectors_optionally_frozen():
    G = tiny_oasis()
    before = {k: v for k, v in buffers(G).items() if k.endswith(("_u", "_v"))}
    recalibrate_batchnorm(G, segs(2), update_spectral_norm=False)
    after = buffers(G)
    assert all(torch.equal(after[k], v) for k, v in before.items())
    recalibrate_batchnorm(G, segs(2))
    assert any(not torch.equal(buffers(G)[k], v) for k, v in before.items())
    assert not any(m.training for m in G.modules())


def test_any_generator_with_batch_norm():
    G = SPADEGenerator(
        4, crop_size=32, ngf=2, block=partial(SPADEResBlock, norm=partial(SPADE, hidden=8))
    ).eval()
    before = G.head_0.norm_0.param_free_norm.running_mean.clone()
    recalibrate_batchnorm(G, segs(2))
    assert not torch.equal(G.head_0.norm_0.param_free_norm.running_mean, before)


def test_the_loop_recalibrates_the_ema_generator_without_touching_training(tmp_path):
    from safetensors.torch import load_file

    from condgen.cli.gin_setup import parse_gin
    from condgen.train.loop import train
    from condgen.train.report import read_metrics
    from tests.train.test_loop import TINY

    runs = {}
    for k in (0, 2):
        parse_gin([TINY], ["train.max_steps = 2", "train.ema_decay = 0.5", f"train.ema_bn_batches = {k}"])
        ckpt = train(tmp_path / str(k))
        runs[k] = (
            read_metrics(tmp_path / str(k) / "metrics.jsonl"),
            load_file(str(ckpt / "ema.safetensors")),
            load_file(str(ckpt / "model.safetensors")),
        )

    def losses(records):
        return [{k: v for k, v in r.items() if k not in ("time", "images_per_s")} for r in records]

    assert losses(runs[0][0]) == losses(runs[2][0])  # the training stream is untouched
    stats = [k for k in runs[0][1] if k.endswith("running_mean")]
    assert stats
    assert any(not runs[0][1][k].equal(runs[2][1][k]) for k in stats)  # the EMA's statistics: re-estimated
    assert all(runs[0][2][k].equal(runs[2][2][k]) for k in runs[0][2])  # G itself is the same
