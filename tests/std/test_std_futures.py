"""``pallet._std.futures`` against ``concurrent.futures``, the module it stands in for (its
pools import ``logging``, ``queue``...): the same result, the same exception, each time asked."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest

from pallet._std import futures

pytestmark = pytest.mark.unit


def _outcome(future):
    try:
        return ("ok", future.result())
    except BaseException as e:  # noqa: BLE001 - compared
        return ("raised", type(e), str(e))


@pytest.mark.parametrize("fn", [lambda: 42, lambda: None, lambda: {"a": [1]}, lambda: 1 / 0,
                                lambda: int("x"), lambda: (_ for _ in ()).throw(KeyboardInterrupt())])
def test_result_and_exceptions_as_concurrent_futures(fn):
    mine = futures.submit(fn)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        theirs = pool.submit(fn)
        assert _outcome(mine) == _outcome(theirs)
        assert _outcome(mine) == _outcome(theirs)  # asked again: the same


def test_runs_in_a_thread_of_its_own_named():
    seen = []
    f = futures.submit(lambda: seen.append(threading.current_thread()), "pallet-test")
    f.result()
    assert seen[0] is not threading.current_thread() and seen[0].name == "pallet-test" and seen[0].daemon
