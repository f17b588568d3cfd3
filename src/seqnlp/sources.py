"""Where raw data comes from: the real upstream when online, or a local mirror directory.

The mirror (``SEQNLP_DATA_MIRROR``) holds the same files as upstream, laid out as in
``shared/data`` (see its PROVENANCE.md). Every mirror file is checked against its sha256.
"""

import os
import shutil
from pathlib import Path

from seqnlp.artifacts import sha256_of
from seqnlp.errors import DataError, SourceUnavailable

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
