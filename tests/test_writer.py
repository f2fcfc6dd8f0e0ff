"""The background writer: gathers rows into batches, writes a backlog at once, keeps form launches readable."""

from __future__ import annotations

import datetime as dt
import threading
import time

from cdshooks.store import writer as writer_module
from cdshooks.store.writer import AUDIT
from cdshooks.store.writer import FORM
from cdshooks.store.writer import Writer


class Collect:
    """A write function that records each batch it is given."""

    def __init__(self):
        self.batches: list[list] = []
        self.written = threading.Event()

    def __call__(self, batch):
        self.batches.append(batch)
        self.written.set()


def _audit(i: int) -> dict:
    return {"service_id": "svc", "hook_instance": f"hi-{i}"}


def test_rows_queued_within_the_gathering_time_are_written_in_one_batch():
    write = Collect()
    writer = Writer(write, capacity=100, linger_s=5.0)
    for i in range(5):
        writer.submit_audit(_audit(i))
    assert writer.flush(10)   # a waiting flush ends the gathering
    assert [[row["hook_instance"] for _, row in batch] for batch in write.batches] == [[f"hi-{i}" for i in range(5)]]
    writer.close()


def test_a_whole_batch_waiting_is_written_without_waiting_out_the_gathering_time():
    write = Collect()
    writer = Writer(write, capacity=2 * writer_module.BATCH, linger_s=60.0)
    for i in range(writer_module.BATCH):
        writer.submit_audit(_audit(i))
    assert write.written.wait(10), "a full batch waited for the 60 s gathering time"
    assert sum(len(batch) for batch in write.batches) >= writer_module.BATCH - 1
    writer.close()


def test_a_queued_form_launch_is_readable_until_its_batch_is_written():
    write = Collect()
    writer = Writer(write, capacity=100, linger_s=5.0)
    launch = {"ref": "r" * 32, "expires_at": dt.datetime.now(dt.timezone.utc), "content": "{}"}
    writer.submit_forms([launch])
    assert writer.waiting("r" * 32) is launch
    assert writer.flush(10)
    assert writer.waiting("r" * 32) is None
    assert write.batches == [[(FORM, launch)]]
    writer.close()


def test_audit_rows_are_stamped_when_queued():
    write = Collect()
    writer = Writer(write, capacity=10, linger_s=0)
    before = dt.datetime.now(dt.timezone.utc)
    writer.submit_audit(_audit(1))
    assert writer.flush(10)
    ((table, row),) = write.batches[0]
    assert table == AUDIT and before <= row["at"] <= dt.datetime.now(dt.timezone.utc)
    writer.close()


def test_an_idle_writer_thread_ends_and_the_next_row_starts_another(monkeypatch):
    monkeypatch.setattr(writer_module, "IDLE_EXIT_S", 0.05)
    write = Collect()
    writer = Writer(write, capacity=10, linger_s=0)
    writer.submit_audit(_audit(1))
    assert writer.flush(10)
    deadline = time.monotonic() + 10
    while writer._thread is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writer._thread is None
    writer.submit_audit(_audit(2))
    assert writer.flush(10) and len(write.batches) == 2
    writer.close()
