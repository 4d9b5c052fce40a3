"""Helpers for training pipelines, in one place: this module only re-exports
them from the modules that hold them, so that ``bytepiece.pipelines.X`` keeps
working.

* :mod:`bytepiece.seeds`: :func:`sampling_seed`, reproducible per-example
  seeds for subword sampling.
* :mod:`bytepiece.token_files`: the token file format, :func:`token_dtype`,
  :class:`TokenFileWriter` (atomic ``.npy`` writer) and :class:`TokenShards`
  (a shard directory read as one memory-mapped sequence).
* :mod:`bytepiece.bulk_encoding`: encoding a corpus into token files,
  :func:`encode_to_token_file`, :func:`encode_batches_to_token_file`,
  :func:`encode_blocks_to_token_file` (worker processes) and
  :func:`encode_with_engine` (local processes or a Ray cluster).
"""
from .bulk_encoding import (
    cpu_count,
    encode_batches_to_token_file,
    encode_blocks_to_token_file,
    encode_to_token_file,
    encode_with_engine,
)
from .seeds import sampling_seed
from .token_files import TokenFileWriter, TokenShards, token_dtype

__all__ = [
    "sampling_seed",
    "token_dtype",
    "TokenFileWriter",
    "encode_to_token_file",
    "encode_batches_to_token_file",
    "encode_blocks_to_token_file",
    "cpu_count",
    "encode_with_engine",
    "TokenShards",
]
