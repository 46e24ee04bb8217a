"""`SynthesisPipeline`: a trained model as one object (label maps in, photos out).

`SynthesisPipeline.from_run(path)` loads a run directory, a checkpoint folder or a converted official folder;
`from_pretrained(name_or_folder)` also a `save_pretrained` folder or a registered name
(`condgen.infer.pretrained`). Loading leaves gin's global configuration as it found it: the run's config is
kept as text (`config`) and made active only inside `with pipe.config_scope():` (building the run's dataset
for evaluation needs its bindings); the dataset's conventions are resolved once into `dataset`.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from condgen.config import active_config, preserved_gin
from condgen.data.io import LABEL_EXTENSIONS, list_files, read_image, read_instance, read_label
from condgen.data.sizes import ResizeWarning, fit_size, resize_summary
from condgen.data.spec import DataSpec
from condgen.infer.dataset import DatasetInfo, resolve_dataset
from condgen.infer.latents import (
    NO_LATENT,
    LatentKind,
    UnsupportedInput,
    check_inputs,
    encode_style,
    generate,
    kind_of,
    local,
    to_uint8_image,
)
from condgen.infer.region_styles import region_inputs
from condgen.ops.layout import use_label_sparse
from condgen.utils import count_parameters

LabelInput = Tensor | np.ndarray | str | Path | Image.Image | Sequence[str | Path | Image.Image]
OUTPUT_TYPES = ("pil", "np", "pt")


@dataclass
class SynthesisPipeline:
    """A loaded generator with everything needed to use it.

    Attributes:
        gan: the networks (`G`, `E` the VAE style encoder or None, `D` or None where not loaded).
        spec: the shapes the networks take (`DataSpec`).
        dataset: class names, colours, don't-care and instance conventions (`DatasetInfo`).
        config: the run's operative gin config (text), active only inside `config_scope()`.
        provenance: where the weights came from (source, checkpoint, step, ema, official files).
        paper_names: the generator's and discriminator's names in the papers' tables.
        device: where the networks live.
    """

    gan: Any
    spec: DataSpec
    dataset: DatasetInfo
    config: str
    provenance: dict[str, Any]
    paper_names: tuple[str, str] = ("?", "?")
    device: str = "cpu"
    params: dict[str, int] = field(default_factory=dict)
    switches: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.params:
            self.params = {k: count_parameters(v) for k, v in self.gan.named().items()}
        if not self.switches:
            with self.config_scope():
                self.switches = run_switches()
        pin_depthwise_impl(self.gan, self.switches["cond_depthwise_impl"], self.device)

    # ----- loading
    @classmethod
    def from_run(cls, path: str | Path, *, ema: bool = False, device: str = "cpu") -> SynthesisPipeline:
        """Load a run directory (latest checkpoint), a `step_<N>` folder or a converted official folder.

        Args:
            ema: use the run's EMA generator.
        """
        from condgen.rundir import CONFIG_FILE, read_state
        from condgen.train.build import paper_names
        from condgen.train.state import load_run

        with preserved_gin():  # load_run parses the run's config into gin's global state: undone here
            gan, spec, info = load_run(path, ema=ema, device=device)
            ckpt = Path(info["checkpoint"])
            state = read_state(ckpt)
            dataset = resolve_dataset(state, spec, ckpt)
            switches = run_switches()  # the run's config is active here: no second parse in __post_init__
        recorded = state.get("paper_names")
        names = (recorded["G"], recorded["D"]) if recorded else paper_names(gan)
        config = (ckpt / CONFIG_FILE).read_text()
        return cls(gan, spec, dataset, config, info, names, device, switches=switches)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        *,
        ema: bool = False,
        device: str = "cpu",
        local_files_only: bool | None = None,
        revision: str | None = None,
    ) -> SynthesisPipeline:
        """A `save_pretrained` folder, a run / checkpoint / converted folder, or a registered or Hub name.

        Names resolve offline first (`condgen.infer.pretrained.resolve`): a registered model with a Hub
        repo comes from the local Hugging Face cache (downloaded only when `local_files_only` is False and
        HF_HUB_OFFLINE is unset); one without says how to fetch and convert the official files.
        """
        from condgen.infer.hub import load_folder
        from condgen.infer.pretrained import resolve

        folder = resolve(name_or_path, local_files_only=local_files_only, revision=revision)
        if (folder / "pipeline.json").is_file():
            return load_folder(cls, folder, ema=ema, device=device)
        return cls.from_run(folder, ema=ema, device=device)

    # ----- what it is
    @property
    def G(self) -> Any:
        return self.gan.G

    @property
    def E(self) -> Any:
        return self.gan.E

    @property
    def D(self) -> Any:
        return self.gan.D

    def named(self) -> dict[str, Any]:
        """The loaded networks by checkpoint name (G, D when loaded, E when present)."""
        return self.gan.named()

    @property
    def latent(self) -> LatentKind:
        """How the generator is called (`condgen.infer.latents.LatentKind`)."""
        return kind_of(self.G)

    @property
    def latent_kind(self) -> str | None:
        """'vae', 'noise', another registered kind's name, or None (label map only)."""
        name = self.latent.name
        return None if name == "none" else name

    def config_scope(self) -> Any:
        """`with pipe.config_scope():` the run's gin config is gin's global config (restored afterwards)."""
        return active_config(self.config, f"{self.provenance.get('checkpoint', 'the run')}/config.gin")

    def __repr__(self) -> str:
        counts = ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in self.params.items())
        return (
            f"SynthesisPipeline({self.paper_names[0]} on {self.dataset.name or 'an unnamed dataset'}, "
            f"{self.spec.size[0]}x{self.spec.size[1]}, latent {self.latent.name}, {counts}; "
            f"from {self.provenance.get('source')})"
        )

    # ----- label maps
    def encode(
        self, label_ids: Tensor, instance: Tensor | None = None, *, source: str = "label map"
    ) -> Tensor:
        """Label ids (b, 1, H, W) or (b, H, W) -> the generator's `seg` on the pipeline's device.

        The one label route (`DataSpec.encode`, which training uses too): 255 becomes don't care where the
        model has that channel; a model with instance edges needs `instance`.
        """
        # encoded on the device, so that `seg` there carries the label layout encoding attaches (the ids)
        label_ids = torch.as_tensor(label_ids).to(self.device)
        instance = torch.as_tensor(instance).to(self.device) if instance is not None else None
        return self.spec.encode(label_ids, instance, source=source)

    def read_labels(
        self, labels: LabelInput, instances: LabelInput | None = None, *, resize: bool = True
    ) -> tuple[list[str], Tensor, Tensor | None]:
        """(names, label ids (b, 1, H, W), instance ids or None) from tensors, arrays, PIL images, files
        or a folder of label PNGs; files are resized (nearest) to the model's size (as officially), with one
        `ResizeWarning` naming the sizes; `resize=False` refuses a change of aspect ratio
        (`AspectRatioError`, what `condgen synthesize` does without --resize)."""
        if isinstance(labels, (Tensor, np.ndarray)):
            ids = torch.as_tensor(labels).long()
            ids = ids[None] if ids.dim() == 2 else ids
            ids = ids[:, None] if ids.dim() == 3 else ids
            inst = None
            if instances is not None:
                inst = torch.as_tensor(instances).long()
                inst = inst[None] if inst.dim() == 2 else inst
                inst = inst[:, None] if inst.dim() == 3 else inst
            return [f"map_{i:05d}" for i in range(len(ids))], ids, inst
        items = _items(labels)
        inst_items = _items(instances) if instances is not None else None
        if inst_items is not None and len(inst_items) != len(items):
            raise ValueError(f"{len(items)} label maps but {len(inst_items)} instance maps")
        names, ids, insts, resized = [], [], [], {}
        for k, item in enumerate(items):
            names.append(Path(item).stem if isinstance(item, (str, Path)) else f"map_{k:05d}")
            ids.append(self._read_map(item, read_label, resize, resized, names[-1]))
            if inst_items is not None:
                insts.append(self._read_map(inst_items[k], read_instance, True, {}, names[-1]))
        if resized:
            h, w = self.spec.size
            warnings.warn(resize_summary(resized, (w, h)), ResizeWarning, stacklevel=2)
        return names, torch.cat(ids), (torch.cat(insts) if insts else None)

    def _read_map(self, item: Any, reader: Any, resize: bool, resized: dict, name: str) -> Tensor:
        h, w = self.spec.size
        img = reader(item) if isinstance(item, (str, Path)) else item
        source = str(item) if isinstance(item, (str, Path)) else name
        if fit_size(img.size, (w, h), source=source, resize=resize):  # PIL sizes are (W, H)
            resized.setdefault(img.size, []).append(Path(source).name)
            img = img.resize((w, h), Image.NEAREST)  # ids nearest, as the official loader does
        return torch.from_numpy(np.asarray(img).astype(np.int64))[None, None]

    # ----- synthesis
    def generate(
        self, seg: Tensor, indices: list[int], *, seed: int, sample: int = 0, **options: Any
    ) -> Tensor:
        """Images (b, 3, H, W) in [-1, 1] for an encoded `seg`; latents from (seed, index, sample).

        `options`: `style`, `region_styles`, `steps`, as `condgen.infer.latents.generate` takes them."""
        with self.speed_switches():
            return generate(self.gan, seg, indices, seed=seed, sample=sample, **options)

    def speed_switches(self) -> contextlib.AbstractContextManager:
        """`with pipe.speed_switches():` the run's label-sparse setting, not the caller's gin config
        (CONDGEN_LABEL_SPARSE, set by the user, still wins)."""
        if os.environ.get("CONDGEN_LABEL_SPARSE"):
            return contextlib.nullcontext()
        return use_label_sparse(self.switches["label_sparse"])

    def encode_style(self, image: Image.Image | str | Path) -> tuple[Tensor, Tensor]:
        """A style photo (any size; resized bicubic) -> (mu, logvar) of the VAE encoder, for `style=`."""
        if self.E is None:
            raise UnsupportedInput(
                f"{self.provenance.get('source')}: style images need the VAE style encoder; this model has "
                f"none (latent kind {self.latent.name!r})"
            )
        image = read_image(image) if isinstance(image, (str, Path)) else image
        return encode_style(self.gan, image, self.spec, device=self.device)[1]

    def check(
        self, *, samples: int = 1, style: Any = None, region_styles: Any = None, steps: Any = None
    ) -> None:
        """Refuse what this model cannot do, naming its latent kind."""
        kind = self.latent
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        if samples > 1 and not kind.multimodal:
            raise ValueError(
                f"{self.provenance.get('source')}: {NO_LATENT}; samples > 1 needs a multi-modal model"
            )
        if style is not None and self.E is None and kind.name != "region_styles":
            raise ValueError(
                f"{self.provenance.get('source')}: style needs the VAE style encoder; this model has none "
                "(use_vae = False)"
            )
        check_inputs(kind, type(self.G).__name__, region_styles=region_styles, steps=steps)

    def __call__(
        self, labels: LabelInput, *, seed: int = 0, samples: int = 1, style: Any = None,
        region_styles: Any = None, steps: int | None = None, instance: LabelInput | None = None,
        output_type: str = "pil",
    ) -> Any:
        """Images for label maps: `samples` per map, latents drawn from (seed, map index, sample).

        Args:
            labels: a (b, H, W) / (H, W) integer tensor or array of class ids (255 = unlabelled), or label
                PNG paths / PIL images / a folder of them (resized nearest to the model's size).
            style: VAE models: a style image (path or PIL) or `encode_style`'s (mu, logvar). Region-style
                models (SEAN): the default look, a photo read with each label map, a (photo, its label map)
                pair or a `.safetensors` style file (`condgen.infer.region_styles`).
            region_styles: region-style models: {class id or name: photo, (photo, label map), style file or
                vector}, e.g. {"sky": "sunset.jpg"}; other kinds refuse it (`NotImplementedError`).
            steps: sampler steps, for model kinds that take them.
            instance: instance maps, like `labels`, for models with instance edges.
            output_type: 'pil' (default): a list of b * samples RGB images, map by map (map 0's samples
                first); 'np': uint8 (b, samples, H, W, 3); 'pt': float (b, samples, 3, H, W) in [-1, 1].
                'pil' and 'np' hold exactly the pixels `synthesize` writes to its PNGs.
        """
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r}")
        self.check(samples=samples, style=style, region_styles=region_styles, steps=steps)
        if self.latent.name == "region_styles":  # SEAN: photos, style files, vectors per class
            style, region_styles = region_inputs(self, style, region_styles)
        elif style is not None and not isinstance(style, tuple):
            style = self.encode_style(style)
        _, ids, inst = self.read_labels(labels, instance)
        seg = self.encode(ids, inst)
        idx = list(range(len(seg)))
        out = torch.stack(
            [
                self.generate(
                    seg, idx, seed=seed, sample=k, style=style, region_styles=region_styles, steps=steps
                ).cpu()
                for k in range(samples)
            ],
            dim=1,
        )
        return _output(out, output_type)

    def resample(
        self,
        labels: LabelInput,
        class_: int | str,
        *,
        seed: int = 0,
        samples: int = 2,
        instance: LabelInput | None = None,
        output_type: str = "pil",
    ) -> Any:
        """OASIS's local resampling: sample 0 is the map's image; samples 1.. redraw the 3-D noise only
        inside the region of `class_` (an id or a class name), so the rest stays. Outputs as `__call__`'s."""
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r}")
        channel = self.resample_channel(class_, samples)
        _, ids, inst = self.read_labels(labels, instance)
        seg = self.encode(ids, inst)
        idx = list(range(len(seg)))
        out = [self.generate(seg, idx, seed=seed).cpu()]
        out += [
            local(self.gan, seg, idx, seed=seed, sample=k, channel=channel).cpu() for k in range(1, samples)
        ]
        return _output(torch.stack(out, dim=1), output_type)

    def resample_channel(self, class_: int | str, samples: int) -> int:
        """The channel local resampling redraws; refuses models without 3-D noise and samples < 2."""
        kind = self.latent
        if "resample" not in kind.accepts:
            raise ValueError(
                f"{self.provenance.get('source')}: local resampling (--resample_class) needs a generator "
                "with "
                "3-D noise (OASIS, `condition = @NoiseCondition`): new noise inside one region. "
                + (
                    "this one has a VAE latent, one vector for the whole image"
                    if kind.multimodal
                    else NO_LATENT
                )
            )
        if samples < 2:
            raise ValueError(
                "--resample_class writes the original (sample 0) and N - 1 resampled versions; "
                "give --samples N >= 2"
            )
        return self.dataset.class_id(class_)

    # ----- sharing
    def save_pretrained(self, folder: str | Path, **card: Any) -> Path:
        """A self-describing folder: weights, config.gin, classes.json, protocol.json, README.md model card
        (see `condgen.infer.hub.save_folder` for the keywords)."""
        from condgen.infer.hub import save_folder

        return save_folder(self, Path(folder), **card)

    def push_to_hub(
        self, repo_id: str, *, private: bool = False, token: str | None = None, **card: Any
    ) -> Any:
        """`save_pretrained` into a temporary folder and upload it with `HfApi.upload_folder`."""
        from condgen.infer.hub import push

        return push(self, repo_id, private=private, token=token, **card)


