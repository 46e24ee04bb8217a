import pytest

from condgen.data.miniature import make_miniature


@pytest.fixture(scope="session")
def roots(tmp_path_factory):
    """Miniature datasets in the official layouts, as the gin files' *_ROOT macros: a few items each."""
    base = tmp_path_factory.mktemp("miniatures")
    return {
        "COCO_ROOT": make_miniature("coco", base / "coco", n=2, size=64),
        "ADE20K_ROOT": make_miniature("ade20k", base / "ade", n=2, size=64),
        "CITYSCAPES_ROOT": make_miniature("cityscapes", base / "cs", n=2, size=128),
        "CUSTOM_ROOT": make_miniature("custom", base / "custom", n=2, size=64),
    }
