import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data (real datasets); tests that need it skip cleanly where it is absent."""
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is not present (real datasets live beside the repo only on dev/CI machines)")
    return SHARED_DATA


@pytest.fixture
def scene():
    from synthetic import synthetic_scene

    return synthetic_scene()