def _items(labels: Any) -> list[Any]:
    if isinstance(labels, (str, Path)) and Path(labels).is_dir():
        files = list_files(Path(labels), LABEL_EXTENSIONS)
        if not files:
            raise FileNotFoundError(f"no label maps ({', '.join(LABEL_EXTENSIONS)}) in {labels}")
        return files
    if isinstance(labels, (str, Path, Image.Image)):
        return [labels]
    return list(labels)


def _output(images: Tensor, output_type: str) -> Any:
    """(b, samples, 3, H, W) in [-1, 1] -> the requested output type."""
    if output_type == "pt":
        return images
    arr = np.stack([np.stack([to_uint8_image(s) for s in per_map]) for per_map in images])
    if output_type == "np":
        return arr
    return [Image.fromarray(s) for per_map in arr for s in per_map]


def load(name_or_path: str | Path, **kwargs: Any) -> SynthesisPipeline:
    """`condgen.load("spade-coco")`, `condgen.load("runs/quickstart")` (`from_pretrained`)."""
    return SynthesisPipeline.from_pretrained(name_or_path, **kwargs)


def run_switches() -> dict[str, str]:
    """The speed switches the active gin config binds (read once at load, while the run's config is active),
    so that a loaded model computes as its run did whatever the caller's gin config holds."""
    import gin

    def bound(selector: str, default: str) -> str:
        try:
            return gin.query_parameter(selector)
        except ValueError:  # not bound: the op's default
            return default

    return {"label_sparse": bound("label_sparse.mode", "auto"),
            "cond_depthwise_impl": bound("cond_depthwise_conv2d.impl", "lean")}


def pin_depthwise_impl(gan: Any, impl: str, device: str) -> None:
    """Conditional depthwise convolutions left to gin's choice get the run's (Triton only on CUDA)."""
    from condgen.blocks.cond_conv import CondDepthwiseConv

    if impl == "triton" and not str(device).startswith("cuda"):
        impl = "auto"  # Triton on CUDA, the lean op elsewhere
    for net in gan.named().values():
        for m in net.modules():
            if isinstance(m, CondDepthwiseConv) and m.impl is None:
                m.impl = impl
