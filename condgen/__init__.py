"""condgen: semantic image synthesis (SPADE, CC-FPSE) from interchangeable, gin-configured blocks."""

from condgen.registry import create, get, list_blocks, register

__version__ = "0.1.0"
__all__ = ["create", "get", "list_blocks", "register", "__version__"]
