"""Pretrained weight files: declared once, found offline, checked by SHA-256, downloaded only on request.

Every network file condgen loads but does not train (the FID Inception, LPIPS's AlexNet, the VGG19 of
the perceptual loss, the paper segmenters) is a `WeightFile` declared beside the code that loads it: its
file name, its download URL, its SHA-256 (or the 8-hex prefix that torch.hub file names carry), and the
place it is looked for (torch.hub's `checkpoints/` folder, honouring $TORCH_HOME, or an environment
variable). `declare()` adds it to the catalogue that `condgen weights` lists and `condgen weights fetch NAME`
downloads from (`condgen.fetch`). Loading never downloads: a missing file is an error that ends with the
fetch command; a file with another digest than the published one, or than a user's pin
(`expected_sha256`), is an error too.
Caches that condgen writes itself (real-image statistics, the landscape segmenter) live under `cache_dir()`:
$CONDGEN_CACHE, else ~/.cache/condgen.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

CACHE_ENV = "CONDGEN_CACHE"
_DIGESTS: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256: hash each file once
WEIGHT_FILES: dict[str, WeightFile] = {}  # name -> declared file, filled by `declare` where each is loaded


class WeightsNotFoundError(FileNotFoundError):
    """A pretrained weight file is not on this machine; the message ends with the command that fetches it."""


class WeightsMismatchError(ValueError):
    """A weight file's SHA-256 is not the published one (a different or truncated file)."""


def cache_dir(*parts: str) -> Path:
    """condgen's own cache folder ($CONDGEN_CACHE, else $XDG_CACHE_HOME/condgen, else ~/.cache/condgen)."""
    xdg = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    root = os.environ.get(CACHE_ENV) or xdg / "condgen"
    return Path(root).expanduser().joinpath(*parts)


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file (memoised per path, size and modification time)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def hub_checkpoint_dir() -> Path:
    """torch.hub's weight cache (`$TORCH_HOME/hub/checkpoints`), where torchvision and pytorch-fid look."""
    return Path(torch.hub.get_dir()) / "checkpoints"


@dataclass(frozen=True)
class WeightFile:
    """One published weight file.

    Args:
        what: what the file is, for messages ("FID Inception-v3 (TF 2015-12-05 port)").
        filenames: accepted file names; the first is the canonical one, the name it is fetched under (and the
            name a mirror serves it by).
        url: its direct download URL.
        sha256: its full hex SHA-256, or a prefix of it (torch.hub names carry the first 8 hex digits);
            None when no digest has been published yet (the file's digest is still recorded in every result).
        env: an environment variable that may hold the file's path.
        size: its approximate size, for messages ("≈ 224 MB").
        name: the name `condgen weights fetch` knows it by (default: the canonical file name's stem).
        group: files that are only useful together share a group (a segmenter's encoder and decoder);
            `condgen weights fetch GROUP` fetches them all and a missing file's message names the group.
        page: where the file is published, when that is not `url` itself (a project page, a Drive folder).
        used_by: what loads it, for `condgen weights` ("fid", "vgg_loss", "segmenter:drn_d105_cityscapes").
    """

    what: str
    filenames: tuple[str, ...]
    url: str
    sha256: str | None
    env: str | None = None
    size: str | None = None
    name: str | None = None
    group: str | None = None
    page: str | None = None
    used_by: str | None = None

    @property
    def key(self) -> str:
        """The name `condgen weights fetch` takes."""
        return self.name or Path(self.filenames[0]).stem

    @property
    def fetch_command(self) -> str:
        """The one command that puts this file (and its group) where it is looked for."""
        return f"condgen weights fetch {self.group or self.key}"

    def destination(self) -> Path:
        """Where a fetch writes the file: torch.hub's checkpoint folder under its canonical name."""
        return hub_checkpoint_dir() / self.filenames[0]

    def candidates(self) -> list[Path]:
        """Where the file is looked for when no path is given: $env, then torch.hub's checkpoint folder."""
        found = [Path(os.environ[self.env]).expanduser()] if self.env and os.environ.get(self.env) else []
        return found + [hub_checkpoint_dir() / name for name in self.filenames]

    def find(self) -> Path | None:
        """The first existing candidate, or None (nothing is hashed or downloaded)."""
        return next((c for c in self.candidates() if c.is_file()), None)

    def resolve(
        self, path: str | Path | None = None, *, expected_sha256: str | None = None, check: bool = True
    ) -> Path:
        """The verified file: `path` if given, else the first existing candidate. Never downloads.

        Args:
            expected_sha256: a user's pin (full digest or prefix); a file with another digest is an error.
            check: compare the digest with the published one (False: a user's own copy of the weights under
                another serialisation, such as the official CC-FPSE `vgg19.pth`, is accepted).
        """
        tried = [Path(path).expanduser()] if path is not None else self.candidates()
        for candidate in tried:
            if candidate.is_file():
                if check or expected_sha256 is not None:
                    self.verify(candidate, expected_sha256=expected_sha256, published=check)
                return candidate
        raise WeightsNotFoundError(self.missing_message(tried))

    def missing_message(self, tried: list[Path] | None = None) -> str:
        """What is missing, where it was looked for, where it comes from; ends with the fetch command."""
        where = ", ".join(str(p) for p in (self.candidates() if tried is None else tried))
        via = f", point ${self.env} at it" if self.env else ""
        size = f" ({self.size})" if self.size else ""
        page = f"; published at {self.page}" if self.page else ""
        return (
            f"{self.what}: weights not found (looked at {where}). condgen downloads weights only on request: "
            f"{self.filenames[0]}{size} comes from {self.url}{page}; put it at {self.destination()}{via}, "
            f"or pass its path explicitly, or run: {self.fetch_command}"
        )

    def verify(self, path: str | Path, *, expected_sha256: str | None = None, published: bool = True) -> str:
        """Check the file's SHA-256 against the published one and the pin; returns the full digest."""
        digest = sha256_file(path)
        if expected_sha256 is not None and not digest.startswith(expected_sha256.lower()):
            raise WeightsMismatchError(
                f"{path}: SHA-256 {digest} does not match the pinned expected_sha256 "
                f"({expected_sha256}) for {self.what}; this is not the file the pin was taken from"
            )
        if published and not self.matches(digest):
            raise WeightsMismatchError(
                f"{path}: SHA-256 {digest} does not match the published {self.what} ({self.sha256}...); "
                f"the file is a different or truncated download. Fetch it again: {self.fetch_command}"
            )
        return digest

    def matches(self, digest: str) -> bool:
        """Whether a full hex digest agrees with the published one (always, when none is published)."""
        return self.sha256 is None or digest.startswith(self.sha256.lower())


def declare(weight_file: WeightFile) -> WeightFile:
    """Add a file to the catalogue that `condgen weights` lists and fetches from; returns it unchanged.

    Declaring the same file twice is harmless (a module reloaded); two different files under one name are an
    error, since `condgen weights fetch NAME` would be ambiguous.
    """
    old = WEIGHT_FILES.get(weight_file.key)
    if old is not None and old != weight_file:
        raise ValueError(
            f"weight file name {weight_file.key!r} is declared twice ({old.filenames[0]} and "
            f"{weight_file.filenames[0]}); give one of them another `name=`"
        )
    WEIGHT_FILES[weight_file.key] = weight_file
    return weight_file
