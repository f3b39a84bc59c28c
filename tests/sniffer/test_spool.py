"""Spool: sequence-numbered bundle files, atomic writes, byte cap dropping the oldest, restart."""
from __future__ import annotations

import logging
import os

import pytest

from sniffer.spool import Spool, SpoolLockedError


def body(n_calls: int, tag: int) -> bytes:
    return b"".join(b'[["custom_field:n","%08d"]]\n' % (tag * 1000 + i) for i in range(n_calls))


def test_bundles_come_out_oldest_first_and_are_removed(tmp_path):
    spool = Spool(tmp_path, max_bytes=1 << 20)
    for seq in (3, 1, 2):
        assert spool.append(seq, 2, body(2, seq))
    order = []
    while (seq := spool.claim_oldest()) is not None:
        assert spool.read(seq) == (2, body(2, seq))
        spool.remove(seq)
        order.append(seq)
    assert order == [1, 2, 3]
    assert len(spool) == 0 and spool.total_bytes == 0
    assert sorted(os.listdir(tmp_path)) == ["spool.lock"]


def test_claim_respects_before_seq_and_claimed_bundles_are_skipped(tmp_path):
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append(5, 1, body(1, 5))
    spool.append(6, 1, body(1, 6))
    assert spool.claim_oldest(before_seq=5) is None
    assert spool.claim_oldest(before_seq=9) == 5
    assert spool.claim_oldest() == 6  # 5 is claimed
    assert spool.claim_oldest() is None
    spool.release(5)
    assert spool.claim_oldest() == 5


def test_over_the_cap_the_oldest_unclaimed_bundles_are_dropped_and_counted(tmp_path, caplog):
    one = len(body(10, 0))
    spool = Spool(tmp_path, max_bytes=3 * one)
    assert spool.append(1, 10, body(10, 1))
    assert spool.claim_oldest() == 1  # being delivered: must survive the cap
    for seq in range(2, 6):
        with caplog.at_level(logging.WARNING, logger="sniffer.spool"):
            assert spool.append(seq, 10, body(10, seq))
    kept = []
    while (seq := spool.claim_oldest()) is not None:
        kept.append(seq)
    assert kept == [4, 5]
    assert spool.counts["dropped_calls"] == 20 and spool.counts["dropped_bundles"] == 2
    assert spool.total_bytes == 3 * one
    assert sum("dropped the oldest" in r.message for r in caplog.records) == 2


def test_a_bundle_bigger_than_the_whole_cap_is_refused_and_counted(tmp_path):
    spool = Spool(tmp_path, max_bytes=10)
    assert not spool.append(1, 3, body(3, 1))
    assert spool.counts["dropped_calls"] == 3 and len(spool) == 0


def test_files_survive_a_restart_and_numbering_continues(tmp_path):
    first = Spool(tmp_path, max_bytes=1 << 20)
    first.append(7, 4, body(4, 7))
    first.append(8, 5, body(5, 8))
    first.close()
    (tmp_path / "bundle-0000000000000009-1.ndjson.tmp").write_bytes(b"half")  # crash leftover
    (tmp_path / "notes.txt").write_text("not a bundle")
    again = Spool(tmp_path, max_bytes=1 << 20)
    assert again.next_seq() == 9
    assert again.pending_calls() == 9
    assert again.counts["tmp_files_removed"] == 1
    assert not (tmp_path / "bundle-0000000000000009-1.ndjson.tmp").exists()
    assert again.claim_oldest() == 7 and again.read(7) == (4, body(4, 7))


def test_empty_spool_starts_numbering_at_one(tmp_path):
    assert Spool(tmp_path / "new", max_bytes=100).next_seq() == 1


def test_a_second_owner_of_the_directory_is_refused(tmp_path):
    owner = Spool(tmp_path, max_bytes=100)
    with pytest.raises(SpoolLockedError):
        Spool(tmp_path, max_bytes=100)
    owner.close()
    Spool(tmp_path, max_bytes=100).close()


def test_write_and_read_failures_are_counted_as_lost(tmp_path, caplog):
    spool = Spool(tmp_path, max_bytes=1 << 20, fsync=True)
    assert spool.append(1, 2, body(2, 1))
    os.unlink(tmp_path / "bundle-0000000000000001-2.ndjson")  # vanished under us
    assert spool.claim_oldest() == 1
    with caplog.at_level(logging.ERROR, logger="sniffer.spool"):
        assert spool.read(1) is None
    spool.directory = tmp_path / "gone" / "deeper"  # writes now fail
    with caplog.at_level(logging.ERROR, logger="sniffer.spool"):
        assert not spool.append(2, 3, body(3, 2))
    assert spool.counts["errors"] == 2 and spool.counts["dropped_calls"] == 5
    assert len(spool) == 0
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 2
