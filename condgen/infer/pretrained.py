"""Named pretrained models: the released official checkpoints, what they are, and how a name resolves.

`MODELS` states for each released model its source, size and sha256 where known (None where condgen has not
verified the file yet: the official files sit in Google-Drive / Dropbox folders that can change), its
licence, the converter that turns it into a condgen run, and the paper's reported numbers with their
protocol. `resolve(name)` is offline-first:

1. an existing local folder (a `save_pretrained` folder, a run, a checkpoint, a converted folder);
2. a registered name with a Hugging Face Hub repo: `snapshot_download(..., local_files_only=...)` (the local
   cache first; a download only when allowed and HF_HUB_OFFLINE is unset), its files checked against the
   registered sha256;
3. a registered name without one: its converted folder under `converted_dir(name)` when present, else an
   error with the commands that fetch and convert the official files;
4. `org/name`: a Hub repo id, as in 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from condgen.weights import WEIGHT_FILES, WeightsMismatchError, cache_dir, sha256_file

NVIDIA_LICENSE = "cc-by-nc-sa-4.0"  # NVlabs/SPADE: CC BY-NC-SA 4.0; derived weights must keep it


class ChecksumError(WeightsMismatchError):
    """A file's sha256 differs from the registered one."""


@dataclass(frozen=True)
class ReleasedFile:
    """One file as its authors publish it."""

    name: str
    url: str  # the page or link the authors give (a Drive / Dropbox folder link where that is all there is)
    size: int | None = None  # bytes; None: not verified by condgen yet
    sha256: str | None = None  # None: not verified by condgen yet (the file must be hashed on first fetch)


@dataclass(frozen=True)
class PretrainedModel:
    """A released model condgen can load by name once it is fetched and converted.

    Attributes:
        converter: the `python -m condgen.convert` repo ('spade', 'ccfpse', 'oasis') and `flags` its
            official command line; `checkpoint_dir` the folder inside the unpacked release that holds it.
        reported: the paper's numbers for this model (FID, mIoU and pixel accuracy in %); `protocol` how
            they were measured, `source` the table they are printed in.
        hub_repo: a Hugging Face repo holding the converted `save_pretrained` folder, when one is published;
            `hub_files` the sha256 of its files.
    """

    name: str
    paper: str
    dataset: str
    files: tuple[ReleasedFile, ...]
    license: str
    converter: str
    flags: str
    checkpoint_dir: str
    reported: dict[str, float]
    protocol: str
    hub_repo: str | None = None
    hub_files: dict[str, str] = field(default_factory=dict)
    method: str = ""  # the method's short name in tables ("SPADE"); the leaderboard's reported rows use it
    source: str = ""  # where `reported` is printed ("SPADE, CVPR 2019, Table 2")

    def convert_command(self, release_dir: str = "<unpacked release>") -> str:
        return (
            f'python -m condgen.convert {self.converter} --flags "{self.flags}" '
            f"--checkpoint_dir {release_dir}/{self.checkpoint_dir} --out {converted_dir(self.name)}"
        )


