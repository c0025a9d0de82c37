"""The write-ahead log alone: torn tails, aborted writes, logs already folded into a checkpoint."""

from __future__ import annotations

import pytest

from retrieval.service.wal import WalError, WriteAheadLog, read_log


def test_replays_acknowledged_writes_skips_aborted_and_a_torn_tail(tmp_path):
    path = tmp_path / ".idx.wal"
    wal = WriteAheadLog(path, "snap-1")
    first = wal.append({"op": "add", "documents": [{"id": "a", "text": "A"}]})
    second = wal.append({"op": "delete", "ids": ["zz"]})
    wal.abort(second)
    wal.append({"op": "delete", "ids": ["a"]})
    wal.close()
    with open(path, "a") as f:
        f.write('{"seq": 9, "op": "add", "docum')  # a crash in the middle of a write: never acknowledged
    writes, dropped = read_log(path, "snap-1")
    assert [w["seq"] for w in writes] == [first, 3] and dropped == ""


def test_a_log_of_an_older_snapshot_is_dropped(tmp_path):
    path = tmp_path / ".idx.wal"
    wal = WriteAheadLog(path, "snap-1")
    wal.append({"op": "add", "documents": [{"id": "a", "text": "A"}]})
    wal.close()
    writes, dropped = read_log(path, "snap-2")  # a checkpoint saved them, then died before the new log
    assert writes == [] and "already saved" in dropped


def test_a_damaged_line_names_the_file_and_line(tmp_path):
    path = tmp_path / ".idx.wal"
    path.write_text('{"wal": 1, "snapshot": "s"}\nnot json\n{"seq": 1, "op": "delete", "ids": ["a"]}\n')
    with pytest.raises(WalError, match=r"\.idx\.wal:2"):
        read_log(path, "s")
