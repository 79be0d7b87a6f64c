"""Every file of the conformance corpus (tools/gslr_corpus.py) gets the result expected.json names."""
import json

import pytest

import gslr
from conftest import CORPUS

TABLE = json.loads((CORPUS / "expected.json").read_text())["files"]


def test_corpus_is_there_and_complete():
    assert TABLE, f"{CORPUS}/expected.json lists no files"
    on_disk = {p.name for p in CORPUS.glob("*.gslr")}
    assert on_disk == {e["file"] for e in TABLE}, "folder and expected.json disagree; run tools/gslr_corpus.py"
    print(f"corpus: {len(TABLE)} files in {CORPUS}")


@pytest.mark.parametrize("entry", TABLE, ids=[e["file"] for e in TABLE])
def test_corpus_file(entry):
    path = str(CORPUS / entry["file"])
    if entry["error"] is None:
        gslr.verify(path)
        return
    if entry["verify_only"]:
        gslr.open_file(path)  # opening reads no tensor data, so it must succeed
    with pytest.raises(gslr.GSLRError) as e:
        gslr.verify(path)
    assert e.value.kind == entry["error"], f"{entry['rule']}: {e.value}"
    assert entry["contains"] in str(e.value), f"{entry['rule']}: {e.value}"
    assert entry["file"] in str(e.value)
