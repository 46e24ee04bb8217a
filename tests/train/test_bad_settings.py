"""Bad setting values: exit 2 and one message that names the binding and the fix, before any work."""

import pytest

from condgen.cli.train import main
from tests.train.test_loop import TINY

BAD = {
    "train.mixed_precision = 'fp8'": "train.mixed_precision = 'fp8'",
    "BATCH_SIZE = 0": "train.batch_size = 0 must be >= 1",
    "train.lr = 'abc'": "train.lr = 'abc' must be a positive number",
    "train.max_steps = 0": "train.max_steps = 0 must be >= 1 or None",
    "train.save_every = 2.5": "train.save_every = 2.5 is not a whole number",
    "SyntheticLandscapes.length = 1": "the dataset has 1 items but one global batch needs 2",
    "SyntheticLandscapes.crop_size = 40": "crop_size=40",
}


@pytest.mark.parametrize("binding", sorted(BAD))
def test_bad_value_exits_2_naming_it_before_any_work(binding, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main(["--gin", str(TINY), "--gin_bindings", binding, "--run_dir", str(run_dir)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert BAD[binding] in err and err.startswith("error: ")
    assert "Traceback" not in err and "<function" not in err and "In call to configurable" not in err
    assert not run_dir.exists()  # nothing written: no config.gin, metrics.jsonl or tb/


def test_a_gin_syntax_error_names_the_binding_or_the_file_and_line(tmp_path, capsys):
    assert (
        main(["--gin", str(TINY), "--gin_bindings", "SPADE.kernel_size = (3", "--run_dir", str(tmp_path)])
        == 2
    )
    err = capsys.readouterr().err
    assert (
        "--gin_bindings 'SPADE.kernel_size = (3'" in err and "never closed" in err and "TokenError" not in err
    )
    bad = tmp_path / "bad.gin"
    bad.write_text(
        "include 'base/train.gin'\n# a comment\ntrain.seed = 1\nSPADE.kernel_size = (3\ntrain.lr = 1e-4\n"
    )
    assert main(["--gin", str(bad), "--run_dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}, line 4: 'SPADE.kernel_size = (3'" in err
