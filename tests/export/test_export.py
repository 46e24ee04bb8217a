"""`condgen export`: ONNX (run by onnxruntime on CPU) and TorchScript (`torch.jit.load`) files of tiny SPADE,
CC-FPSE and OASIS generators match the PyTorch generator to 1e-4 of the output scale; an op that cannot be
exported is named with its block; the CLI writes a file and its description from a run directory."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from condgen.blocks.cond_conv import CondDepthwiseConv
from condgen.blocks.noise import NoiseCondition
from condgen.data.spec import DataSpec
from condgen.export import ExportError, LabelsToImage, example_inputs, export_generator, run_exported
from condgen.networks.ccfpse_generator import CCFPSEGenerator
from condgen.networks.oasis_generator import OASISGenerator
from condgen.networks.spade_generator import SPADEGenerator


def in_range(G: nn.Module, spec: DataSpec) -> nn.Module:
    """Batch-norm statistics from a few batches, and `conv_img` scaled so the image is away from tanh's
    saturation (at random init it sits at +-1, where any two networks agree)."""
    graph = LabelsToImage(G, spec)
    with torch.no_grad():
        graph.train()
        for seed in range(2):
            graph(*example_inputs(graph, spec.size, batch=2, seed=seed))
        graph.eval()
        pre = []
        hook = G.conv_img.register_forward_hook(lambda m, i, o: pre.append(o))
        graph(*example_inputs(graph, spec.size, batch=2, seed=5))
        hook.remove()
        G.conv_img.weight.mul_(0.5 / pre[0].std())
        G.conv_img.bias.zero_()
    return G.eval()


def tiny(kind: str) -> tuple[nn.Module, DataSpec]:
    torch.manual_seed(0)
    if kind == "spade":  # COCO-like: don't care, instance edges, a VAE latent
        spec = DataSpec(9, contain_dontcare_label=True, instance_edges=True, crop_size=32)
        G = SPADEGenerator(spec.semantic_nc, crop_size=32, ngf=4, use_vae=True, z_dim=8)
    elif kind == "ccfpse":
        spec = DataSpec(9, crop_size=32)
        G = CCFPSEGenerator(spec.semantic_nc, crop_size=32, ngf=4, use_vae=False)
    else:
        spec = DataSpec(9, crop_size=64)
        G = OASISGenerator(spec.semantic_nc, crop_size=64, ngf=4, condition=NoiseCondition)
    return in_range(G, spec), spec


@pytest.mark.parametrize("kind", ["spade", "ccfpse", "oasis"])
def test_onnx_and_torchscript_match_pytorch(kind, tmp_path):
    G, spec = tiny(kind)
    inputs = example_inputs(LabelsToImage(G, spec), spec.size, seed=7)
    with torch.no_grad():
        reference = LabelsToImage(G, spec)(*inputs)  # the generator as trained: its own op paths
    scale = float(reference.abs().max())
    assert 0.05 < scale < 0.999  # an informative output, not tanh's saturation
    names = {"spade": ["labels", "instance", "z"], "ccfpse": ["labels"], "oasis": ["labels", "z"]}[kind]
    cdw = [m for m in G.modules() if isinstance(m, CondDepthwiseConv)]
    for m in cdw:  # as a CUDA run binds it: a CPU export must never call the Triton kernels
        m.impl = "triton"
    for fmt, suffix in (("onnx", ".onnx"), ("torchscript", ".pt")):
        record = export_generator(G, spec, tmp_path / f"g{suffix}", format=fmt, check=kind == "ccfpse")
        assert [i["name"] for i in record["inputs"]] == names
        got = run_exported(tmp_path / f"g{suffix}", inputs)
        diff = float((got - reference).abs().max())
        print(f"{kind} {fmt}: max |diff| = {diff:.3g} (scale {scale:.3g})")  # reported in the closing note
        assert diff <= 1e-4 * scale, (kind, fmt, diff, scale)
        assert json.loads((tmp_path / f"g{suffix}.json").read_text())["inputs"] == record["inputs"]
    if kind == "ccfpse":
        assert any("reference (unfold)" in n for n in record["notes"])
        assert {m.impl for m in cdw} == {"triton"}  # the caller's network keeps its own path
    if kind == "spade":
        with pytest.raises(ExportError, match="VAE latent"):  # a Linear layer fixes the VAE's size
            export_generator(G, spec, tmp_path / "x.onnx", size=(64, 64))


def test_other_size_and_label_sparse_switch(tmp_path, caplog):
    torch.manual_seed(0)
    spec = DataSpec(40, crop_size=32)  # >= AUTO_MIN_LABELS: 'auto' would run label-sparse convolutions
    G = in_range(SPADEGenerator(spec.semantic_nc, crop_size=32, ngf=4), spec)
    record = export_generator(G, spec, tmp_path / "g.pt", format="torchscript", size=(32, 64))
    assert record["size"] == [32, 64] and record["parity"]["max_abs_diff"] <= 1e-4 * record["parity"]["scale"]
    assert any("switched to the dense path" in n for n in record["notes"])
    labels = torch.randint(0, 40, (1, 32, 64))
    assert run_exported(tmp_path / "g.pt", (labels,)).shape == (1, 3, 32, 64)
    with pytest.raises(ExportError, match="multiples of 32"):
        export_generator(G, spec, tmp_path / "h.pt", format="torchscript", size=(48, 48))


class _Doubled(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        return grad * 2


class _Odd(nn.Module):
    """A block with an op that ONNX has no form for (vdot) and a custom autograd function."""

    def forward(self, x):
        return _Doubled.apply(x) * torch.vdot(x.flatten(), x.flatten())


class _Toy(nn.Module):
    def __init__(self, semantic_nc: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(semantic_nc, 3, 1), _Odd())

    def forward(self, seg, z=None):
        return self.body(seg)


def test_an_op_that_cannot_be_exported_is_named_with_its_block(tmp_path):
    spec = DataSpec(4, crop_size=8)
    G = _Toy(spec.semantic_nc)
    with pytest.raises(ExportError, match=r"aten::vdot \(in block G\.body\.1, _Odd") as err:
        export_generator(G, spec, tmp_path / "t.onnx", format="onnx")
    assert "no ONNX form" in str(err.value) and not (tmp_path / "t.onnx").exists()
    with pytest.raises(ExportError, match=r"Python function '_Doubled' \(in block G\.body\.1, _Odd"):
        export_generator(G, spec, tmp_path / "t.pt", format="torchscript")
    assert list(tmp_path.iterdir()) == []  # nothing half-written


class _AddNoise(nn.Module):
    """Draws its own noise inside (as SEAN's ACE layers do), so a file could not reproduce an image."""

    def forward(self, x):
        return x + torch.randn_like(x)


class _Noisy(_Toy):
    def __init__(self, semantic_nc: int) -> None:
        super().__init__(semantic_nc)
        self.body = nn.Sequential(nn.Conv2d(semantic_nc, 3, 1), _AddNoise())


class _Pair(_Toy):
    def forward(self, seg, z=None):
        return seg, seg


def test_randomness_inside_and_other_call_conventions_are_refused(tmp_path):
    spec = DataSpec(4, crop_size=8)
    for fmt in ("onnx", "torchscript"):
        with pytest.raises(ExportError, match=r"random numbers inside the network \(.*in block G\.body\.1\b"):
            export_generator(_Noisy(spec.semantic_nc), spec, tmp_path / f"n.{fmt}", format=fmt)
    with pytest.raises(ExportError, match=r"G\(seg, z\) gave tuple, not an image of shape \(1, 3, 8, 8\)"):
        export_generator(_Pair(spec.semantic_nc), spec, tmp_path / "p.onnx")
    assert list(tmp_path.iterdir()) == []


def test_cli_exports_a_run(tmp_path, capsys, monkeypatch):
    from condgen.cli.main import main
    from tests.paint.conftest import TINY, random_run

    run = random_run(tmp_path / "run", TINY, ["SPADEGenerator.ngf = 4"])
    monkeypatch.chdir(tmp_path)
    assert main(["export", str(run), "--format", "torchscript"]) == 0
    out = capsys.readouterr().out
    assert "wrote run-32x32.pt" in out and "max |exported - PyTorch|" in out
    record = json.loads((tmp_path / "run-32x32.pt.json").read_text())
    assert record["checkpoint"].endswith("step_0") and record["ema"] is False
    assert main(["export", str(tmp_path / "nowhere"), "--format", "onnx"]) == 2
    assert "nowhere" in capsys.readouterr().err
