"""Tokenizers in data pipelines: worker processes, reproducible sampling seeds,
token files, and the PyTorch / Hugging Face ``datasets`` recipes of the README."""
from __future__ import annotations

import multiprocessing
import pickle
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest

import bytepiece
from bytepiece.bulk_encoding import encode_to_token_file
from bytepiece.seeds import sampling_seed
from bytepiece.token_files import NPY_HEADER_BYTES, TokenFileWriter, token_dtype
from bytepiece.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parents[1]
LINES = (ROOT / "corpora" / "tang300.zh.txt").read_text(encoding="utf-8").splitlines(keepends=True)
TEXTS = [line for line in LINES if line.strip()][:120]
ALPHA = 0.1
BASE_SEED = 2024


@pytest.fixture(scope="module")
def model(tang_model) -> str:
    return tang_model


@pytest.fixture(scope="module")
def tok(model) -> Tokenizer:
    return Tokenizer(model)


def sample_example(tok: Tokenizer, epoch: int, index: int) -> List[int]:
    """The per-example recipe of the README."""
    return tok.encode(TEXTS[index], add_eos=True, alpha=ALPHA, seed=sampling_seed(BASE_SEED, epoch, index))


# -- sampling_seed -------------------------------------------------------------------

def test_sampling_seed_is_exported_from_the_package():
    if not hasattr(bytepiece, "sampling_seed"):
        pytest.skip("bytepiece/__init__.py does not re-export sampling_seed yet")
    assert bytepiece.sampling_seed is sampling_seed


def test_pipelines_re_exports_its_public_names_from_their_modules():
    import bytepiece.bulk_encoding
    import bytepiece.pipelines
    import bytepiece.seeds
    import bytepiece.token_files

    homes = {module.__name__: module for module in (bytepiece.seeds, bytepiece.token_files,
                                                    bytepiece.bulk_encoding)}
    for name in bytepiece.pipelines.__all__:
        value = getattr(bytepiece.pipelines, name)
        assert value.__module__ in homes, name
        assert getattr(homes[value.__module__], name) is value


def test_sampling_seed_is_stable_and_well_spread():
    # Pinned: a seed must not change between releases, or runs stop being reproducible.
    assert sampling_seed(0, 0, 0) == 2315587408237718042
    assert sampling_seed(2024, 3, 17) == 8404582323668625443
    assert sampling_seed(7) == sampling_seed(7, 0, 0)
    seeds = {sampling_seed(b, e, i) for b in range(10) for e in range(10) for i in range(100)}
    assert len(seeds) == 10_000
    assert sampling_seed(0, 1, 2) != sampling_seed(0, 2, 1) != sampling_seed(1, 0, 2)
    for value in (sampling_seed(-1, 10 ** 30, 5), sampling_seed(np.int64(3), np.int32(1), np.uint64(9))):
        assert 0 <= value < 2 ** 63
    assert sampling_seed(np.int64(3), 1, 9) == sampling_seed(3, 1, 9)
    bits = np.array([[(sampling_seed(1, 0, i) >> b) & 1 for b in range(63)] for i in range(400)])
    assert np.all(np.abs(bits.mean(axis=0) - 0.5) < 0.12)  # no stuck bits


@pytest.mark.parametrize("bad", [1.5, "1", None, True])
def test_sampling_seed_rejects_non_ints(bad):
    with pytest.raises(TypeError):
        sampling_seed(bad, 0, 0)
    with pytest.raises(TypeError):
        sampling_seed(0, bad, 0)


def test_per_example_recipe_is_reproducible_and_varies_by_epoch(tok):
    epoch0 = [sample_example(tok, 0, i) for i in range(len(TEXTS))]
    assert epoch0 == [sample_example(tok, 0, i) for i in range(len(TEXTS))]
    assert epoch0 == [sample_example(pickle.loads(pickle.dumps(tok)), 0, i) for i in range(len(TEXTS))]
    epoch1 = [sample_example(tok, 1, i) for i in range(len(TEXTS))]
    assert sum(a != b for a, b in zip(epoch0, epoch1)) > len(TEXTS) // 4
    deterministic = [tok.encode(t, add_eos=True) for t in TEXTS]
    assert sum(a != b for a, b in zip(epoch0, deterministic)) > len(TEXTS) // 4
    assert [tok.decode(ids) for ids in epoch0] == TEXTS


def test_batched_recipe_does_not_depend_on_batch_size(tok):
    seed = sampling_seed(BASE_SEED, 5)
    whole = tok.encode_batch(TEXTS, alpha=ALPHA, seed=seed)
    for size in (1, 7, 50):
        parts = []
        for start in range(0, len(TEXTS), size):
            parts += tok.encode_batch(TEXTS[start:start + size], alpha=ALPHA, seed=seed,
                                      first_index=start, num_threads=2)
        assert parts == whole
    assert whole != tok.encode_batch(TEXTS, alpha=ALPHA, seed=sampling_seed(BASE_SEED, 6))


# -- multiprocessing.Pool ------------------------------------------------------------

_POOL_TOK = None


def _pool_init(blob: bytes) -> None:
    global _POOL_TOK
    _POOL_TOK = pickle.loads(blob)


def _pool_example(job: Tuple[int, int]) -> Tuple[int, List[int]]:
    epoch, index = job
    return index, sample_example(_POOL_TOK, epoch, index)


