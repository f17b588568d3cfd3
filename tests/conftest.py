import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("SEQNLP_DATA_MIRROR", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture
def mirror(monkeypatch):
    """The real data mirror, as CI and the developers' machines have it."""
    assert (MIRROR / "PROVENANCE.md").exists(), f"no data mirror at {MIRROR}; set SEQNLP_DATA_MIRROR"
    monkeypatch.setenv("SEQNLP_DATA_MIRROR", str(MIRROR))
    return MIRROR
