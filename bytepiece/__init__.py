"""BytePiece: a byte-level Unigram tokenizer with a compiled core."""
from .normalization import normalize

__version__ = "0.7.0"
__all__ = ["normalize", "__version__"]
