import subprocess
import sys
from pathlib import Path

import gin
import pytest

from condgen.cli import train as train_cli
from condgen.cli.gin_setup import ConfigError, parse_gin
from condgen.cli.train import main
from condgen.rundir import mark_run_dir

REPO = Path(__file__).resolve().parents[2]
TINY = Path(__file__).with_name("tiny.gin")


def checkpoint_config(run_dir, text):
    """A run directory whose one checkpoint holds `text` as its config.gin (what --resume compares with)."""
    ckpt = run_dir / "step_1"
    ckpt.mkdir(parents=True)
    mark_run_dir(run_dir)
    (ckpt / "state.json").write_text('{"step": 1}')
    (ckpt / "config.gin").write_text(text)


def error_of(capsys, argv):
    assert main(argv) == 2
    return capsys.readouterr().err


def test_includes_resolve_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parse_gin([TINY], ["train.seed = 7"])
    assert gin.query_parameter("train.seed") == 7
    assert gin.query_parameter("GANLoss.mode") == "hinge"  # from the included base/train.gin
    parse_gin(["gin/quickstart.gin"], [])  # repo-relative, although the cwd is elsewhere
    parse_gin(["quickstart.gin"], [])  # relative to gin/


def test_bindings_override_files_and_macros_resolve_late():
    parse_gin([TINY], ["BATCH_SIZE = 5", "train.max_steps = 9"])
    assert gin.query_parameter("%BATCH_SIZE") == 5 and gin.query_parameter("train.max_steps") == 9


def test_unknown_configurable_lists_that_kind_with_close_matches(capsys, tmp_path):
    err = error_of(capsys, ["--gin", str(TINY), "--gin_bindings", "SPADEGenerater.ngf = 4",
                            "--run_dir", str(tmp_path / "run")])
    assert "unknown configurable 'SPADEGenerater'" in err
    assert "Did you mean 'SPADEGenerator'" in err and "registered generators:" in err
    assert "CCFPSEGenerator" in err
    assert not (tmp_path / "run").exists()  # failed before any work


def test_unknown_reference_in_a_binding(capsys):
    err = error_of(capsys, ["--gin", str(TINY), "--gin_bindings", "build_gan.discriminator = @FPSEDiscrim"])
    assert "'FPSEDiscrim'" in err and "FPSEDiscriminator" in err and "registered discriminators" in err


def test_unknown_parameter_lists_the_parameters(capsys):
    err = error_of(capsys, ["--gin", str(TINY), "--gin_bindings", "train.lamda_vgg = 1.0"])
    assert "train has no parameter 'lamda_vgg'" in err and "Did you mean 'lambda_vgg'" in err
    assert "batch_size" in err


def test_missing_gin_file_names_the_path(capsys):
    err = error_of(capsys, ["--gin", "gin/spade_cocoo.gin"])
    assert "gin file 'gin/spade_cocoo.gin' not found" in err and "quickstart.gin" in err


def test_missing_include_and_syntax_error(tmp_path, capsys):
    bad = tmp_path / "bad.gin"
    bad.write_text("include 'base/nope.gin'\n")
    assert "nope.gin" in error_of(capsys, ["--gin", str(bad)])
    bad.write_text("train.lr = (1e-4\n")
    assert "cannot parse" in error_of(capsys, ["--gin", str(bad)])


