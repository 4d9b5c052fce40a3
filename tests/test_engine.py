"""LocalEngine: ordered map, bounded in flight, merge independent of workers, errors raised."""
import functools
import pickle
import threading
import time

import pytest

from bytepiece.engine import LocalEngine


def _square(x):
    return x * x


def _slow_inverse(delay, x):
    time.sleep(delay * (5 - x % 5))
    return x


def _fail_on(bad, x):
    if x == bad:
        raise ValueError(f"bad item {x}")
    return x


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_map_keeps_input_order(workers):
    with LocalEngine(workers) as engine:
        assert engine.workers == workers
        fn = functools.partial(_slow_inverse, 0.002)
        assert list(engine.map(fn, range(20))) == list(range(20))


@pytest.mark.parametrize("workers", [1, 3])
def test_map_reduce_does_not_depend_on_workers(workers):
    with LocalEngine(workers) as engine:
        # string concatenation is associative but not commutative: order matters
        result = engine.map_reduce(str, range(30), lambda a, b: a + b)
    assert result == "".join(map(str, range(30)))


def test_map_reduce_of_nothing_is_none():
    with LocalEngine(2) as engine:
        assert engine.map_reduce(_square, [], lambda a, b: a + b) is None


def test_map_is_lazy_and_bounded():
    drawn = []

    def items():
        for i in range(1000):
            drawn.append(i)
            yield i

    with LocalEngine(2) as engine:
        results = engine.map(_square, items())
        assert next(results) == 0
        assert len(drawn) <= 2 * engine.workers + 1
        results.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_error_in_a_call_is_raised(workers):
    with LocalEngine(workers) as engine:
        with pytest.raises(ValueError, match="bad item 7"):
            engine.map_reduce(functools.partial(_fail_on, 7), range(20), lambda a, b: a + b)
        # the engine stays usable after an error
        assert engine.map_reduce(_square, range(4), lambda a, b: a + b) == 14


def test_runs_on_several_threads():
    seen = set()
    barrier = threading.Barrier(2, timeout=5)

    def record(x):
        seen.add(threading.get_ident())
        barrier.wait()
        return x

    with LocalEngine(2) as engine:
        assert list(engine.map(record, range(2))) == [0, 1]
    assert len(seen) == 2


def test_closed_engine_refuses_work_and_bad_workers():
    engine = LocalEngine(2)
    engine.close()
    engine.close()
    with pytest.raises(RuntimeError, match="closed"):
        list(engine.map(_square, [1]))
    with pytest.raises(ValueError, match="workers"):
        LocalEngine(-1)
    with pytest.raises(TypeError, match="workers"):
        LocalEngine(1.5)
    assert LocalEngine(0).workers >= 1


def test_partial_functions_are_picklable():
    fn = functools.partial(_fail_on, 3)
    assert pickle.loads(pickle.dumps(fn))(4) == 4