SPADE_FILES = (ReleasedFile("checkpoints.tar.gz", "https://github.com/NVlabs/SPADE#pretrained-models"),)
CCFPSE_FILES = (
    ReleasedFile("CC-FPSE pretrained models", "https://github.com/xh-liu/CC-FPSE#pretrained-models"),
)
OASIS_FILES = (
    ReleasedFile("OASIS pretrained models", "https://github.com/boschresearch/OASIS#pretrained-models"),
)
SPADE_PROTOCOL = (
    "SPADE (CVPR 2019) Table 2: validation split at 256x256 (Cityscapes 512x256); mIoU / pixel accuracy of "
    "DeepLabV2 (COCO-Stuff), UperNet101 (ADE20K), DRN-D-105 (Cityscapes) on the generated "
    "images; FID against "
    "the validation images"
)
CCFPSE_PROTOCOL = (
    "CC-FPSE (NeurIPS 2019) Table 1: the SPADE protocol (same segmenters, FID on the validation set)"
)
OASIS_PROTOCOL = (
    "OASIS (ICLR 2021) main table as collected in docs/reference (FID / mIoU, standard protocol: 256x256 "
    "ADE20K / COCO-Stuff, 512x256 Cityscapes); condgen has not reproduced it"
)
_DATASETS = {"ade20k": "ADE20K", "coco": "CocoStuff", "cityscapes": "Cityscapes"}
_SPADE = {  # Table 2 (SPADE): mIoU, accu, FID
    "coco": {"mIoU": 37.4, "accu": 67.9, "FID": 22.6},
    "ade20k": {"mIoU": 38.5, "accu": 79.9, "FID": 33.9},
    "cityscapes": {"mIoU": 62.3, "accu": 81.9, "FID": 71.8},
}
_CCFPSE = {  # Table 1 (CC-FPSE)
    "coco": {"mIoU": 41.6, "accu": 70.7, "FID": 19.2},
    "ade20k": {"mIoU": 43.7, "accu": 82.9, "FID": 31.7},
    "cityscapes": {"mIoU": 65.5, "accu": 82.3, "FID": 54.3},
}
_OASIS = {
    "coco": {"mIoU": 44.1, "FID": 17.0},
    "ade20k": {"mIoU": 48.8, "FID": 28.3},
    "cityscapes": {"mIoU": 69.3, "FID": 47.7},
}
_CCFPSE_LICENSE = (
    "unknown (the CC-FPSE repository states no licence; its code derives from NVIDIA's "
    "CC BY-NC-SA 4.0 SPADE)"
)
# (name prefix, method, paper, table, files, licence, the official test command's architecture flags, the
# release's checkpoint folder, numbers, protocol); flags as the SPADE / CC-FPSE READMEs and OASIS's defaults
_RELEASES = (
    ("spade", "SPADE", "SPADE (Park et al., CVPR 2019)", "SPADE, CVPR 2019, Table 2", SPADE_FILES,
     NVIDIA_LICENSE, "--dataset_mode {d}", "checkpoints/{d}_pretrained", _SPADE, SPADE_PROTOCOL),
    ("ccfpse", "CC-FPSE", "CC-FPSE (Liu et al., NeurIPS 2019)", "CC-FPSE, NeurIPS 2019, Table 1",
     CCFPSE_FILES, _CCFPSE_LICENSE, "--dataset_mode {d} --netG condconv", "{d}_pretrained", _CCFPSE,
     CCFPSE_PROTOCOL),
    ("oasis", "OASIS", "OASIS (Schonfeld, Sushko et al., ICLR 2021)", "OASIS, ICLR 2021", OASIS_FILES,
     "agpl-3.0", "--dataset_mode {d}", "oasis_{d}_pretrained", _OASIS, OASIS_PROTOCOL),
)  # fmt: skip

MODELS: dict[str, PretrainedModel] = {
    f"{key}-{d}": PretrainedModel(
        f"{key}-{d}", paper, dataset, files, licence, key, flags.format(d=d), folder.format(d=d), numbers[d],
        protocol, method=method, source=table,
    )
    for key, method, paper, table, files, licence, flags, folder, numbers, protocol in _RELEASES
    for d, dataset in _DATASETS.items()
}

CLADE_FILES = (ReleasedFile("CLADE pretrained models", "https://github.com/tzt101/CLADE#pretrained-models"),)
DPGAN_FILES = (ReleasedFile("DP-GAN pretrained models", "https://github.com/sj-li/DP_GAN"),)
_CLADE_LICENSE = (
    "unknown (not checked by condgen; the CLADE repository is a fork of NVIDIA's CC BY-NC-SA 4.0 SPADE)"
)
# Release folder names are not verified (condgen has not fetched these releases). CLADE's numbers are not
# registered (not checked against the paper's tables here); DP-GAN's are the
# repository's results figure (FID / mIoU), for ADE20K and Cityscapes only: it has no COCO-Stuff model.
for _d, _dataset in _DATASETS.items():
    for _key, _method, _extra in (("clade", "CLADE", ""), ("clade-icpe", "CLADE-ICPE", " --add_dist")):
        MODELS[f"{_key}-{_d}"] = PretrainedModel(
            f"{_key}-{_d}", "CLADE (Tan et al., TPAMI 2021)", _dataset, CLADE_FILES, _CLADE_LICENSE, "clade",
            f"--dataset_mode {_d} --norm_mode clade{_extra}", f"checkpoints/{_d}_{_key.replace('-', '_')}",
            {}, "CLADE (TPAMI 2021): the SPADE protocol", method=_method, source="CLADE, TPAMI 2021",
        )
