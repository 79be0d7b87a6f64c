import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = ROOT / "Tests" / "Fixtures" / "gslr-invalid"


@pytest.fixture(scope="session")
def bindir():
    """The gslora release binaries (GSLORA_BIN_DIR, else <repo>/.build/release). Missing binaries fail the tests:
    the interop checks must not pass by not running."""
    d = pathlib.Path(os.environ.get("GSLORA_BIN_DIR") or ROOT / ".build" / "release")
    if not (d / "gslora-inspect").exists():
        pytest.fail(f"no gslora binaries in {d}; run `swift build -c release` or set GSLORA_BIN_DIR")
    return d


@pytest.fixture(scope="session")
def fixtures():
    """The repo's PyTorch-written fixtures (Tests/Fixtures/pytorch; tools/make_fixtures.py rebuilds them)."""
    d = ROOT / "Tests" / "Fixtures" / "pytorch"
    if not (d / "face_vit_tiny.pth").exists():
        pytest.fail(f"no fixtures in {d}; run scripts/make-fixtures.sh")
    return d
