"""condgen: semantic image synthesis (SPADE, CC-FPSE) from interchangeable, gin-configured blocks.

Importing the package registers every built-in block (as timm's package face does): the sub-packages'
`@register` decorators fill `condgen.registry`, which itself imports nothing of condgen.
"""

from condgen import blocks, data, eval, losses, networks, objectives, ops  # noqa: F401  (fill the registry)
from condgen.infer import SynthesisPipeline, load
from condgen.registry import create, get, list_blocks, register
from condgen.version import __version__

__all__ = ["SynthesisPipeline", "create", "get", "list_blocks", "load", "register", "__version__"]
