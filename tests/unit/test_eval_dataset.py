"""rcyc_cli.dataset: the labelled-folder layout that rcyc eval (and train) read."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from rcyc_cli.dataset import IMAGE_EXTENSIONS, Dataset, LabelledImage, load_dataset
from rcyc_core.errors import InputError
from rcyc_core.labels import LABELS

ROOT = Path(__file__).resolve().parents[2]
EVAL = ROOT / "fixtures" / "eval"
DRAWING = ROOT / "fixtures" / "images" / "boxes" / "boxes_0.jpg"


def put(path: Path, source: Path = DRAWING) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, path)
    return path


def test_fixture_folder_loads_every_image_with_its_folder_label():
    data = load_dataset(EVAL)
    assert len(data) == 26
    assert data.counts() == {"boxes": 5, "glass_bottles": 5, "soda_cans": 6, "crushed_soda_cans": 4,
                             "plastic_bottles": 6}
    assert list(data.counts()) == list(LABELS)
    by_name = {data.relative(image.path): image.label for image in data.images}
    # nested folders inherit the label of their top-level folder
    assert by_name["crushed_soda_cans/batch-2/crushed_soda_cans_3.jpg"] == "crushed_soda_cans"
    # the deliberately mislabelled drawing carries its folder's label, not its file name's
    assert by_name["boxes/soda_cans_3.jpg"] == "boxes"
    # the README beside the label folders is not data and not worth a "skipped" line
    assert data.skipped == []
    assert all(isinstance(image, LabelledImage) for image in data.images)
    assert data.folders == {label: label for label in LABELS}


def test_order_is_sorted_by_relative_path_and_repeatable():
    first, second = load_dataset(EVAL), load_dataset(EVAL)
    assert first.images == second.images
    parts = [image.path.relative_to(EVAL).parts for image in first.images]
    assert parts == sorted(parts)


def test_unknown_top_level_folder_is_an_error_that_lists_the_labels(tmp_path):
    put(tmp_path / "boxes" / "a.jpg")
    put(tmp_path / "cans" / "b.jpg")
    put(tmp_path / "jars" / "c.jpg")
    with pytest.raises(InputError) as raised:
        load_dataset(tmp_path)
    message = str(raised.value)
    assert "'cans'" in message and "'jars'" in message
    for label in LABELS:
        assert label in message
    assert "[eval.labels]" in raised.value.hint and 'cans = "soda_cans"' in raised.value.hint


def test_mapping_names_the_label_of_a_folder(tmp_path):
    put(tmp_path / "cans" / "b.jpg")
    put(tmp_path / "soda_cans" / "a.jpg")
    data = load_dataset(tmp_path, {"cans": "soda_cans"})
    assert [image.label for image in data.images] == ["soda_cans", "soda_cans"]
    assert data.folders == {"cans": "soda_cans", "soda_cans": "soda_cans"}


@pytest.mark.parametrize("mapping", [{"cans": "tin_cans"}, {"cans": None}, {"a/b": "boxes"}, {".x": "boxes"}])
def test_mapping_must_name_labels_and_top_level_folders(tmp_path, mapping):
    put(tmp_path / "cans" / "b.jpg")
    with pytest.raises(InputError) as raised:
        load_dataset(tmp_path, mapping)
    assert "[eval.labels]" in str(raised.value)


def test_hidden_entries_are_ignored_everywhere(tmp_path):
    put(tmp_path / "boxes" / "a.jpg")
    put(tmp_path / "boxes" / ".hidden.jpg")
    put(tmp_path / "boxes" / ".thumbs" / "b.jpg")
    put(tmp_path / ".git" / "c.jpg")  # a hidden top-level folder is not an unknown label
    (tmp_path / "boxes" / ".DS_Store").write_bytes(b"\0")
    data = load_dataset(tmp_path)
    assert [data.relative(image.path) for image in data.images] == ["boxes/a.jpg"]
    assert data.skipped == []


def test_extensions_are_case_insensitive_and_other_files_are_skipped_with_a_reason(tmp_path):
    put(tmp_path / "boxes" / "A.JPG")
    put(tmp_path / "boxes" / "b.Jpeg")
    put(tmp_path / "boxes" / "c.webp")
    (tmp_path / "boxes" / "notes.txt").write_text("hello")
    (tmp_path / "boxes" / "noext").write_text("hello")
    data = load_dataset(tmp_path)
    assert [image.path.name for image in data.images] == ["A.JPG", "b.Jpeg", "c.webp"]
    assert [(path.name, reason) for path, reason in data.skipped] == [
        ("noext", "not an image file extension"), ("notes.txt", "not an image file extension")]
    assert {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"} == set(IMAGE_EXTENSIONS)


def test_loose_files_at_the_top_level(tmp_path):
    put(tmp_path / "boxes" / "a.jpg")
    (tmp_path / "README.md").write_text("about this data")
    put(tmp_path / "stray.jpg")
    data = load_dataset(tmp_path)
    assert len(data) == 1
    assert [(path.name, reason) for path, reason in data.skipped] == [("stray.jpg", "not inside a label folder")]


def test_special_files_are_skipped_without_being_opened(tmp_path):
    put(tmp_path / "boxes" / "a.jpg")
    os.mkfifo(tmp_path / "boxes" / "pipe.jpg")  # opening this for reading would block forever
    (tmp_path / "boxes" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    data = load_dataset(tmp_path)
    assert [image.path.name for image in data.images] == ["a.jpg"]
    assert dict((path.name, reason) for path, reason in data.skipped) == {
        "gone.jpg": "dangling symbolic link", "pipe.jpg": "not a regular file (FIFO)"}


def test_links_inside_count_links_out_are_never_followed_and_loops_are_walked_once(tmp_path):
    outside = put(tmp_path / "elsewhere" / "x.jpg")
    data_root = tmp_path / "data"
    put(data_root / "boxes" / "a.jpg")
    (data_root / "boxes" / "linked.jpg").symlink_to(outside)
    (data_root / "boxes" / "inside.jpg").symlink_to(data_root / "boxes" / "a.jpg")
    (data_root / "boxes" / "loop").symlink_to(data_root / "boxes")
    (data_root / "boxes" / "deeper").mkdir()
    (data_root / "boxes" / "deeper" / "up").symlink_to(data_root)
    data = load_dataset(data_root)
    assert [data.relative(image.path) for image in data.images] == ["boxes/a.jpg", "boxes/inside.jpg"]
    reasons = {data.relative(path): reason for path, reason in data.skipped}
    assert reasons["boxes/linked.jpg"].startswith("a link out of the data folder")
    assert reasons["boxes/loop"].startswith("folder already read")
    assert reasons["boxes/deeper/up"].startswith("folder already read")


def test_empty_or_missing_data_is_an_error(tmp_path):
    with pytest.raises(InputError, match="no images"):
        load_dataset(tmp_path)
    (tmp_path / "boxes").mkdir()
    (tmp_path / "boxes" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="no images"):
        load_dataset(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        load_dataset(tmp_path / "missing")
    with pytest.raises(InputError, match="not a directory"):
        load_dataset(tmp_path / "boxes" / "notes.txt")


def test_dataset_helpers():
    root = Path("data")
    data = Dataset(root, [LabelledImage(root / "boxes" / "a.jpg", "boxes"),
                          LabelledImage(root / "soda_cans" / "b.jpg", "soda_cans")])
    assert data.paths() == [root / "boxes" / "a.jpg", root / "soda_cans" / "b.jpg"]
    assert data.labels() == ["boxes", "soda_cans"]
    assert data.relative(root / "soda_cans" / "b.jpg") == "soda_cans/b.jpg"
    assert data.counts()["glass_bottles"] == 0
