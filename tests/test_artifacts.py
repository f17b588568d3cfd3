import os
import stat
import tracemalloc

import numpy as np
import pytest

from seqnlp import checkpoints
from seqnlp.artifacts import load_sequences, save_sequences, sha256_of, staged_directory, staged_file


def test_sequences_round_trip_and_are_byte_reproducible(tmp_path):
    sequences = [[5, 6, 7], [], [8]]
    save_sequences(tmp_path / "a.npz", sequences, labels=np.array([0, 1, 2]))
    save_sequences(tmp_path / "b.npz", sequences, labels=np.array([0, 1, 2]))
    loaded, columns = load_sequences(tmp_path / "a.npz")
    assert [list(s) for s in loaded] == sequences
    assert list(columns["labels"]) == [0, 1, 2]
    assert sha256_of(tmp_path / "a.npz") == sha256_of(tmp_path / "b.npz")
    assert loaded[-1].tolist() == [8] and len(loaded[1]) == 0
    with pytest.raises(IndexError):
        loaded[3]


def test_loading_a_split_reads_its_offsets_not_its_rows(tmp_path):
    sequences = [np.full((n % 50, 4), n, np.int32) for n in range(20_000)]  # 2-D rows: 7.8 MB in all
    save_sequences(tmp_path / "big.npz", sequences, labels=np.arange(20_000, dtype=np.int32))
    tracemalloc.start()
    try:
        loaded, columns = load_sequences(tmp_path / "big.npz")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
    assert len(loaded) == 20_000 and loaded[12_345].shape == (12_345 % 50, 4) and (loaded[12_345] == 12_345).all()
    assert columns["labels"][-1] == 19_999


def test_an_empty_split_round_trips(tmp_path):
    save_sequences(tmp_path / "empty.npz", [], labels=np.zeros(0, np.int32))
    loaded, columns = load_sequences(tmp_path / "empty.npz")
    assert len(loaded) == 0 and columns["labels"].shape == (0,)


def test_a_failed_stage_leaves_neither_a_new_nor_a_half_written_directory(tmp_path):
    final = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with staged_directory(final) as scratch:
            (scratch / "part.txt").write_text("half")
            raise RuntimeError("stage failed")
    assert list(tmp_path.iterdir()) == []


def test_a_finished_stage_replaces_the_old_directory(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with staged_directory(final) as scratch:
        (scratch / "new.txt").write_text("new")
    assert [p.name for p in final.iterdir()] == ["new.txt"]


def test_a_failed_file_write_keeps_the_old_file(tmp_path):
    final = tmp_path / "metrics.json"
    final.write_text("old")
    with pytest.raises(KeyError):
        with staged_file(final) as scratch:
            scratch.write_text("half")
            raise KeyError("boom")
    assert final.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


@pytest.mark.parametrize("umask, folder_mode, file_mode", [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600),
                                                           (0o002, 0o775, 0o664)])
def test_staged_outputs_get_the_users_umask_like_any_other_tool(tmp_path, umask, folder_mode, file_mode):
    previous = os.umask(umask)
    try:
        with staged_directory(tmp_path / "folder") as scratch:
            (scratch / "inside").write_text("x")
        with staged_file(tmp_path / "file.json") as scratch:
            scratch.write_text("{}")
        store = checkpoints.CheckpointStore(tmp_path / "store", {"f": 1})
        store.prepare()
        unit = store.save(1, lambda directory: (directory / "a").write_text("x"), {})
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == folder_mode
    assert stat.S_IMODE((tmp_path / "file.json").stat().st_mode) == file_mode
    assert stat.S_IMODE(unit.stat().st_mode) == folder_mode
