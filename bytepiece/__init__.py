"""BytePiece: a byte-level Unigram tokenizer with a compiled core.

>>> from bytepiece import Tokenizer
>>> tok = Tokenizer("model.json")          # doctest: +SKIP
>>> tok.decode(tok.encode("Hello"))        # doctest: +SKIP
'Hello'
"""
from .convert import convert_to_bytepiece
from .normalization import normalize
from .pipelines import sampling_seed
from .tokenizer import Tokenizer
from .trainer import Trainer

__version__ = "0.7.0"
__all__ = ["Tokenizer", "Trainer", "normalize", "convert_to_bytepiece", "sampling_seed", "__version__"]
