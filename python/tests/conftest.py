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
    """The PyTorch-written fixtures (GSLORA_FIXTURES, else ../shared/fixtures beside the repo)."""
    d = pathlib.Path(os.environ.get("GSLORA_FIXTURES") or ROOT.parent / "shared" / "fixtures")
    if not (d / "face_vit_tiny.pth").exists():
        pytest.fail(f"no fixtures in {d}; set GSLORA_FIXTURES")
    return d
