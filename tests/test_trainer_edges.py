"""Trainer edge cases from the hardening issue: hostile corpora and interruptions."""
import os
import random
import signal
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import pytest

from bytepiece import Tokenizer
from bytepiece.model_io import atomic_write, save_model
from bytepiece.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


def test_random_binary_decoded_with_replace_trains_and_round_trips(tmp_path):
    rng = random.Random(4)
    corpus = [bytes(rng.randrange(256) for _ in range(2000)).decode("utf-8", "replace")
              for _ in range(40)]
    trainer = Trainer(max_vocab_size=600, verbose=False)
    trainer.train(corpus)
    trainer.save(tmp_path / "bin.model")
    tok = Tokenizer(tmp_path / "bin.model")
    assert all(tok.decode(tok.encode(text)) == unicodedata.normalize("NFC", text) for text in corpus)


@pytest.mark.slow
def test_fifty_megabyte_single_line():
    unit = "Debian 软件包 1234 "
    line = unit * (50_000_000 // len(unit.encode()) + 1)
    assert "\n" not in line and len(line.encode()) >= 50_000_000
    vocab = Trainer(max_vocab_size=2000, verbose=False).train([line], workers=2)[2000]
    assert all(bytes([b]) in vocab for b in range(256))
    assert max(len(p) for p in vocab) <= 36


def test_interrupted_write_leaves_old_model_and_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "m.model"
    save_model({bytes([b]): 1 for b in range(256)}, target)
    before = target.read_bytes()

    def interrupted(handle):
        handle.write(b"{ partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, interrupted)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.model"]


def test_ctrl_c_during_cli_training_leaves_no_output(tmp_path):
    corpus = tmp_path / "big.txt"
    text = "".join((ROOT / "corpora" / name).read_text(encoding="utf-8")
                   for name in ["handbook.en-US.txt", "handbook.zh-CN.txt"])
    corpus.write_text(text * 6, encoding="utf-8")
    out = tmp_path / "out.model"
    import bytepiece

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(bytepiece.__file__)))
    env = dict(os.environ, PYTHONPATH=package_parent)
    process = subprocess.Popen(
        [sys.executable, "-c", "from bytepiece.cli import main; main()", "train", str(corpus),
         "-o", str(out), "--vocab-size", "8000", "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(tmp_path), env=env)
    time.sleep(1.5)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    if process.returncode == 0:
        pytest.skip("training finished before the interrupt on this machine")
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.txt"]
    assert b"Traceback" not in stderr or b"KeyboardInterrupt" in stderr
