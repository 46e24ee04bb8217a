"""condgen's training step against the official code's, side by side in one process (same weights, batch).

    git clone https://github.com/NVlabs/SPADE /tmp/SPADE        # checked: fecacc9 (2021)
    git clone https://github.com/xh-liu/CC-FPSE /tmp/CC-FPSE    # checked: 5619e63
    python -m benchmarks.official_step --official /tmp/SPADE --model spade --size 128 --ngf 32 \
        --threads 1 --rounds 4 --label-sparse auto,off
    python -m benchmarks.official_step --official /tmp/CC-FPSE --model ccfpse --size 128 --ngf 32 \
        --threads 1 --rounds 4 --label-sparse auto,off

Run with 1 CPU thread and read the median per-round ratio (benchmarks/RESULTS.md section 6 has the numbers
measured so). The checkouts need only their Python files (a source archive will do; SPADE's
`sync_batchnorm` submodule is not needed): the official code is never committed or vendored, it is
imported from the path given (`models/`, `options/`, `util/`, `data/`), and what it needs that a CPU machine
with today's torch lacks is shimmed at runtime (`install_shims`): no package beyond condgen's is installed.

Both sides: fp32, no speed options, COCO-Stuff labels (182 + don't-care + instance edges, from the same
miniature COCO-Stuff loader batch: the official side gets its label and instance ids and builds its one-hot
map and edges in its `preprocess_input`, condgen's step includes its `to_device` one-hot), the official
losses (GAN hinge, feature matching, VGG; CC-FPSE: lambda_feat 20 as `ccfpse_coco.gin`, and KL with the VAE
at 256 px only: the official encoder is broken below 256 px, see `use_vae`). The official networks are built
first (seeded) and their state dicts loaded into condgen's (`condgen.convert.load_official_state`); VGG19
gets the same seeded random weights on both sides (no download). Every round runs one official
`Pix2PixTrainer` step (G step then D step) and one condgen step per `--label-sparse` mode on the same batch,
the order rotating; the ratio is the median of the per-round time ratios official / condgen. The losses of
the first two steps are compared (max absolute difference and which loss): the first is fp32 round-off;
the second follows one Adam step, whose first update is about lr * sign(gradient), so gradient components
that are zero up to round-off can move a weight by +-lr on one side only (label-sparse on: ~1e-3..1e-1;
'off', the official kernels: 0 or round-off).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import io
import statistics
import sys
import time
from pathlib import Path

import torch

from benchmarks.report import machine_line, print_table, sync


def use_vae(model: str, size: int) -> bool:
    """CC-FPSE's experiment has the VAE; the official encoder only works at 256 px (it resizes every image to
    256 and has its 6th layer only for crop_size >= 256: at 128 px its fc layer gets 8x8 maps, not 4x4).
    Below 256 px both sides run without the encoder."""
    return model == "ccfpse" and size >= 256


NO_VAE = ("build_gan.encoder = None", "CCFPSEGenerator.use_vae = False")


def official_argv(model: str, size: int, ngf: int, batch: int, root: Path) -> list[str]:
    argv = ["--dataset_mode", "coco", "--dataroot", str(root), "--label_nc", "182",
            "--contain_dontcare_label",
            "--crop_size", str(size), "--load_size", str(size), "--ngf", str(ngf), "--ndf", str(ngf),
            "--batchSize", str(batch), "--nThreads", "0", "--name", "bench",
            "--checkpoints_dir", str(root / "ckpt")]
    if model == "ccfpse":  # CC-FPSE has no --gpu_ids (one process per GPU, `opt.gpu`)
        argv += ["--netG", "condconv", "--netD", "fpse", "--lambda_feat", "20"]  # as ccfpse_coco.gin
        if use_vae(model, size):
            argv += ["--use_vae"]
    else:
        argv += ["--gpu_ids", "-1"]
    return argv


def install_shims(path: Path, vgg_file: Path) -> None:
    """What the official code needs at runtime that this machine lacks; nothing in its tree is changed.

    - `dill` (official `util/util.py` pickles options with it): the standard `pickle` stands in when absent.
    - `models.networks.sync_batchnorm` (a git submodule of NVlabs/SPADE, absent from archive snapshots):
      `SynchronizedBatchNorm2d` outside `DataParallel` is plain batch norm, so `nn.BatchNorm2d` stands in.
    - VGG19: `torchvision.models.vgg19(pretrained=True)` (SPADE) would download and CC-FPSE loads
      `checkpoints/vgg19.pth`; both get the seeded random weights of `vgg_file` (the same file is loaded
      into condgen's `VGGLoss`, so both sides compute the same perceptual loss); without CUDA, the official
      `VGGLoss`'s unconditional `.cuda()` is a no-op.
    - CPU-only machines: `Tensor.cuda` / `Module.cuda` return themselves (the official code calls them
      unconditionally: SPADE's `VGGLoss`, all of CC-FPSE), CC-FPSE's `create_network` skips its
      `assert torch.cuda.is_available()`, and its `torch.cuda.FloatTensor` types become CPU ones
      (`cpu_tensor_types`).
    - `create_optimizers`' TTUR `betas=(0, 0.9)` (an int) is rejected by today's `torch.optim.Adam`: floated.
    """
    import pickle
    import types

    import torchvision
    from torch import nn

    try:
        importlib.import_module("dill")
    except ImportError:
        sys.modules["dill"] = pickle
    if not (path / "models" / "networks" / "sync_batchnorm").is_dir():
        shim = types.ModuleType("models.networks.sync_batchnorm")
        shim.SynchronizedBatchNorm2d = nn.BatchNorm2d
        sys.modules["models.networks.sync_batchnorm"] = shim
    plain_vgg19 = torchvision.models.vgg19

    def vgg19(*args, pretrained: bool = False, weights=None, **kwargs):  # never downloads
        model = plain_vgg19(weights=None, **kwargs)
        if pretrained or weights is not None:
            model.load_state_dict(torch.load(vgg_file, weights_only=True))
        return model

    torchvision.models.vgg19 = vgg19
    arch = importlib.import_module("models.networks.architecture")
    init = arch.VGG19.__init__
    if init.__defaults__ and len(init.__defaults__) == 2:  # CC-FPSE: (requires_grad, local_pretrained_path)
        init.__defaults__ = (init.__defaults__[0], str(vgg_file))
    if not torch.cuda.is_available():  # CPU-only machine: the official `.cuda()` calls become no-ops
        torch.Tensor.cuda = nn.Module.cuda = lambda self, *args, **kwargs: self
        nets = importlib.import_module("models.networks")
        if "assert(torch.cuda.is_available())" in inspect.getsource(nets.create_network):  # CC-FPSE

            def create_network(cls, opt):
                net = cls(opt)
                net.print_network()
                net.init_weights(opt.init_type, opt.init_variance)
                return net

            nets.create_network = create_network


def cpu_tensor_types(model) -> None:
    """CC-FPSE hard-wires `torch.cuda.FloatTensor` / `ByteTensor` (labels, GAN targets): CPU types on CPU."""
    if torch.cuda.is_available():
        return
    model.FloatTensor, model.ByteTensor = torch.FloatTensor, torch.ByteTensor
    if hasattr(model, "criterionGAN"):
        model.criterionGAN.Tensor = torch.FloatTensor


def random_vgg19(root: Path) -> Path:
    """A torchvision vgg19 state dict with seeded random weights, written under `root`."""
    import torchvision

    torch.manual_seed(1234)
    file = root / "vgg19_random.pth"
    torch.save(torchvision.models.vgg19(weights=None).state_dict(), file)
    return file


def build_official(path: Path, argv: list[str], vgg_file: Path):
    sys.path.insert(0, str(path))
    install_shims(path, vgg_file)
    old = sys.argv
    sys.argv = ["train.py", *argv]
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the official option dump
            opts = importlib.import_module("options.train_options").TrainOptions().parse()
    finally:
        sys.argv = old
    torch.manual_seed(0)
    if not hasattr(opts, "gpu"):  # CC-FPSE: set per process by its train.py (`opt.gpu = gpu`); None = default
        opts.gpu = None
    model = importlib.import_module("models.pix2pix_model").Pix2PixModel(opts)
    cpu_tensor_types(model)
    plain_adam = torch.optim.Adam

    def adam(params, *args, betas=(0.9, 0.999), **kwargs):  # TTUR's betas=(0, 0.9): today's Adam wants floats
        return plain_adam(params, *args, betas=tuple(float(b) for b in betas), **kwargs)

    torch.optim.Adam = adam
    try:
        opt_G, opt_D = model.create_optimizers(opts)
    finally:
        torch.optim.Adam = plain_adam
    return opts, model, opt_G, opt_D


def official_step(model, opt_G, opt_D, data: dict) -> dict[str, float]:
    opt_G.zero_grad()
    g_losses, _ = model(data, mode="generator")
    sum(g_losses.values()).mean().backward()
    opt_G.step()
    opt_D.zero_grad()
    d_losses = model(data, mode="discriminator")
    sum(d_losses.values()).mean().backward()
    opt_D.step()
    return {k: float(v.detach().mean()) for k, v in {**g_losses, **d_losses}.items()}


# official loss name -> condgen's
LOSS_NAMES = {"GAN": "G_GAN", "GAN_Feat": "G_feat", "VGG": "G_VGG", "KLD": "G_KLD", "D_Fake": "D_fake",
              "D_real": "D_real"}


def loss_diff(theirs: dict[str, float], ours: dict[str, float]) -> str:
    """Max absolute difference over the official losses (every one must have a condgen counterpart), and
    which loss it is."""
    diff, name = max((abs(v - ours[LOSS_NAMES[k]]), k) for k, v in theirs.items())
    return f"{diff:.1e} ({name})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", type=Path, required=True,
                    help="a checkout of NVlabs/SPADE or xh-liu/CC-FPSE")
    ap.add_argument("--model", choices=["spade", "ccfpse"], default="spade")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--ngf", type=int, default=32)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--label-sparse", default="auto",
                    help="condgen's label-sparse modes, comma-separated (e.g. 'auto,off'): one condgen "
                         "configuration each, all interleaved with the official step")
    args = ap.parse_args()
    modes = args.label_sparse.split(",")
    if not set(modes) <= {"auto", "on", "off"}:
        raise SystemExit(f"--label-sparse: auto, on or off (comma-separated), got {args.label_sparse!r}")
    if not (args.official / "models" / "pix2pix_model.py").is_file():
        raise SystemExit(f"{args.official} is not a checkout of the official code (no "
                         "models/pix2pix_model.py); git clone https://github.com/NVlabs/SPADE "
                         "(or xh-liu/CC-FPSE) first")
    torch.set_num_threads(args.threads)
    from benchmarks.harness import Config, Setup, miniature_coco
    from condgen.convert.keys import load_official_state
    from condgen.convert.official import official_renames

    device = torch.device("cpu")
    root = miniature_coco(max(args.size, 64), n=max(16, 2 * args.batch))
    vgg_file = random_vgg19(root)
    _, official, opt_G, opt_D = build_official(args.official, official_argv(args.model, args.size, args.ngf,
                                                                            args.batch, root), vgg_file)
    ours = {}
    for mode in modes:
        extra = () if use_vae(args.model, args.size) or args.model == "spade" else NO_VAE
        cfg = Config(args.model, size=args.size, ngf=args.ngf, ndf=args.ngf, batch=args.batch,
                     label_sparse=mode, extra=extra)
        ours[mode] = s = Setup(cfg, device)
        for name in ("G", "D", "E"):
            theirs = getattr(official, f"net{name}", None)
            if (theirs is None) != (name not in s.nets):
                raise SystemExit(f"net{name}: present on one side only (official {theirs is not None})")
            if theirs is not None:
                load_official_state(s.nets[name], theirs.state_dict(), official_renames(s.nets[name]), name)
        s.vgg.vgg.load_torchvision(vgg_file)
    sides = ["official", *modes]
    times: dict[str, list[float]] = {k: [] for k in sides}
    losses: list[dict[str, dict[str, float]]] = []
    source = ours[modes[0]]
    for r in range(args.rounds + 1):  # round 0: warm-up and the loss comparison (round 1's too)
        raw = next(source._batches)  # one loader batch (label ids, instance ids, image) for every side
        data = {"label": raw["label"].float(), "instance": raw["instance"].float(), "image": raw["image"],
                "path": raw["path"]}
        order = sides[r % len(sides):] + sides[:r % len(sides)]
        losses.append({})
        for side in order:
            torch.manual_seed(r)
            sync()
            t0 = time.perf_counter()
            if side == "official":
                out = official_step(official, opt_G, opt_D, dict(data))
            else:
                s = ours[side]
                out = {k: float(v) for k, v in s.step(s._to_device(raw)).items()}  # one-hot inside the time
            sync()
            losses[r][side] = out
            if r > 0:
                times[side].append(time.perf_counter() - t0)
    print(machine_line())
    for r in (0, 1):
        for side in sides:
            print(f"losses, step {r + 1}, {side}:", {k: f"{v:.7g}" for k, v in losses[r][side].items()})
    rows = []
    for mode in modes:
        ratios = [a / b for a, b in zip(times["official"], times[mode], strict=True)]
        print(f"per-round ratios official / condgen {mode}:", " ".join(f"{r:.2f}" for r in ratios))
        ratio = statistics.median(ratios)
        rows.append([args.model, args.size, args.ngf, args.batch, mode,
                     f"{statistics.median(times['official']):.2f}", f"{statistics.median(times[mode]):.2f}",
                     f"{ratio:.2f}x", loss_diff(losses[0]["official"], losses[0][mode]),
                     loss_diff(losses[1]["official"], losses[1][mode])])
    print(f"training step fp32, COCO-Stuff labels, official vs condgen interleaved, median of {args.rounds} "
          "rounds")
    print_table(["model", "size", "ngf", "batch", "label-sparse", "official s", "condgen s",
                 "condgen speed-up (median ratio)", "max loss diff step 1", "step 2"], rows)


if __name__ == "__main__":
    main()
