"""Official NVlabs/SPADE and xh-liu/CC-FPSE checkpoints -> condgen networks."""

from condgen.convert.keys import check_keys_and_shapes, load_official_state, rename_official

__all__ = ["check_keys_and_shapes", "load_official_state", "rename_official"]
