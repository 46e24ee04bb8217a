"""Official NVlabs/SPADE and xh-liu/CC-FPSE checkpoints -> condgen networks.

`load_official(repo, flags, G=..., D=..., E=...)` builds the networks an official command line describes and
loads official weights strictly; `python -m condgen convert` writes a run directory from them.
"""

from condgen.convert.keys import check_keys_and_shapes, load_official_state, rename_official
from condgen.convert.official import build_official, load_official

__all__ = [
    "build_official", "check_keys_and_shapes", "load_official", "load_official_state", "rename_official",
]
