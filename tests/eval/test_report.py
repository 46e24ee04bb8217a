"""The comparison report on two tiny runs: table with protocol line, plots, side-by-side grid, HTML."""

import numpy as np
import pytest
from PIL import Image

from condgen.eval.evaluate import evaluate
from condgen.report import compare, paper_names


def test_report_on_two_tiny_runs(spade_run, vae_run, tiny_segmenter, tmp_path):
    for run in (spade_run, vae_run):
        evaluate(
            run,
            num_images=4,
            features="segmenter",
            segmenter=tiny_segmenter,
            cache=tmp_path / "c",
            kid_subsets=5,
        )
    md = compare(
        [spade_run, vae_run],
        tmp_path / "report",
        names=["spade", "spade+vae"],
        maps=3,
        notes="Tiny runs for a test.",
    )
    text = md.read_text()
    assert "| spade | SPADE | MsPatch |" in text and "| spade+vae | SPADE | MsPatch |" in text
    assert "real images (segmenter upper bound)" in text
    assert text.count("Protocol: 4 SyntheticLandscapes val images at 32x32") == 1  # one shared protocol line
    assert "not comparable" not in text and "Tiny runs for a test." in text
    for png in ("losses.png", "metrics.png", "samples.png"):
        assert (tmp_path / "report" / png).is_file() and f"]({png})" in text
    grid = np.asarray(Image.open(tmp_path / "report" / "samples.png"))
    assert grid.shape == (3 * 128 + 2 * 2, 4 * 128 + 3 * 2, 3)  # label | real | 2 runs; 32 px shown 4x
    html = (tmp_path / "report" / "report.html").read_text()
    assert html.count("<tr>") == 4 and "samples.png" in html  # header, 2 runs, upper bound


def test_compare_cli_names_the_files(spade_run, tiny_segmenter, tmp_path):
    from experiments.compare import main

    evaluate(
        spade_run,
        out=spade_run / "eval" / "val_step2_segmenter.json",
        num_images=4,
        features="segmenter",
        segmenter=tiny_segmenter,
        cache=tmp_path / "c",
        kid_subsets=5,
    )
    out = tmp_path / "report"
    assert main([str(spade_run), "--out", str(out), "--name", "mine", "--maps", "2"]) == 0
    assert {"mine.md", "mine.html", "mine_losses.png", "mine_metrics.png", "mine_samples.png"} <= {
        p.name for p in out.iterdir()
    }
    with pytest.raises(SystemExit):  # one name for two runs
        main([str(spade_run), str(spade_run), "--out", str(out), "--names", "one"])


def test_compare_writes_only_into_its_own_folders_and_leaves_nothing_on_failure(
    spade_run, tmp_path, capsys, monkeypatch
):
    """docs/training.md, "What survives what": the output-folder rule (`condgen.rundir.output_dir`)."""
    from condgen import report
    from condgen.cli.compare import main
    from condgen.rundir import check_output_dir

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("# my own report\n")
    assert main([str(spade_run), "--out", str(mine), "--maps", "1"]) == 2
    err = capsys.readouterr().err
    assert f"--out {mine} is a folder that is not empty (report.md)" in err and "Choose a new" in err
    assert [p.name for p in mine.iterdir()] == ["report.md"] and "my own" in (mine / "report.md").read_text()

    def broken(*args, **kwargs):
        raise ValueError("no validation maps to sample")

    monkeypatch.setattr(report, "sample_grid", broken)  # fails after losses.png and metrics.png are written
    assert main([str(spade_run), "--out", str(tmp_path / "new"), "--maps", "1"]) == 2
    assert "no validation maps" in capsys.readouterr().err and not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    assert main([str(spade_run), "--out", str(tmp_path / "empty"), "--maps", "1"]) == 2
    assert (tmp_path / "empty").is_dir() and not any((tmp_path / "empty").iterdir())
    monkeypatch.undo()
    assert main([str(spade_run), "--out", str(tmp_path / "empty"), "--maps", "1"]) == 0
    check_output_dir(tmp_path / "empty")  # now marked as condgen's: a later compare may write there again


def test_different_protocols_are_flagged(spade_run, vae_run, tiny_segmenter, tmp_path):
    evaluate(
        spade_run,
        out=spade_run / "eval" / "val_step2_segmenter.json",
        num_images=4,
        features="segmenter",
        segmenter=tiny_segmenter,
        cache=tmp_path,
        kid_subsets=5,
    )
    evaluate(
        vae_run,
        out=vae_run / "eval" / "val_step2_segmenter.json",
        num_images=3,
        features="segmenter",
        segmenter=tiny_segmenter,
        cache=tmp_path,
        kid_subsets=5,
    )
    text = compare([spade_run, vae_run], tmp_path / "r", maps=2).read_text()
    assert "not comparable" in text


def test_paper_names_of_the_table2_cells():
    from types import SimpleNamespace

    from condgen.blocks.cond_conv import CCResBlock
    from condgen.blocks.spade import SPADEResBlock

    def net(cls, **attrs):
        return type(cls, (), attrs)()

    pyramid = net("FeaturePyramidCondition")
    cc = SimpleNamespace(
        G=SimpleNamespace(head_0=CCResBlock.__new__(CCResBlock), condition=pyramid),
        D=net("FPSEDiscriminator", semantic_embedding=True),
    )
    assert paper_names(cc) == ("CC w/ FP", "FP+SE")
    spade = SimpleNamespace(
        G=SimpleNamespace(head_0=SPADEResBlock.__new__(SPADEResBlock), condition=pyramid),
        D=net("MultiscalePatchDiscriminator", semantic_embedding=True),
    )
    assert paper_names(spade) == ("SPADE w/ FP", "MsPatch+SE")


def test_report_labels_segmenter_feature_diversity(oasis_run, tiny_segmenter, tmp_path):
    """The report's diversity column is named after what was measured: never 'LPIPS' for seg features."""
    evaluate(
        oasis_run,
        num_images=2,
        features="segmenter",
        segmenter=tiny_segmenter,
        cache=tmp_path / "c",
        kid_subsets=5,
        diversity_maps=1,
        diversity_samples=2,
        diversity_features="segmenter",
    )
    text = compare([oasis_run], tmp_path / "report", names=["oasis"], maps=1).read_text()
    assert "seg-feature div." in text and "LPIPS" not in text
    assert "diversity seg_diversity (seg-feature-distance:landscape)" in text


def test_losses_plot_takes_the_terms_the_objective_logged(oasis_run, tmp_path):
    """OASIS logs G_adv / D_labelmix, which no fixed list of Pix2PixHD names knows: the plot finds them."""
    from condgen.objectives import OASISObjective
    from condgen.objectives.base import check_declared
    from condgen.report import RunSummary, plot_losses
    from condgen.rundir import METRICS_FILE
    from condgen.train.report import loss_keys, read_metrics

    records = read_metrics(oasis_run / METRICS_FILE)
    keys = loss_keys(records)
    assert {"G_adv", "D_fake", "D_real", "D_labelmix"} <= set(keys)
    assert "step" not in keys and "lr_G" not in keys and "images_per_s" not in keys
    assert set(keys) <= set(OASISObjective.loss_names)  # what the objective declares is what it logged
    assert keys.index("G_adv") < keys.index("D_fake")  # G's terms first, as the objective returns them
    png = plot_losses([RunSummary("oasis", oasis_run, losses=records)], tmp_path / "losses.png")
    assert png is not None and png.is_file()
    with pytest.raises(ValueError, match="G_bogus.*OASISObjective.loss_names"):
        check_declared(OASISObjective(), ["G_adv", "G_bogus"])
