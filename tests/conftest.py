import os
from pathlib import Path

import gin
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `pytest -n 2` on 2 cores: one intra-op thread per worker, or the workers fight over the cores.
    torch.set_num_threads(1)
PARITY_DIR = Path(os.environ.get("CONDGEN_PARITY_DIR", REPO.parent / "shared" / "fixtures" / "official"))


@pytest.fixture(autouse=True)
def _clean_gin():
    """Direct construction reads gin bindings too: every test starts and ends with none."""
    gin.clear_config()
    yield
    gin.clear_config()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def load_fixture(name: str) -> dict:
    """An official-code parity fixture; skips with a clear message only when the folder is absent."""
    path = PARITY_DIR / name
    if not PARITY_DIR.is_dir():
        pytest.skip(f"parity fixtures not found at {PARITY_DIR} (set CONDGEN_PARITY_DIR)")
    return torch.load(path, weights_only=True)


def one_thread():
    """Tiny tensors run faster on one thread, and stay fast when other jobs share the cores.

    Not autouse here; a folder's conftest opts in:
    `_one_thread = pytest.fixture(autouse=True)(one_thread)`.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def declared_png(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height 1-bit pixels, with a few bytes of pixel data: a tiny file
    of a huge image (30000 x 30000 is over PIL's decompression-bomb limit)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(bytes(64)))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")