def test_bad_flags_exit_with_usage():
    out = subprocess.run([sys.executable, str(REPO / "experiments" / "run.py"), "--gin-file", "x.gin"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "unrecognized arguments: --gin-file" in out.stderr
    out = subprocess.run([sys.executable, str(REPO / "experiments" / "run.py")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--gin" in out.stderr


def test_resume_rejects_a_changed_architecture(tmp_path):
    run_dir = tmp_path / "run"
    parse_gin([TINY], [])
    from condgen.data.landscapes import SyntheticLandscapes
    from condgen.train.build import build_gan

    build_gan(SyntheticLandscapes().spec)  # records the operative architecture bindings
    checkpoint_config(run_dir, gin.operative_config_str())
    args = train_cli.build_parser().parse_args(["--gin", str(TINY), "--run_dir", str(run_dir), "--resume"])
    assert train_cli.prepare(args) == (run_dir, True)
    args.gin_bindings = ["SPADEGenerator.ngf = 16", "train.max_steps = 50"]  # only the first is refused
    with pytest.raises(ConfigError, match=r"SPADEGenerator.ngf = 8 saved, 16 now"):
        train_cli.prepare(args)
    args.gin_bindings = ["train.max_steps = 50"]
    train_cli.prepare(args)
    assert gin.query_parameter("train.max_steps") == 50


def test_resume_refuses_another_dataset_unless_asked(tmp_path):
    parse_gin([TINY], [])
    from condgen.data.landscapes import SyntheticLandscapes

    SyntheticLandscapes()
    checkpoint_config(tmp_path, gin.config_str())  # what a trained run saves names train.dataset too
    other = ["train.dataset = @CustomFolder", "CustomFolder.root = '/data/mine'", "CustomFolder.label_nc = 9"]
    argv = ["--run_dir", str(tmp_path), "--resume", "--gin_bindings"]
    with pytest.raises(ConfigError, match=r"train.dataset = @SyntheticLandscapes saved, @CustomFolder now"):
        train_cli.prepare(train_cli.build_parser().parse_args(argv + other))
    changed = r"SyntheticLandscapes.length = 8 saved, 16 now.*--allow_dataset_change"
    with pytest.raises(ConfigError, match=changed):
        train_cli.prepare(train_cli.build_parser().parse_args(argv + ["SyntheticLandscapes.length = 16"]))
    train_cli.prepare(train_cli.build_parser().parse_args(argv + ["train.max_steps = 9"]))  # not the data
    train_cli.prepare(train_cli.build_parser().parse_args(["--allow_dataset_change", *argv, *other]))
    assert gin.query_parameter("train.dataset").selector.endswith("CustomFolder")


def test_resume_compares_what_macros_stand_for(tmp_path):
    parse_gin([TINY], ["NGF = 8", "SPADEGenerator.ngf = %NGF"])
    from condgen.data.landscapes import SyntheticLandscapes
    from condgen.train.build import build_gan

    build_gan(SyntheticLandscapes().spec)
    checkpoint_config(tmp_path, gin.operative_config_str())
    assert "SPADEGenerator.ngf = %NGF" in (tmp_path / "step_1" / "config.gin").read_text()
    args = train_cli.build_parser().parse_args(["--run_dir", str(tmp_path), "--resume",
                                                "--gin_bindings", "NGF = 8"])
    train_cli.prepare(args)  # same value: fine
    args.gin_bindings = ["NGF = 16"]
    with pytest.raises(ConfigError, match="SPADEGenerator.ngf = 8 saved, 16 now"):
        train_cli.prepare(args)


def test_resume_without_gin_files_uses_the_saved_config(tmp_path):
    parse_gin([TINY], ["train.seed = 3"])
    mark_run_dir(tmp_path)  # a run killed before its first checkpoint: its config.gin is the base
    (tmp_path / "config.gin").write_text(gin.config_str())
    args = train_cli.build_parser().parse_args(["--run_dir", str(tmp_path), "--resume"])
    gin.clear_config()
    train_cli.prepare(args)
    assert gin.query_parameter("train.seed") == 3
    args = train_cli.build_parser().parse_args(["--run_dir", str(tmp_path / "empty"), "--resume"])
    with pytest.raises(ConfigError, match="give the --gin files"):
        train_cli.prepare(args)


def test_default_run_dir_follows_the_last_gin_file():
    assert train_cli.default_run_dir(["gin/base/x.gin", "gin/quickstart.gin"]) == Path("runs/quickstart")


def test_the_train_command_lives_in_cli_train(monkeypatch):
    """`condgen train` and experiments/run.py run `condgen.cli.train.main`; gin_setup keeps gin parsing."""
    from condgen.cli import gin_setup
    from condgen.cli import main as cli_main

    assert not hasattr(gin_setup, "main") and not hasattr(gin_setup, "prepare")
    seen = []
    monkeypatch.setattr(train_cli, "main", lambda argv: seen.append(argv) or 7)
    assert cli_main.main(["train", "--gin", "x.gin"]) == 7 and seen == [["--gin", "x.gin"]]
    run_py = (Path(__file__).resolve().parents[2] / "experiments" / "run.py").read_text()
    assert "from condgen.cli.train import main" in run_py
