"""Where raw data comes from: the user's own files, the real upstream when online, or a local mirror directory.

The mirror (``SEQNLP_DATA_MIRROR``) holds the same files as upstream, laid out as in
``shared/data`` (see its PROVENANCE.md). Every mirror file is checked against its sha256.
The user's own files (``download.local`` in params.yaml) have no published hash: their record
carries the sha256 they had, so results on them are never mistaken for results on the pinned data.
"""

import gzip
import os
import shutil
from pathlib import Path

from seqnlp.artifacts import sha256_of
from seqnlp.errors import DataError, SourceUnavailable, UserError

MIRROR_ENV = "SEQNLP_DATA_MIRROR"


def mirror_directory():
    """The configured mirror directory, or None when the upstream source should be used."""
    configured = os.environ.get(MIRROR_ENV)
    if not configured:
        return None
    mirror = Path(configured).expanduser()
    if not mirror.is_dir():
        raise SourceUnavailable("from the mirror", f"{MIRROR_ENV}={configured} is not a directory")
    return mirror


def verify_sha256(path, expected):
    actual = sha256_of(path)
    if actual != expected:
        raise DataError(path, f"sha256 is {actual}, expected {expected}: the file is corrupt or not the published one")
    return actual


def copy_verified(source, expected_sha256, destination):
    """Copy one mirror file after checking its sha256; return its provenance record."""
    source = Path(source)
    if not source.is_file():
        raise SourceUnavailable(source.name, f"{source} is missing from the mirror")
    verify_sha256(source, expected_sha256)
    shutil.copyfile(source, destination)
    return {"file": source.name, "sha256": expected_sha256, "bytes": source.stat().st_size}


def local_file(configured, key, pinned=True):
    """The user's own file set by params key ``key``; relative to the current directory (the repository root).
    ``pinned``: the task has pinned data to fall back on (null), which a task of local files alone has not."""
    path = Path(configured).expanduser()
    if not path.is_file():
        fallback = " or to null to use the pinned data" if pinned else ""
        raise UserError(f"{key}: {path.resolve()} is not a file; in params.yaml set {key} to an existing file "
                        f"(a relative path is from {Path.cwd()}){fallback}")
    return path


def copy_local(source, destination):
    """Copy the user's file (gzip-compressing it when only ``destination`` is named .gz); return its record."""
    if destination.name.endswith(".gz") and not source.name.endswith(".gz"):
        # mtime=0 and no file name in the header: the same input gives the same bytes, so DVC sees no change
        with open(source, "rb") as stream, open(destination, "wb") as raw, \
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as compressed:
            shutil.copyfileobj(stream, compressed)
    else:
        shutil.copyfile(source, destination)
    # the path as params.yaml gives it: an absolute one would differ from machine to machine
    return {"path": str(source), "sha256": sha256_of(source), "bytes": source.stat().st_size}
