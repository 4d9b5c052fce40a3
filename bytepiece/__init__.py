"""BytePiece: a byte-level Unigram tokenizer with a compiled core.

>>> from bytepiece import Tokenizer
>>> tok = Tokenizer("model.json")          # doctest: +SKIP
>>> tok.decode(tok.encode("Hello"))        # doctest: +SKIP
'Hello'
"""
from .normalization import normalize
from .tokenizer import Tokenizer

__version__ = "0.7.0"
__all__ = ["Tokenizer", "normalize", "__version__"]
