"""`condgen synthesize` never resizes silently: one warning with the sizes for a rescale, a refusal for an
aspect-ratio change unless --resize (issue: a 96x128 map was squashed to 64x64 without a word)."""

import numpy as np
import pytest
from PIL import Image

from condgen.cli.synthesize import main
from condgen.data.sizes import AspectRatioError, fit_size, same_aspect


def test_fit_size():
    assert not fit_size((64, 64), (64, 64), source="m.png")
    assert fit_size((128, 128), (64, 64), source="m.png")  # the same ratio: resized
    assert same_aspect((1023, 512), (512, 256)) and not same_aspect((96, 128), (64, 64))
    with pytest.raises(AspectRatioError, match=r"m.png: 128x96 pixels, but the model draws 64x64.*--resize"):
        fit_size((128, 96), (64, 64), source="m.png")
    assert fit_size((128, 96), (64, 64), source="m.png", resize=True)


def write_maps(folder, sizes):
    folder.mkdir()
    for i, (w, h) in enumerate(sizes):
        Image.fromarray(np.full((h, w), i % 3, np.uint8)).save(folder / f"m{i}.png")
    return folder


def test_synthesize_warns_once_with_the_sizes_and_refuses_a_squash(spade_run, tmp_path, capsys):
    """spade_run draws 32x32."""
    same_ratio = write_maps(tmp_path / "square", [(64, 64), (64, 64), (32, 32)])
    assert main(["--run", str(spade_run), "--labels", str(same_ratio), "--out", str(tmp_path / "a"),
                 "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning:") == 1
    assert "label maps resized (nearest) to the model's 32x32: 2 of 64x64 (e.g. m0.png)" in err

    squashed = write_maps(tmp_path / "tall", [(96, 128)])
    assert main(["--run", str(spade_run), "--labels", str(squashed), "--out", str(tmp_path / "b"),
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "m0.png: 96x128 pixels, but the model draws 32x32" in err and "--resize" in err
    assert not (tmp_path / "b").exists()
    assert main(["--run", str(spade_run), "--labels", str(squashed), "--out", str(tmp_path / "c"),
                 "--device", "cpu", "--resize"]) == 0
    assert "1 of 96x128" in capsys.readouterr().err