def _pool_batch(job: Tuple[Tokenizer, int, int, int]) -> List[List[int]]:
    tok, epoch, start, stop = job
    return tok.encode_batch(TEXTS[start:stop], alpha=ALPHA, seed=sampling_seed(BASE_SEED, epoch),
                            first_index=start)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_workers_sample_like_one_process(tok, method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"start method {method} not available")
    expected = [sample_example(tok, 3, i) for i in range(len(TEXTS))]
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(2, initializer=_pool_init, initargs=(pickle.dumps(tok),)) as pool:
        got = dict(pool.map(_pool_example, [(3, i) for i in range(len(TEXTS))], chunksize=9))
        batches = pool.map(_pool_batch, [(tok, 3, s, min(s + 25, len(TEXTS))) for s in range(0, len(TEXTS), 25)])
    assert [got[i] for i in range(len(TEXTS))] == expected
    flat = [ids for batch in batches for ids in batch]
    assert flat == tok.encode_batch(TEXTS, alpha=ALPHA, seed=sampling_seed(BASE_SEED, 3))


# -- token files -----------------------------------------------------------------------

def test_encode_to_token_file_from_python(tok, tmp_path):
    out = tmp_path / "tokens.npy"
    tokens, documents = encode_to_token_file(tok, iter(TEXTS), out, batch_bytes=300, num_threads=2)
    assert documents == len(TEXTS)
    array = np.load(out, mmap_mode="r")
    assert array.dtype == np.uint16 and array.shape == (tokens,)
    expected = np.concatenate(tok.encode_batch(TEXTS, add_eos=True, out_type=np.ndarray))
    assert np.array_equal(array, expected)
    sampled = tmp_path / "sampled.npy"
    encode_to_token_file(tok, (t.encode("utf-8") for t in TEXTS), sampled, alpha=ALPHA, seed=4,
                         batch_bytes=100, dtype="uint32")
    array = np.load(sampled)
    assert array.dtype == np.uint32
    expected = np.concatenate(tok.encode_batch(TEXTS, add_eos=True, alpha=ALPHA, seed=4, out_type=np.ndarray))
    assert np.array_equal(array, expected)


def test_token_file_writer_header_and_failures(tmp_path):
    out = tmp_path / "ids.npy"
    with TokenFileWriter(out, "uint32") as writer:
        writer.write(np.arange(10, dtype=np.int32))
        writer.write([70000, 2])
        assert not out.exists()
    with open(out, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        assert version == (1, 0)
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        assert handle.tell() == NPY_HEADER_BYTES
    assert shape == (12,) and not fortran and dtype == np.dtype("<u4")
    assert np.load(out).tolist() == list(range(10)) + [70000, 2]

    with pytest.raises(ValueError, match="does not fit"):
        with TokenFileWriter(tmp_path / "small.npy", "uint16") as writer:
            writer.write([1, 65536])
    with pytest.raises(RuntimeError):
        with TokenFileWriter(out, "uint16") as writer:
            writer.write([1, 2, 3])
            raise RuntimeError("boom")
    assert np.load(out).shape == (12,)  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ids.npy"]


def test_token_dtype():
    assert token_dtype(1000) == np.dtype("<u2")
    assert token_dtype(65536) == np.dtype("<u2")
    assert token_dtype(65537) == np.dtype("<u4")
    assert token_dtype(1000, "uint32") == np.dtype("<u4")
    with pytest.raises(ValueError, match="uint32"):
        token_dtype(65537, "uint16")
    with pytest.raises(ValueError):
        token_dtype(1000, "float32")


# -- PyTorch DataLoader (only when torch is installed) -------------------------------

class SampledTexts:
    """The README's PyTorch ``Dataset``: a new segmentation of every text each
    epoch, the same in every run, whatever the number of workers."""

    def __init__(self, texts: List[str], tokenizer: Tokenizer, alpha: float = 0.1, base_seed: int = 0):
        self.texts, self.tokenizer, self.alpha, self.base_seed = texts, tokenizer, alpha, base_seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int):
        import torch

        seed = sampling_seed(self.base_seed, self.epoch, index)
        ids = self.tokenizer.encode(self.texts[index], add_eos=True, alpha=self.alpha, seed=seed)
        return torch.tensor(ids, dtype=torch.long)


def test_torch_dataloader_workers(tok):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    dataset = SampledTexts(TEXTS[:40], tok, alpha=ALPHA, base_seed=BASE_SEED)
    runs = {}
    for workers in (0, 2):
        for epoch in (0, 1):
            dataset.set_epoch(epoch)
            loader = DataLoader(dataset, batch_size=None, shuffle=False, num_workers=workers)
            runs[workers, epoch] = [t.tolist() for t in loader]
    assert runs[0, 0] == runs[2, 0] == [sample_example(tok, 0, i) for i in range(40)]
    assert runs[0, 1] == runs[2, 1] != runs[0, 0]
    assert torch.is_tensor(dataset[0])


# -- Hugging Face datasets (only when datasets is installed) -------------------------

def test_datasets_map_batched_recipe(tok):
    datasets = pytest.importorskip("datasets")
    datasets.disable_progress_bars()
    data = datasets.Dataset.from_dict({"text": TEXTS[:60]})

    def encode_epoch(epoch: int, **options):
        seed = sampling_seed(BASE_SEED, epoch)
        mapped = data.map(
            lambda batch, indices: {"ids": tok.encode_batch(batch["text"], add_eos=True, alpha=ALPHA,
                                                            seed=seed, first_index=indices[0])},
            batched=True, with_indices=True, load_from_cache_file=False, **options)
        return mapped["ids"]

    first = encode_epoch(0, batch_size=16)
    assert first == encode_epoch(0, batch_size=7)
    assert first == encode_epoch(0, batch_size=16, num_proc=2)
    assert first == tok.encode_batch(TEXTS[:60], add_eos=True, alpha=ALPHA, seed=sampling_seed(BASE_SEED, 0))
    assert encode_epoch(1, batch_size=16) != first
    assert [tok.decode(ids) for ids in first] == TEXTS[:60]
