"""Inputs that change while the compiled core reads them.

Each scenario runs in a child process, so that a crash (a segfault reading a
freed item) fails the test instead of killing pytest: the child must exit 0
after getting a consistent result (the batch as it was when the call began)
or a clean exception.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

PRELUDE = """
import threading
from bytepiece import Tokenizer
from bytepiece.model_io import model_dict
counts = {bytes([b]): 1 for b in range(256)}
counts.update({b"hello": 50, b" world": 40, b"he": 5, b"llo": 4})
tok = Tokenizer(model_dict(counts))
expected = tok.encode("hello world")
"""

SCENARIOS = {
    # The reproducer of the report: a str subclass whose __str__ clears the list.
    "str_subclass_clears_list": """
texts = []
class Evil(str):
    def __str__(self):
        texts.clear()
        return "x"
for method in ("encode_batch_flat", "encode_batch"):
    for threads in (1, 2):
        texts[:] = [Evil("a")] + ["hello world"] * 1000
        result = getattr(tok, method)(texts, num_threads=threads)
        if method == "encode_batch":
            assert len(result) == 1001 and result[1] == expected and result[-1] == expected
        else:
            ids, bounds = result
            assert len(bounds) == 1002
            assert ids[bounds[1000]:bounds[1001]].tolist() == expected
""",
    "str_subclass_grows_list": """
texts = []
class Evil(str):
    def __str__(self):
        texts.extend(["y" * 5000] * 20000)
        return "x"
texts[:] = ["hello world"] * 300 + [Evil("a")] + ["hello world"] * 300
ids, bounds = tok.encode_batch_flat(texts, num_threads=2)
assert len(bounds) == 602
""",
    # Another thread alternately clears and refills the list while batches run.
    "thread_clears_and_extends": """
import sys
sys.setswitchinterval(1e-6)
class Text(str):
    pass
# Strings the packer hands to Python code (a subclass, a string NFC changes),
# which lets the other thread run in the middle of packing.
mixed = ["hello world", Text("hello world"), "cafe\u0301 hello"] * 700
texts = list(mixed)
stop = threading.Event()
def mutate():
    while not stop.is_set():
        texts.clear()
        texts.extend(mixed)
        del texts[500:]
        texts.extend(mixed)
thread = threading.Thread(target=mutate)
thread.start()
try:
    for i in range(300):
        for threads in (1, 2):
            if i % 2:
                out = tok.encode_batch(texts, num_threads=threads)
                assert all(isinstance(x, list) for x in out)
            else:
                ids, bounds = tok.encode_batch_flat(texts, num_threads=threads)
                assert bounds[-1] == len(ids)
finally:
    stop.set()
    thread.join()
""",
    # A bytearray replaced by another thread during encode_concat: the buffer
    # stays exported for the whole call, so the replacement waits for the
    # call's end, and every call sees one content or the other, never a mix
    # (nor freed memory).
    "thread_resizes_packed_buffer": """
import numpy as np, sys
sys.setswitchinterval(1e-6)
line_a, line_b = b"hello world\\n", b"\\xff" * 12
data = bytearray(line_a * 200000)
offsets = np.arange(0, len(data) + 1, 12, dtype=np.int64)
ids_a = set(tok.encode(line_a)) | {0}
ids_b = set(tok.encode(line_b)) | {0}
stop = threading.Event()
def mutate():
    fill = line_b
    while not stop.is_set():
        try:
            data.clear()
            data.extend(fill * 200000)
            fill = line_a if fill == line_b else line_b
        except BufferError:
            pass
thread = threading.Thread(target=mutate)
thread.start()
try:
    for _ in range(100):
        try:
            ids, bounds = tok._segmenter.encode_concat(data, offsets, -1.0, 0, 1)
        except ValueError:
            continue   # the buffer was short when the call began
        seen = set(ids.tolist())
        assert seen <= ids_a or seen <= ids_b, "the call saw the buffer change"
finally:
    stop.set()
    thread.join()
""",
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_batch_input_mutated_during_call(name):
    code = PRELUDE + textwrap.dedent(SCENARIOS[name])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-3000:]}"
