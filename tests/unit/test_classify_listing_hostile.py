"""classify's listings against endpoints that misbehave, and a resume index that another run removes between
the listing and the read: a listing either lists every key once or ends the run with one error, never a
quiet short list, never a loop; a concurrent run's tidy-up never fails this one."""

from __future__ import annotations

import json

import pytest
from rcyc_core.errors import RcycError
from rcyc_core.result_store import write_result
from test_classify_resume import BUCKET, IMAGE, MODEL, entry, s3  # noqa: F401 - the fixture

from rcyc_cli.classify.listing import Counts, iter_images
from rcyc_cli.classify.resume import DONE, INDEX_FOLDER, Resume


class Scripted:
    """An S3 client whose ListObjectsV2 answers are the pages given, by the token asked for."""

    def __init__(self, pages: dict):
        self.pages, self.asked = pages, []

    def list_objects_v2(self, **request):
        token = request.get("ContinuationToken")
        self.asked.append(token)
        if len(self.asked) > 50:
            raise AssertionError("the listing never ends")
        return self.pages[token]


def page(keys, token=None, truncated=None):
    answer = {"Contents": [{"Key": k, "Size": 3, "ETag": '"e"'} for k in keys], "IsTruncated": bool(token) if truncated is None else truncated}
    if token:
        answer["NextContinuationToken"] = token
    return answer


def test_a_truncated_page_without_a_continuation_token_is_an_error_not_a_short_listing():
    client = Scripted({None: page(["photos/a.jpg"], truncated=True)})
    with pytest.raises(RcycError, match="no continuation token"):
        list(iter_images(client, BUCKET, "photos/", "results/", Counts()))


def test_continuation_tokens_that_cycle_end_the_listing_with_an_error():
    client = Scripted({None: page(["photos/a.jpg"], "A"), "A": page(["photos/b.jpg"], "B"), "B": page([], "A")})
    with pytest.raises(RcycError, match="repeated"):
        list(iter_images(client, BUCKET, "photos/", "results/", Counts()))
    assert client.asked == [None, "A", "B"]


def test_empty_truncated_pages_are_followed_to_the_keys_after_them():
    client = Scripted({None: page([], "A"), "A": page([], "B"), "B": page(["photos/z.jpg"])})
    assert [key for key, _ in iter_images(client, BUCKET, "photos/", "results/", Counts())] == ["photos/z.jpg"]


def test_the_results_listing_refuses_a_truncated_page_without_a_token_too(s3):  # noqa: F811
    write_result(s3, BUCKET, "results/", entry("photos/a.jpg"), MODEL)

    s3.meta.events.register("after-call.s3.ListObjectsV2", lambda parsed, **_: parsed.update(IsTruncated=True)
                            or parsed.pop("NextContinuationToken", None))
    with pytest.raises(RcycError, match="no continuation token"):
        Resume(s3, BUCKET, "results/", "photos/", MODEL["sha256"]).load()


def test_an_index_file_removed_by_another_run_between_listing_and_reading_is_passed_over(s3):  # noqa: F811
    """Two runs on one prefix: the other run saved its index and removed the files it merged after this run
    listed them. This run goes on without them (its results are still read and checked), never fails."""
    folder = f"results/{INDEX_FOLDER}{MODEL['sha256']}/"
    resume = Resume(s3, BUCKET, "results/", "photos/", MODEL["sha256"]).load()
    resume.record(entry("photos/a.jpg"), MODEL, write_result(s3, BUCKET, "results/", entry("photos/a.jpg"), MODEL))
    resume.save()
    s3.put_object(Bucket=BUCKET, Key=folder + "other-run.json",
                  Body=json.dumps({"model_sha256": MODEL["sha256"], "model": MODEL, "results": {}}).encode())

    def removed_meanwhile(params, **_):
        if params["url_path"].endswith("other-run.json"):
            s3.delete_object(Bucket=BUCKET, Key=folder + "other-run.json")

    s3.meta.events.register("before-call.s3.GetObject", removed_meanwhile)
    again = Resume(s3, BUCKET, "results/", "photos/", MODEL["sha256"]).load()
    assert again.lookup("photos/a.jpg", IMAGE)[0] == DONE
