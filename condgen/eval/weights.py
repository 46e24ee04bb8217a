"""Pretrained weight files for evaluation: found offline, checked by SHA-256, never downloaded.

Every network the metrics need (the FID Inception, LPIPS's AlexNet, the paper segmenters) is a `WeightFile`:
its file name, where it is published, its SHA-256 (or the 8-hex prefix that torch.hub file names carry), and
the default place it is looked for (torch.hub's `checkpoints/` folder, honouring $TORCH_HOME). A missing file
is an error naming the file, its URL, its size and where to put it; a file with another digest than the
published one, or than a user's pin (`expected_sha256`), is an error too. `list_weights()` (and
`python -m condgen weights`) lists every file condgen knows with its status.
Caches that condgen writes itself (real-image statistics, the landscape segmenter) live under
`cache_dir()`: $CONDGEN_CACHE, else ~/.cache/condgen.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

CACHE_ENV = "CONDGEN_CACHE"
_DIGESTS: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256: hash each file once


class WeightsNotFoundError(FileNotFoundError):
    """A pretrained weight file is not on this machine; the message says what to fetch and where to put it."""


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
        filenames: accepted file names; the first is the canonical one, the one to fetch.
        url: where the canonical file is published.
        sha256: its full hex SHA-256, or a prefix of it (torch.hub names carry the first 8 hex digits);
            None when no digest has been published yet (the file's digest is still recorded in every result).
        env: an environment variable that may hold the file's path.
        size: its approximate size, for the missing-file message ("≈ 224 MB").
    """

    what: str
    filenames: tuple[str, ...]
    url: str
    sha256: str | None
    env: str | None = None
    size: str | None = None

    def candidates(self) -> list[Path]:
        """Where the file is looked for when no path is given: $env, then torch.hub's checkpoint folder."""
        found = [Path(os.environ[self.env]).expanduser()] if self.env and os.environ.get(self.env) else []
        return found + [hub_checkpoint_dir() / name for name in self.filenames]

    def find(self) -> Path | None:
        """The first existing candidate, or None (nothing is hashed or downloaded)."""
        return next((c for c in self.candidates() if c.is_file()), None)

    def resolve(self, path: str | Path | None = None, *, expected_sha256: str | None = None) -> Path:
        """The verified file: `path` if given, else the first existing candidate. Never downloads.

        Args:
            expected_sha256: a user's pin (full digest or prefix); a file with another digest is an error.
        """
        tried = [Path(path).expanduser()] if path is not None else self.candidates()
        for candidate in tried:
            if candidate.is_file():
                self.verify(candidate, expected_sha256=expected_sha256)
                return candidate
        where = ", ".join(str(p) for p in tried)
        via = f", or point ${self.env} at it" if self.env else ""
        size = f" ({self.size})" if self.size else ""
        raise WeightsNotFoundError(
            f"{self.what}: weights not found (looked at {where}); condgen never downloads weights. "
            f"Fetch {self.filenames[0]}{size} from {self.url} and put it at "
            f"{hub_checkpoint_dir() / self.filenames[0]}"
            f"{via}, or pass its path explicitly."
        )

    def verify(self, path: str | Path, *, expected_sha256: str | None = None) -> str:
        """Check the file's SHA-256 against the published one and the pin; returns the full digest."""
        digest = sha256_file(path)
        if expected_sha256 is not None and not digest.startswith(expected_sha256.lower()):
            raise WeightsMismatchError(
                f"{path}: SHA-256 {digest} does not match the pinned expected_sha256 "
                f"({expected_sha256}) for {self.what}; this is not the file the pin was taken from"
            )
        if self.sha256 is not None and not digest.startswith(self.sha256.lower()):
            raise WeightsMismatchError(
                f"{path}: SHA-256 {digest} does not match the published {self.what} ({self.sha256}...); "
                "the file is a different or truncated download. "
                f"Fetch {self.filenames[0]} again from {self.url}"
            )
        return digest
