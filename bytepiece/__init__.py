"""BytePiece: a byte-level Unigram tokenizer with a compiled core.

>>> from bytepiece import Tokenizer
>>> tok = Tokenizer("model.json")          # doctest: +SKIP
>>> tok.decode(tok.encode("Hello"))        # doctest: +SKIP
'Hello'
"""
from importlib import import_module
from typing import TYPE_CHECKING

__version__ = "0.7.0"
__all__ = ["Tokenizer", "Trainer", "normalize", "convert_to_bytepiece", "sampling_seed",
           "extend_with_words", "extend_with_texts", "__version__"]

# The public names are imported on first use (PEP 562), not here: importing
# one submodule (say ``bytepiece.trainer``) then loads only what it needs.
# Loading everything up front costs ~4 MB of resident memory (hashlib's
# OpenSSL, tempfile, the tokenizer's modules) in every process, which shows
# in the peak memory of a training run.
_EXPORTS = {
    "Tokenizer": ".tokenizer",
    "Trainer": ".trainer",
    "normalize": ".normalization",
    "convert_to_bytepiece": ".convert",
    "sampling_seed": ".pipelines",
    "extend_with_words": ".extend",
    "extend_with_texts": ".extend",
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from .convert import convert_to_bytepiece
    from .extend import extend_with_texts, extend_with_words
    from .normalization import normalize
    from .pipelines import sampling_seed
    from .tokenizer import Tokenizer
    from .trainer import Trainer


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