for _d, _numbers in (("ade20k", {"FID": 26.1, "mIoU": 52.7}), ("cityscapes", {"FID": 44.1, "mIoU": 73.6})):
    MODELS[f"dpgan-{_d}"] = PretrainedModel(
        f"dpgan-{_d}", "DP-GAN (Li et al., BMVC 2022)", _DATASETS[_d], DPGAN_FILES, "agpl-3.0", "dpgan",
        f"--dataset_mode {_d}", f"checkpoints/dpgan_{_d}", _numbers,
        "DP-GAN (BMVC 2022) as the repository's results figure states it (OASIS's protocol); condgen has not "
        "reproduced it", method="DP-GAN", source="DP-GAN, BMVC 2022 (repository results figure)",
    )


def register_pretrained(model: PretrainedModel) -> PretrainedModel:
    """Add a named model (new contenders register theirs)."""
    MODELS[model.name] = model
    return model


def converted_dir(name: str) -> Path:
    """Where the converted copy of a registered model lives: condgen's cache folder, `pretrained/<name>`
    ($CONDGEN_CACHE, else ~/.cache/condgen)."""
    return cache_dir("pretrained", name)


def verify_sha256(path: Path, expected: str | None) -> None:
    """Stop with the file, the expected and the found hash when they differ (nothing to check for None)."""
    if expected is None:
        return
    found = sha256_file(path)
    if found != expected.lower():
        raise ChecksumError(
            f"{path}: sha256 mismatch: expected {expected}, found {found}. The file is damaged or not the "
            "released one: delete it and fetch it again"
        )


def resolve(
    name_or_path: str | Path, *, local_files_only: bool | None = None, revision: str | None = None
) -> Path:
    """A local folder for a path, a registered name or a Hub repo id (see the module docstring)."""
    path = Path(name_or_path)
    if path.exists():
        return path
    name = str(name_or_path)
    model = MODELS.get(name)
    if model is not None and model.hub_repo:
        folder = hub_snapshot(model.hub_repo, local_files_only=local_files_only, revision=revision)
        for file, digest in model.hub_files.items():
            verify_sha256(folder / file, digest)
        return folder
    if model is not None:
        local = converted_dir(name)
        if local.exists():
            return local
        files = "; ".join(
            f"{f.name} from {f.url} (size {f.size or 'unknown'}, sha256 {f.sha256 or 'not recorded yet'})"
            for f in model.files
        )
        fetch = (
            WEIGHT_FILES[name].fetch_command
            if name in WEIGHT_FILES
            else f"download by hand (a Drive / Dropbox folder: no direct link to fetch) and unpack: {files}"
        )
        raise FileNotFoundError(
            f"{name} ({model.paper}, {model.dataset}; licence {model.license}) is not converted yet "
            f"and has no Hub copy registered. 1. Fetch the official release: {fetch}. 2. Convert it: "
            f"{model.convert_command()}"
        )
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return hub_snapshot(name, local_files_only=local_files_only, revision=revision)
    raise FileNotFoundError(
        f"{name_or_path} does not exist; give a run directory, a step_<N> checkpoint folder, a converted "
        f"official or save_pretrained folder, a registered name ({', '.join(sorted(MODELS))}) or a Hugging "
        "Face repo id (org/name)"
    )


def hub_snapshot(repo_id: str, *, local_files_only: bool | None, revision: str | None) -> Path:
    """The Hub repo's snapshot folder: the local cache first; downloads only if `local_files_only` is False
    (None: download when the cache lacks it and HF_HUB_OFFLINE is unset)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except LocalEntryNotFoundError:
        if local_files_only:
            raise FileNotFoundError(
                f"{repo_id} is not in the local Hugging Face cache and local_files_only=True; download it "
                f"once with network access (hf download {repo_id})"
            ) from None
    try:
        return Path(snapshot_download(repo_id, revision=revision))
    except LocalEntryNotFoundError as e:  # HF_HUB_OFFLINE=1
        raise FileNotFoundError(
            f"{repo_id} is not in the local Hugging Face cache and the Hub is offline (HF_HUB_OFFLINE): {e}"
        ) from None
