"""rcyc_cli.evaluate.report: one self-contained, escaped HTML file (the browser test is in tests/e2e)."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from rcyc_cli.dataset import load_dataset
from rcyc_cli.evaluate import evaluate, write_report
from rcyc_cli.evaluate.report import render_report, thumbnail_data_uri
from rcyc_core.labels import LABELS

ROOT = Path(__file__).resolve().parents[2]
EVAL = ROOT / "fixtures" / "eval"
HOSTILE = "<img src=x onerror=alert(1)>.jpg"


def own_label(path: Path, folder_label: str) -> str:
    return next((label for label in sorted(LABELS, key=len, reverse=True) if path.stem.startswith(label)), folder_label)


def fake_classify(model: dict, answers: dict[str, str] | None = None):
    """Answers each drawing with the class in its file name (folder label for the rest); decodes with Pillow so
    broken files come back as errors, as the real core reports them. ``answers``: file name -> label overrides."""
    def classify(paths):
        response = {"results": [], "errors": [], "skipped": [], "model": model}
        for record, path in enumerate(paths):
            try:
                with Image.open(path) as image:
                    image.load()
            except Exception as exc:  # noqa: BLE001 - any decode failure is a broken file here
                response["errors"].append({"record": record, "key": str(path), "error": "CorruptImage",
                                           "message": type(exc).__name__})
                continue
            label = own_label(path, path.parent.name if path.parent.name in LABELS else path.parent.parent.name)
            label = (answers or {}).get(path.name, label)
            scores = {name: (0.9 if name == label else 0.025) for name in LABELS}
            response["results"].append({"record": record, "key": str(path), "label": label, "confidence": 0.9,
                                        "scores": scores})
        return response
    return classify


@pytest.fixture
def data_dir(tmp_path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(EVAL, target)
    shutil.copy(EVAL / "glass_bottles" / "glass_bottles_0.jpg", target / "boxes" / HOSTILE)
    return target


@pytest.fixture
def evaluation(data_dir) -> dict:
    # the hostile file is a glass bottle drawing filed under boxes: both models call it a glass bottle
    candidate = fake_classify({"name": "cand<b>", "version": "2", "sha256": "f" * 64}, {HOSTILE: "glass_bottles"})
    reference = fake_classify({"name": "ref", "version": "1", "sha256": "e" * 64},
                              {HOSTILE: "glass_bottles", "boxes_0.jpg": "crushed_soda_cans"})
    return evaluate(load_dataset(data_dir), candidate, against=reference)


def data_uris(html: str) -> list[str]:
    return re.findall(r'src="(data:image/jpeg;base64,[A-Za-z0-9+/=]+)"', html)


def decode(uri: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


def test_report_is_self_contained_and_escaped(tmp_path, evaluation):
    out = write_report(evaluation, tmp_path / "report.html")
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert "default-src 'none'; img-src data:; style-src 'unsafe-inline'" in html
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html), "no external asset"
    assert "@import" not in html and "url(" not in html
    # the hostile file name and a hostile model name are text
    assert "boxes/&lt;img src=x onerror=alert(1)&gt;.jpg" in html
    assert "<img src=x" not in html and "onerror=alert" not in html.replace("onerror=alert(1)&gt;", "")
    assert "cand&lt;b&gt;" in html and "cand<b>" not in html
    # no temporary file left beside it
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["report.html"]


def test_report_shows_matrix_gallery_and_comparison(evaluation):
    html = render_report(evaluation)
    matrix = evaluation["confusion_matrix"]
    cells = re.findall(r'<td class="cell[^"]*"[^>]*><span class="c">(\d+)</span>', html)
    assert [int(x) for x in cells] == [n for row in matrix for n in row]
    # 4 misclassified (3 mislabelled drawings + the hostile copy), each with a thumbnail; 1 disagreement
    assert len(evaluation["misclassified"]) == 4
    uris = data_uris(html)
    suspects = evaluation["suspects"]["images"]
    assert len(uris) == 5 + len(suspects)  # and one per suspected label error, in its own section
    assert html.count('<div class="card">', html.index('id="suspects"'), html.index('id="against"')) == len(suspects)
    for uri in uris:
        image = decode(uri)
        assert image.format == "JPEG" and max(image.size) <= 96
    assert "Against ref" in html and "McNemar" in html
    assert "boxes/boxes_0.jpg" in html  # the one disagreement
    assert "plastic_bottles/truncated.jpg" in html and "CorruptImage" in html  # broken files listed


def test_thumbnails_off_and_gallery_limit(evaluation):
    html = render_report(evaluation, thumbnails=False, gallery_limit=2)
    assert data_uris(html) == []
    assert "no preview" in html
    assert "… and 2 more" in html


def test_exif_orientation_is_applied_to_thumbnails():
    stored = Image.open(EVAL / "glass_bottles" / "sideways_exif.jpg")
    assert stored.size == (120, 160)  # stored sideways, EXIF says rotate
    thumb = decode(thumbnail_data_uri(EVAL / "glass_bottles" / "sideways_exif.jpg"))
    assert thumb.width > thumb.height


def test_thumbnail_failures_are_tolerated(tmp_path):
    assert thumbnail_data_uri(EVAL / "plastic_bottles" / "truncated.jpg") is None
    assert thumbnail_data_uri(EVAL / "soda_cans" / "not_an_image.jpg") is None
    assert thumbnail_data_uri(tmp_path / "missing.jpg") is None
    os.mkfifo(tmp_path / "pipe.jpg")
    assert thumbnail_data_uri(tmp_path / "pipe.jpg") is None  # not opened, so no hang
    tiny = decode(thumbnail_data_uri(EVAL / "soda_cans" / "red_pixel.png"))
    assert min(tiny.size) >= 32  # a 1x1 image is shown as a visible block
    transparent = decode(thumbnail_data_uri(EVAL / "soda_cans" / "transparent_can.png"))
    assert transparent.getpixel((0, 0))[0] > 200  # flattened onto white, not black


def test_paths_outside_the_data_dir_get_no_thumbnail(evaluation):
    evaluation = dict(evaluation)
    evaluation["misclassified"] = [dict(evaluation["misclassified"][0], path="../../etc/passwd")]
    evaluation["suspects"] = dict(evaluation["suspects"], images=[dict(evaluation["suspects"]["images"][0], path="../../etc/passwd")])
    evaluation.pop("against")
    html = render_report(evaluation)
    assert data_uris(html) == []
    assert "../../etc/passwd" in html
