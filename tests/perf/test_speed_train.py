"""The speed switches through `train()`: two steps of the tiny SPADE run, each switch against plain fp32.

Same data, seed and initial networks; after two G + D updates the losses and the weights must agree within
each switch's tolerance (fp32 switches: rounding; bf16 autocast: its 8-bit mantissa).
"""

from collections import Counter
from pathlib import Path

import pytest
import torch

from condgen.cli.gin_setup import parse_gin
from condgen.train.loop import train
from condgen.train.report import read_metrics
from condgen.train.state import load_weights

TINY = Path(__file__).parents[1] / "train" / "tiny.gin"
BASE = ["train.max_steps = 2", "train.save_every = None", "train.sample_every = None",
        "SyntheticLandscapes.crop_size = 64"]  # 64 px: the first BatchNorm sees 2x2 maps, not 1x1


def _fresh_accelerate():
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)  # each run builds its own Accelerator (mixed precision differs)
    GradientState._reset_state()


def _run(path, *bindings):
    _fresh_accelerate()
    parse_gin([TINY], BASE + list(bindings))
    ckpt = train(path)
    losses = {r["step"]: r for r in read_metrics(path / "metrics.jsonl")}
    return losses, {name: load_weights(ckpt, name) for name in ("G", "D")}


def _initial():
    """The networks `train` starts from (it seeds, builds the dataset, then the networks)."""
    from accelerate.utils import set_seed

    from condgen.data.landscapes import SyntheticLandscapes
    from condgen.train.build import build_gan

    parse_gin([TINY], BASE)
    set_seed(0)
    gan = build_gan(SyntheticLandscapes().spec)
    return {"G": gan.G.state_dict(), "D": gan.D.state_dict()}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    torch.set_num_threads(1)
    return _run(tmp_path_factory.mktemp("fp32")), _initial()


def _update_error(nets, want, initial):
    """|| w_switch - w_plain || / || w_plain - w_initial || over every parameter of G and of D."""
    errors = {}
    for name in want:
        keys = [k for k, v in want[name].items() if v.is_floating_point() and "running" not in k]
        sds = (nets[name], want[name], initial[name])
        got, plain, start = (torch.cat([sd[k].float().flatten() for k in keys]) for sd in sds)
        errors[name] = ((got - plain).norm() / (plain - start).norm()).item()
    return errors


@pytest.mark.parametrize(
    "bindings, loss_rtol, update_tol",
    [
        (["SpeedOptions.channels_last = True"], 1e-4, 1e-3),  # measured 2e-4 (G), 1e-6 (D)
        (["SpeedOptions.fused_adam = True"], 1e-5, 1e-3),  # measured 7e-5
        (["SpeedOptions.cudnn_benchmark = True", "SpeedOptions.pin_memory = True"], 0, 0),  # CPU: no-ops
        (["SpeedOptions.compile = True", "SpeedOptions.compile_backend = 'eager'"], 1e-5, 1e-3),
        (["train.num_workers = 2"], 0, 0),  # batches are a function of (seed, epoch, position) only
        (["train.mixed_precision = 'bf16'"], 5e-2, 0.15),  # measured 0.04-0.06
    ],
    ids=["channels_last", "fused_adam", "cuda_only", "compile", "workers", "bf16"],
)
def test_switch_keeps_losses_and_weights(tmp_path, baseline, bindings, loss_rtol, update_tol):
    (want_losses, want_nets), initial = baseline
    losses, nets = _run(tmp_path, *bindings)
    for step, record in want_losses.items():
        for k in ("G_GAN", "G_feat", "D_fake", "D_real"):
            # relative to the loss or to 0.1, whichever is larger: G_GAN starts near 0
            assert abs(losses[step][k] - record[k]) <= loss_rtol * max(abs(record[k]), 0.1), (step, k)
    errors = _update_error(nets, want_nets, initial)
    assert max(errors.values()) <= update_tol, errors
    for name, sd in want_nets.items():  # same keys, shapes and dtypes: the checkpoint layout is unchanged
        layout = {k: (v.shape, v.dtype) for k, v in nets[name].items()}
        assert layout == {k: (v.shape, v.dtype) for k, v in sd.items()}


def test_spectral_norm_weights_are_computed_once_per_network_call(tmp_path, monkeypatch):
    # Per step: G for its update and again (updated, no_grad) for the D step; D once in each step on
    # [fake; real]. Each call computes every normalised weight once (with one power iteration, as the
    # official hook API), and backward reuses it.
    from condgen.blocks.norm import _OfficialOrderSpectralNorm
    from condgen.train import setup as loop  # build_run calls build_gan

    computed, network_calls, owners = Counter(), Counter(), {}
    sn_forward, build = _OfficialOrderSpectralNorm.forward, loop.build_gan

    def counting(self, weight):
        computed[id(self)] += 1
        return sn_forward(self, weight)

    def build_and_watch(spec):
        gan = build(spec)
        computed.clear()  # registering a parametrization evaluates it once
        for name, net in gan.named().items():
            net.register_forward_pre_hook(lambda *_, name=name: network_calls.update([name]))
            owners.update({id(m): name for m in net.modules() if isinstance(m, _OfficialOrderSpectralNorm)})
        return gan

    monkeypatch.setattr(_OfficialOrderSpectralNorm, "forward", counting)
    monkeypatch.setattr(loop, "build_gan", build_and_watch)
    _run(tmp_path, "train.max_steps = 1")
    assert network_calls == {"G": 2, "D": 2}
    assert {owners[i] for i in computed} == {"G", "D"} and len(computed) == len(owners)
    assert all(n == network_calls[owners[i]] for i, n in computed.items())
