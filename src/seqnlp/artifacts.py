"""Reading and writing stage artifacts so that a failed stage never leaves a half-written output."""

import collections.abc
import contextlib
import hashlib
import io
import json
import math
import os
import shutil
import struct
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


def save_arrays(path, arrays, compress=True):
    """``np.savez`` without its timestamps: the same arrays always give the same bytes, so DVC does not
    rerun later stages, or store another copy, for nothing. ``arrays`` maps names to arrays."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, np.asarray(array))
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buffer.getvalue(),
                             compress_type=method)


def stored_members(file):
    """{name: (offset, shape, dtype)} of each array in an open, uncompressed .npz (``save_arrays(...,
    compress=False)``), so that a reader can take part of an array without reading it all. A member's bytes lie
    whole in the archive after its local header (30 bytes, then its name and an extra field) and its .npy header."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    with zipfile.ZipFile(file) as archive:
        stored = archive.infolist()
    members = {}
    for member in stored:
        if member.compress_type != zipfile.ZIP_STORED:
            raise ValueError(f"{file.name}: {member.filename} is compressed, so its rows cannot be read one by one")
        file.seek(member.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", file.read(4))
        file.seek(member.header_offset + 30 + name_length + extra_length)
        shape, fortran_order, dtype = readers[np.lib.format.read_magic(file)](file)
        if fortran_order and len(shape) > 1:
            raise ValueError(f"{file.name}: {member.filename} is stored in Fortran order")
        members[member.filename.removesuffix(".npy")] = (file.tell(), shape, dtype)
    return members


def read_part(file, offset, count, dtype, row_shape=()):
    """``count`` rows of ``row_shape`` stored at ``offset`` in an open binary file, read without moving it."""
    data = os.pread(file.fileno(), count * math.prod(row_shape) * dtype.itemsize, offset)
    return np.frombuffer(data, dtype).reshape((count, *row_shape))


class Sequences(collections.abc.Sequence):
    """The sequences of a file :func:`save_sequences` wrote, each read from the file when it is asked for:
    holding a split costs its offsets, not its rows, however large it grows. (A memory map would hold every
    page it touched, and the ones the kernel maps around them, until the whole file is resident.)"""

    def __init__(self, file, offset, row_shape, dtype, lengths):
        self.file, self.offset, self.row_shape, self.dtype = file, offset, row_shape, dtype
        self.row_bytes = math.prod(row_shape) * dtype.itemsize
        self.offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])

    def __len__(self):
        return len(self.offsets) - 1

    @property
    def lengths(self):
        """Every sequence's length, known from the offsets: sorting a split by length reads none of its rows."""
        return np.diff(self.offsets)

    def __getitem__(self, index):
        if not -len(self) <= index < len(self):
            raise IndexError(f"sequence {index} of {len(self)}")
        index %= len(self)
        start, end = self.offsets[index], self.offsets[index + 1]
        return read_part(self.file, self.offset + int(start) * self.row_bytes, int(end - start), self.dtype,
                         self.row_shape)


def save_sequences(path, sequences, **columns):
    """Store variable-length int sequences (plus per-sequence columns) as one flat, uncompressed .npz (see
    save_arrays), from which :func:`load_sequences` reads a sequence at a time."""
    lengths = np.array([len(sequence) for sequence in sequences], dtype=np.int64)
    flat = np.concatenate([np.asarray(s, dtype=np.int32) for s in sequences]) if sequences else np.zeros(0, np.int32)
    save_arrays(path, {"flat": flat, "lengths": lengths, **columns}, compress=False)


def load_sequences(path):
    """Inverse of :func:`save_sequences`: (:class:`Sequences`, dict of the per-sequence columns, read whole)."""
    file = open(path, "rb", buffering=0)
    members = stored_members(file)
    columns = {name: read_part(file, offset, shape[0] if shape else 1, dtype, shape[1:]).reshape(shape)
               for name, (offset, shape, dtype) in members.items() if name != "flat"}
    offset, shape, dtype = members["flat"]
    return Sequences(file, offset, shape[1:], dtype, columns.pop("lengths")), columns
