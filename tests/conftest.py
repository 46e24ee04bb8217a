import os
from pathlib import Path

import gin
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `pytest -n 2` on 2 cores: one intra-op thread per worker, or the workers fight over the cores.
    torch.set_num_threads(1)
# The official-code parity fixtures shipped with the tests (tests/fixtures/official, see its README); point
# CONDGEN_PARITY_DIR at the full-size originals (../shared/fixtures/official) to test against those.
SHIPPED_PARITY_DIR = REPO / "tests" / "fixtures" / "official"
PARITY_DIR = Path(os.environ.get("CONDGEN_PARITY_DIR", SHIPPED_PARITY_DIR))


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
    """An official-code parity fixture: state dicts `G`, `D`, `E`, inputs and the official outputs.

    A shipped fixture stores parameters as their recipe and large outputs sampled (`tests/fixtures/
    compact.py`): it is expanded here to the layout of the full-size originals, except that sampled outputs
    stay sampled (compare them with `compact.max_error`)."""
    from tests.fixtures.recipe import build_state_dict, recipe_tensor

    path = PARITY_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"parity fixture {path} is missing: unset CONDGEN_PARITY_DIR to use the "
                                f"shipped ones, or regenerate them (python -m tests.fixtures.make_official)")
    fx = torch.load(path, weights_only=True)
    for net in ("G", "D", "E"):
        if "recipe" in fx.get(net, {}):
            state = build_state_dict(fx[net]["recipe"], fx[net]["buffers"])
            fx[net] = {key: state[key] for key in fx[net]["keys"]}  # the official checkpoint's key order
    for key in ("img", "z"):
        if f"{key}_recipe" in fx:
            fx[key] = recipe_tensor(**fx.pop(f"{key}_recipe"))
    return fx


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
