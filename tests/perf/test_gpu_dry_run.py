"""`python -m benchmarks.gpu --dry-run`: the GPU script runs end to end at tiny sizes on CPU.

The cheap items only (the harness items take minutes on 2 shared cores; run the full dry run by hand:
`python -m benchmarks.gpu --dry-run`)."""

import json

from benchmarks import gpu


def test_gpu_script_dry_run_writes_json_and_markdown(tmp_path):
    out = tmp_path / "gpu"
    only = "triton_vs_reference,label_sparse_vs_dense,syncbatchnorm_one_process,triton_op"
    results = gpu.main(["--dry-run", "--out", str(out), "--only", only])
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["dry_run"] and set(saved["checks"]) | set(saved["benchmarks"]) == set(only.split(","))
    assert results["checks"]["label_sparse_vs_dense"]["passed"]
    assert results["checks"]["syncbatchnorm_one_process"]["passed"]
    assert "error" not in json.dumps(saved)
    assert out.with_suffix(".md").read_text().startswith("## GPU run")
