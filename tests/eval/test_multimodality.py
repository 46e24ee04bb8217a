"""The quickstart's closing numbers: seg_diversity of random-z samples, style_consistency of the encoder."""

import json

import torch

from condgen.eval.multimodality import describe, multimodality


def test_a_vae_runs_diversity_and_style_consistency(vae_run, spade_run, tiny_segmenter):
    numbers = multimodality(vae_run, maps=4, samples=3, segmenter=tiny_segmenter)
    assert numbers["maps"] == 4 and numbers["samples"] == 3
    assert 0 < numbers["seg_diversity"] <= 4  # a VAE's samples differ (after 2 steps, barely: ~1e-6)
    assert -1 <= numbers["style_consistency"] <= 1
    again = multimodality(vae_run, maps=4, samples=3, segmenter=tiny_segmenter)
    assert again == numbers  # seeded: the same numbers every time
    lines = describe(multimodality(vae_run, maps=4, segmenter=None))
    assert "seg_diversity not computed" in lines[0] and "style_consistency" in lines[1]
    assert multimodality(spade_run) == {}  # no encoder: nothing to measure


def test_the_training_command_adds_them_to_the_summary(vae_run, tmp_path, capsys):
    """What `experiments/run.py` does after a VAE run on the landscapes (the quickstart)."""
    import shutil

    from condgen.cli.gin_setup import parse_gin
    from condgen.cli.train import report_multimodality

    run = shutil.copytree(vae_run, tmp_path / "run")
    parse_gin([run / "config.gin"], [])
    (run / "summary.json").write_text(json.dumps({"step": 2}))
    with torch.random.fork_rng():
        numbers = report_multimodality(run)
    out = capsys.readouterr().out
    assert "style_consistency" in out and "seg_diversity" in out
    assert json.loads((run / "summary.json").read_text())["multimodality"] == numbers
