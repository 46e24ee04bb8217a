"""The tutorial-block extractor: markers, substitutions, and the errors that catch a stale marker."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.blocks import runnable_blocks


def _md(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "t.md"
    path.write_text(text)
    return path


def test_only_marked_blocks_with_substitutions_in_order(tmp_path):
    path = _md(tmp_path, """
```bash
not run
```
<!-- test: run replace="800 => 2" replace='"a" => "b"' -->
```bash
run --steps 800 --x "a"
```
<!-- test: save path="m.py" -->
```text
x = 1
```
<!-- test: run -->
```python
print(1)
```
""")
    blocks = runnable_blocks(path)
    assert [(b.lang, b.code, b.save) for b in blocks] == [
        ("bash", 'run --steps 2 --x "b"\n', None),
        ("text", "x = 1\n", "m.py"),
        ("python", "print(1)\n", None),
    ]


@pytest.mark.parametrize("text, message", [
    ('<!-- test: run replace="900 => 2" -->\n```bash\nrun 800\n```\n', "is not in the block"),
    ('<!-- test: run replace="800 -> 2" -->\n```bash\nrun 800\n```\n', "no ' => '"),
    ("<!-- test: run -->\ntext\n```bash\nrun\n```\n", "right before"),
    ("<!-- test: run -->\n```bash\nrun\n", "unclosed"),
    ('<!-- test: run bindings="x" -->\n```bash\nrun\n```\n', "unknown marker attribute"),
    ("<!-- test: save -->\n```python\nx\n```\n", "needs path="),
])
def test_stale_or_malformed_markers_fail_loudly(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        runnable_blocks(_md(tmp_path, text))
