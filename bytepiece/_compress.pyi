"""Type stubs of the compiled kernels of the compression-first trainer."""
from typing import List, Tuple

import numpy as np
import numpy.typing as npt

def count_candidates(
    data: npt.NDArray[np.uint8],
    offsets: npt.NDArray[np.int64],
    weights: npt.NDArray[np.int64],
    max_len: int,
    min_count: int,
    top_k: int,
    mode: int = 1,
) -> Tuple[List[bytes], npt.NDArray[np.int64]]: ...

def count_chars(
    data: npt.NDArray[np.uint8],
    offsets: npt.NDArray[np.int64],
    weights: npt.NDArray[np.int64],
) -> Tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...

class PieceSet:
    def __init__(self, pieces: List[bytes]) -> None: ...
    def __len__(self) -> int: ...
    def split_cost(self, lo: int = 0, hi: int = -1) -> npt.NDArray[np.int32]: ...
    def split_cost_viterbi(
        self, scores: npt.NDArray[np.float64], lo: int = 0, hi: int = -1
    ) -> npt.NDArray[np.int32]: ...
    def expected_counts(
        self,
        data: npt.NDArray[np.uint8],
        offsets: npt.NDArray[np.int64],
        weights: npt.NDArray[np.int64],
        scores: npt.NDArray[np.float64],
        lo: int = 0,
        hi: int = -1,
    ) -> npt.NDArray[np.float64]: ...
    def split_counts(
        self,
        data: npt.NDArray[np.uint8],
        offsets: npt.NDArray[np.int64],
        weights: npt.NDArray[np.int64],
        scores: npt.NDArray[np.float64],
        lo: int = 0,
        hi: int = -1,
    ) -> npt.NDArray[np.int64]: ...
