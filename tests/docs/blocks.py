"""Find the runnable blocks of a Markdown tutorial: a fence right after a `<!-- test: run ... -->` marker.

Marker grammar (one HTML comment on the line before the opening fence, invisible on the site):

    <!-- test: run -->                                       run the block as written
    <!-- test: run replace="800 => 2" replace="A => B" -->   tiny-scale substitutions, applied in order
    <!-- test: save path="clade.py" -->                     write the block to this file (the reader saves it)

Values are in double or single quotes (use the other kind inside). Each `replace="OLD => NEW"` is a
literal substring substitution (OLD must occur, or the test fails: a stale
marker is a bug too). The reader sees the real command; the marker records exactly what the test changes.
Fences tagged `bash`/`sh`/`shell` run in bash, `python` blocks run in one namespace per tutorial; a saved
block may be in any language (a gin file, a module).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

MARKER = re.compile(r"^<!--\s*test:\s*(?P<action>run|save)\b(?P<attrs>.*?)-->\s*$")
ATTR = re.compile(r"""(\w+)=(?:"([^"]*)"|'([^']*)')""")
FENCE = re.compile(r"^(?P<fence>```+)\s*(?P<lang>[\w-]*)")
LANGS = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python", "py": "python"}


@dataclasses.dataclass(frozen=True)
class Block:
    """One runnable block: its language, the code with substitutions applied, and its Markdown line."""

    lang: str
    code: str
    line: int
    save: str | None = None


def runnable_blocks(path: Path) -> list[Block]:
    """Every marked block of `path`, in document order, with the marker's substitutions applied."""
    lines = path.read_text().splitlines()
    blocks = []
    for i, text in enumerate(lines):
        m = MARKER.match(text.strip())
        if not m:
            continue
        fence = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        if fence is None or (m["action"] == "run" and fence["lang"] not in LANGS):
            found = lines[i + 1] if i + 1 < len(lines) else "end of file"
            raise ValueError(f"{path.name}:{i + 1}: a test marker must sit right before a ```bash or "
                             f"```python fence, found {found!r}")
        end = next((j for j in range(i + 2, len(lines)) if lines[j].startswith(fence["fence"])), None)
        if end is None:
            raise ValueError(f"{path.name}:{i + 2}: unclosed fence")
        code = "\n".join(lines[i + 2:end]) + "\n"
        save = None
        for key, double, single in ATTR.findall(m["attrs"]):
            value = double or single
            if key == "path" and m["action"] == "save":
                save = value
                continue
            if key != "replace":
                raise ValueError(f"{path.name}:{i + 1}: unknown marker attribute {key!r} (replace=, or path= "
                                 "with save)")
            old, sep, new = value.partition(" => ")
            if not sep or old not in code:
                raise ValueError(f"{path.name}:{i + 1}: replace={value!r} does not apply: "
                                 f"{'no ' + repr(' => ') if not sep else repr(old) + ' is not in the block'}")
            code = code.replace(old, new)
        if m["action"] == "save" and save is None:
            raise ValueError(f"{path.name}:{i + 1}: a save marker needs path=\"FILE\"")
        blocks.append(Block(LANGS.get(fence["lang"], fence["lang"]), code, i + 1, save))
    return blocks
