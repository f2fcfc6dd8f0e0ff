"""Native threads for database calls: the GIL handed back promptly while they write."""

from __future__ import annotations

import sys

import pytest

from cdshooks.store import native


def test_a_write_gets_prompt_gil_handoffs_and_the_interval_is_restored_after():
    before = sys.getswitchinterval()
    with native.prompt_handoffs():
        assert sys.getswitchinterval() == pytest.approx(native.WRITING_SWITCH_S)
    assert sys.getswitchinterval() == before


def test_the_interval_is_restored_when_the_write_fails():
    before = sys.getswitchinterval()
    with pytest.raises(RuntimeError), native.prompt_handoffs():
        raise RuntimeError("write failed")
    assert sys.getswitchinterval() == before


def test_without_gevent_the_standard_thread_pool_is_used():
    assert not native.patched()   # the test process is not monkey-patched
    pool = native.executor(1, "test")
    try:
        assert pool.submit(lambda: 42).result(timeout=10) == 42
    finally:
        pool.shutdown()
