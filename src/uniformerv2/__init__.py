"""UniFormerV2 video action recognition."""
from .model import UniFormerV2, UniFormerV2Config

__version__ = "0.1.0"
__all__ = ["UniFormerV2", "UniFormerV2Config", "__version__"]
