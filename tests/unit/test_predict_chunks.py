"""predict in chunks of the function's size: at the chunk edges every file gets exactly one entry, under its
own record, and an unreadable file costs its chunk nothing (the model's work is a stand-in here)."""

from __future__ import annotations

import pytest
from rcyc_core.inference import CHUNK_RECORDS

from rcyc_cli.predict import Predictor


class StandIn:
    manifest = type("M", (), {"summary": staticmethod(lambda: {"name": "m"})})()

    def __init__(self):
        self.chunks: list[int] = []

    def classify(self, items):
        self.chunks.append(len(items))
        return [{"record": i.record, "key": i.key, "label": "boxes", "confidence": 1.0} for i in items], []


@pytest.mark.parametrize("count", [0, 1, CHUNK_RECORDS - 1, CHUNK_RECORDS, CHUNK_RECORDS + 1, 2 * CHUNK_RECORDS + 1])
def test_every_file_has_one_entry_at_every_chunk_edge(tmp_path, count):
    paths = []
    for n in range(count):
        paths.append(tmp_path / f"{n}.jpg")
        if n != CHUNK_RECORDS - 1:  # the last of the first chunk is missing
            paths[-1].write_bytes(b"x")
    predictor = Predictor.__new__(Predictor)
    predictor.backend, predictor.classifier = "stand-in", StandIn()
    response = predictor.classify(paths)
    records = [e["record"] for e in response["results"] + response["errors"]]
    assert sorted(records) == list(range(count)) and [e["record"] for e in response["results"]] == sorted(
        e["record"] for e in response["results"])
    assert all(size <= CHUNK_RECORDS for size in predictor.classifier.chunks)
    if count >= CHUNK_RECORDS:
        assert [e["record"] for e in response["errors"]] == [CHUNK_RECORDS - 1]
        assert response["errors"][0]["error"] == "FileNotFound"
