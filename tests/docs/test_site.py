"""The documentation site builds in strict mode: a broken link, a missing page or anchor fails the suite."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_every_tutorial_and_api_page_is_in_the_nav():
    """Other guides may land before their nav entry (mkdocs then only notes it); these must be listed."""
    import yaml

    def pages(node) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, list):
            return [p for item in node for p in pages(item)]
        return [p for value in node.values() for p in pages(value)]

    # mkdocs.yml has no custom tags, so a plain YAML load reads it
    nav = set(pages(yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]))
    on_disk = {str(p.relative_to(REPO / "docs")) for folder in ("tutorials", "api")
               for p in (REPO / "docs" / folder).glob("*.md")} | {"index.md"}
    assert on_disk - nav == set(), f"pages missing from mkdocs.yml nav: {sorted(on_disk - nav)}"


def test_site_builds_strictly(tmp_path: Path):
    if shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("mkdocs is not installed: pip install -e '.[docs]'")
    out = subprocess.run([str(Path(sys.executable).parent / "mkdocs"), "build", "--strict", "--site-dir",
                          str(tmp_path / "site")], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={"NO_MKDOCS_2_WARNING": "1", "PATH": str(Path(sys.executable).parent)})
    assert out.returncode == 0, f"mkdocs build --strict failed:\n{out.stderr[-4000:]}"
    assert (tmp_path / "site" / "tutorials" / "01_quickstart" / "index.html").is_file()
    assert "SPADEGenerator" in (tmp_path / "site" / "api" / "networks" / "index.html").read_text()
