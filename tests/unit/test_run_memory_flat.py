"""invoke-local's memory does not grow with the number of images: the request checks every file (a regular
file, under the function's limit) before anything starts but reads none; a warm run reads each part's files
only when it posts that part, and a part holds a bounded number of bytes. It read every image up front
(400 files of 2 MB: 1.3 GB resident, base64 and JSON on top of the bytes); now about 150 MB whatever the count."""

from __future__ import annotations

import os

import pytest
from rcyc_core.errors import InputError

from rcyc_cli import files
from rcyc_cli.local import request
from rcyc_cli.local.session import Upload
from rcyc_cli.local.stack import warm


def test_the_request_checks_every_image_and_reads_none(tmp_path, monkeypatch):
    for i in range(5):
        (tmp_path / f"{i}.jpg").write_bytes(b"x" * (i + 1))
    monkeypatch.setattr(files, "read_regular", lambda *a, **k: pytest.fail("an image was read before it was sent"))
    uploads = request.read_uploads(sorted(tmp_path.glob("*.jpg")))
    assert [(u.body, u.size) for u in uploads] == [(None, i + 1) for i in range(5)]
    monkeypatch.undo()
    assert [u.data() for u in uploads] == [b"x" * (i + 1) for i in range(5)]


@pytest.mark.parametrize("kind", ["fifo", "too-large", "folder"])
def test_a_file_that_cannot_be_sent_is_still_refused_before_anything_starts(tmp_path, monkeypatch, kind):
    path = tmp_path / "a.jpg"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    else:
        with open(path, "wb") as sparse:  # one byte over the function's 50 MB, with no 50 MB written
            sparse.truncate(50 * 1024 * 1024 + 1)
    with pytest.raises(InputError):
        request.read_uploads([path])


def upload(size: int) -> Upload:
    return Upload("a.jpg", None, "image/jpeg", size=size)


def test_parts_are_bounded_by_count_and_by_bytes():
    many_small = [upload(10) for _ in range(10)]
    assert [(start, len(chunk)) for start, chunk in warm.parts(many_small, 4, budget=1000)] == [(0, 4), (4, 4), (8, 2)]
    few_large = [upload(400) for _ in range(5)]
    assert [(start, len(chunk)) for start, chunk in warm.parts(few_large, 64, budget=1000)] == [(0, 2), (2, 2), (4, 1)]
    huge = [upload(5000), upload(1)]
    assert [(start, len(chunk)) for start, chunk in warm.parts(huge, 64, budget=1000)] == [(0, 1), (1, 1)]
    assert warm.parts([], 4) == []


def test_a_warm_run_reads_each_part_only_when_it_posts_it(monkeypatch):
    read, posted = [], []

    class Counted(Upload):
        def data(self) -> bytes:
            read.append(self.name)
            return b"x"

    def fake_run_on_stack(running, uploads, event, concurrency, batch_size):
        posted.append(len(read))  # what had been read when this part was posted
        for u in uploads:
            u.data()
        results = [{"record": i, "bucket": "b", "key": f"runs/p/images/{u.name}", "label": "boxes"} for i, u in enumerate(uploads)]
        return {"response": {"results": results, "errors": [], "skipped": []}, "invocations": [], "seconds": 0.1,
                "prefix": "runs/p/"}

    monkeypatch.setattr(warm, "run_on_stack", fake_run_on_stack)
    uploads = [Counted(f"{i}.jpg", None, "image/jpeg", size=warm.PART_BYTES // 3) for i in range(9)]
    warm.run_on_stack_in_parts(None, uploads, None, 1, 16)
    assert posted == [0, 3, 6]  # three parts of three: never more than one part's files read at once
