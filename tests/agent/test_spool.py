import os
from pathlib import Path

from gosight.agent.exporter import Backoff
from gosight.agent.spool import Spool
from gosight.store.ledger import parse_batch_id


def payload(index: int, size: int = 100) -> bytes:
    # Random bytes do not compress, so the spool's byte accounting is predictable.
    return index.to_bytes(4, "big") + os.urandom(size)


def test_spool_returns_batches_in_order(tmp_path: Path):
    spool = Spool(tmp_path, max_bytes=1 << 20, stream_prefix="agent")
    sent = [payload(i) for i in range(5)]
    for data in sent:
        spool.append(data)

    received = []
    while (entry := spool.oldest()) is not None:
        received.append(spool.read(entry))
        spool.remove(entry)

    assert received == sent
    assert spool.batches == 0
    assert spool.bytes == 0


def test_spool_replays_after_restart(tmp_path: Path):
    first = Spool(tmp_path, max_bytes=1 << 20, stream_prefix="agent")
    ids = [first.batch_id(first.append(payload(i))) for i in range(3)]
    first.remove(first.oldest())

    second = Spool(tmp_path, max_bytes=1 << 20, stream_prefix="agent")
    entry = second.oldest()

    assert second.batches == 2
    assert second.read(entry)[:4] == (1).to_bytes(4, "big")
    assert second.batch_id(entry) == ids[1], "a replayed batch keeps its id, so the server can skip it"


def test_spool_never_reuses_batch_ids(tmp_path: Path):
    first = Spool(tmp_path, max_bytes=1 << 20, stream_prefix="agent")
    entry = first.append(payload(0))
    used = first.batch_id(entry)
    first.remove(entry)

    # A restart (or a crash) after the spool emptied starts the order again, in a new epoch.
    second = Spool(tmp_path, max_bytes=1 << 20, stream_prefix="agent")
    fresh = second.batch_id(second.append(payload(1)))

    assert fresh != used
    assert parse_batch_id(fresh)[0] != parse_batch_id(used)[0]


def test_spool_orders_after_earlier_runs(tmp_path: Path):
    first = Spool(tmp_path, max_bytes=1 << 20, stream_prefix="agent")
    first.append(payload(0))
    first.append(payload(1))

    second = Spool(tmp_path, max_bytes=1 << 20, stream_prefix="agent")
    second.append(payload(2))
    order = []
    while (entry := second.oldest()) is not None:
        order.append(second.read(entry)[:4])
        second.remove(entry)

    assert order == [(0).to_bytes(4, "big"), (1).to_bytes(4, "big"), (2).to_bytes(4, "big")]


def test_spool_drops_oldest_when_full(tmp_path: Path):
    spool = Spool(tmp_path, max_bytes=1000, stream_prefix="agent")
    for index in range(20):
        spool.append(payload(index, size=300))

    oldest = spool.read(spool.oldest())

    assert spool.bytes <= 1000
    assert spool.dropped_batches == 20 - spool.batches
    assert spool.dropped_batches > 0
    assert oldest[:4] == (20 - spool.batches).to_bytes(4, "big"), "the newest batches are the ones kept"
    assert len(list(tmp_path.glob("*.batch"))) == spool.batches


def test_damaged_batch_is_dropped(tmp_path: Path):
    first = Spool(tmp_path, max_bytes=1 << 20, stream_prefix="agent")
    broken = first.append(payload(0))
    first.append(payload(1))
    broken.path.write_bytes(b"not zlib")

    # A new run reads the files, not the payloads the first one kept in memory.
    spool = Spool(tmp_path, max_bytes=1 << 20, stream_prefix="agent")
    first_read = spool.read(spool.oldest())
    second_read = spool.read(spool.oldest())

    assert first_read is None
    assert second_read[:4] == (1).to_bytes(4, "big")
    assert spool.dropped_batches == 1


def test_sync_makes_waiting_batches_durable(tmp_path: Path):
    spool = Spool(tmp_path, max_bytes=1 << 20, stream_prefix="agent")
    kept = spool.append(payload(0))
    sent = spool.append(payload(1))
    spool.remove(sent)

    spool.sync()

    assert spool._unsynced == set()
    assert kept.path.exists()
    assert spool.read(kept)[:4] == (0).to_bytes(4, "big")


def test_backoff_grows_and_resets():
    backoff = Backoff(initial_s=1.0, max_s=8.0, rng=lambda: 1.0)

    delays = [backoff.next_delay() for _ in range(6)]
    backoff.reset()

    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert backoff.next_delay() == 1.0


def test_backoff_jitter_stays_within_bounds():
    backoff = Backoff(initial_s=1.0, max_s=8.0, rng=lambda: 0.0)

    assert backoff.next_delay() == 0.5, "full jitter is floored at half the initial wait"
