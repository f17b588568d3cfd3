"""Reading and writing stage artifacts so that a failed stage never leaves a half-written output."""

import contextlib
import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_scratch_directory(prefix, parent):
    """``tempfile.mkdtemp``, with the permissions of any folder the user makes (mkdtemp's are 0700)."""
    scratch = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    scratch.chmod(0o777 & ~_current_umask())
    return scratch


@contextlib.contextmanager
def staged_directory(final):
    """Yield an empty scratch directory that replaces ``final`` only if the block finishes."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = make_scratch_directory(f".{final.name}.", final.parent)
    try:
        yield scratch
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    scratch.rename(final)


@contextlib.contextmanager
def staged_file(final):
    """Yield a scratch path that replaces ``final`` only if the block finishes."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(prefix=f".{final.name}.", dir=final.parent)
    os.close(handle)
    os.chmod(scratch, 0o666 & ~_current_umask())
    try:
        yield Path(scratch)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise
    os.replace(scratch, final)


def write_json(path, data):
    with staged_file(path) as scratch:
        scratch.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path):
    return json.loads(Path(path).read_text())


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_arrays(path, arrays):
    """``np.savez`` without its timestamps: the same arrays always give the same bytes, so DVC does not
    rerun later stages, or store another copy, for nothing. ``arrays`` maps names to arrays."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, np.asarray(array))
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buffer.getvalue(),
                             compress_type=zipfile.ZIP_DEFLATED)


def save_sequences(path, sequences, **columns):
    """Store variable-length int sequences (plus per-sequence columns) as one flat .npz (see save_arrays)."""
    lengths = np.array([len(sequence) for sequence in sequences], dtype=np.int64)
    flat = np.concatenate([np.asarray(s, dtype=np.int32) for s in sequences]) if sequences else np.zeros(0, np.int32)
    save_arrays(path, {"flat": flat, "lengths": lengths, **columns})


def load_sequences(path):
    """Inverse of :func:`save_sequences`: (list of int32 arrays, dict of columns)."""
    with np.load(path) as stored:
        offsets = np.concatenate([[0], np.cumsum(stored["lengths"])])
        flat = stored["flat"]
        sequences = [flat[start:end] for start, end in zip(offsets[:-1], offsets[1:])]
        columns = {name: stored[name] for name in stored.files if name not in ("flat", "lengths")}
    return sequences, columns
