"""A PEP 517 build backend in the standard library alone, so `pip install ./python` works offline in any venv
(setuptools without the `wheel` package cannot build wheels). It packs gslr/*.py into a py3-none-any wheel."""
import base64
import hashlib
import os
import tarfile
import zipfile

NAME, VERSION = "gslr", "1.1.0"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIST = f"{NAME}-{VERSION}.dist-info"
METADATA = f"""Metadata-Version: 2.1
Name: {NAME}
Version: {VERSION}
Summary: Read, verify and write .gslr files (gslora's tensor format, spec/FORMAT.md 1.1) in pure Python
Requires-Python: >=3.9
License: MIT
Provides-Extra: numpy
Requires-Dist: numpy; extra == "numpy"
Provides-Extra: torch
Requires-Dist: torch; extra == "torch"
Requires-Dist: numpy; extra == "torch"
"""
WHEEL = "Wheel-Version: 1.0\nGenerator: gslr_build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def _sources():
    pkg = os.path.join(ROOT, NAME)
    return sorted(f"{NAME}/{f}" for f in os.listdir(pkg) if f.endswith(".py"))


def _wheel(directory, files):
    name = f"{NAME}-{VERSION}-py3-none-any.whl"
    records = []
    with zipfile.ZipFile(os.path.join(directory, name), "w", zipfile.ZIP_DEFLATED) as z:
        for arc, data in files:
            z.writestr(arc, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            records.append(f"{arc},sha256={digest},{len(data)}")
        records.append(f"{DIST}/RECORD,,")
        z.writestr(f"{DIST}/RECORD", "\n".join(records) + "\n")
    return name


def _meta_files():
    return [(f"{DIST}/METADATA", METADATA.encode()), (f"{DIST}/WHEEL", WHEEL.encode())]


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = []
    for rel in _sources():
        with open(os.path.join(ROOT, rel), "rb") as f:
            files.append((rel, f.read()))
    return _wheel(wheel_directory, files + _meta_files())


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    # A .pth file puts the source folder on sys.path.
    return _wheel(wheel_directory, [(f"__editable__.{NAME}.pth", (ROOT + "\n").encode())] + _meta_files())


def build_sdist(sdist_directory, config_settings=None):
    name = f"{NAME}-{VERSION}"
    with tarfile.open(os.path.join(sdist_directory, name + ".tar.gz"), "w:gz") as t:
        for rel in ["pyproject.toml", "README.md", "_build/gslr_build.py"] + _sources():
            t.add(os.path.join(ROOT, rel), arcname=f"{name}/{rel}")
    return name + ".tar.gz"


def get_requires_for_build_wheel(config_settings=None):
    return []


get_requires_for_build_editable = get_requires_for_build_sdist = get_requires_for_build_wheel
