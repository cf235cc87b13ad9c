"""The eval report in a real browser: Debian's headless Chromium opens the file from disk with the
network off, and what it renders (its DOM) shows the matrix, the gallery's inline images and the
hostile file name as text. The models are the real fixture models through the function's own core."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from rcyc_cli.dataset import load_dataset
from rcyc_cli.evaluate import evaluate, write_report
from tests.conftest import need

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EVAL = ROOT / "fixtures" / "eval"
MODELS = ROOT / "fixtures" / "models"
HOSTILE = "<img src=x onerror=alert(1)>.jpg"
BROWSER_TIMEOUT = 90

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-proxy-server", "--host-resolver-rules=MAP * ~NOTFOUND",  # nothing resolves, nothing is proxied
]


def core_classify(model_dir: Path):
    """classify() over the function's own core (rcyc_core), as `rcyc predict` runs it in-process."""
    from rcyc_core import backends
    from rcyc_core.inference import Classifier, Item
    from rcyc_core.manifest import Manifest
    from rcyc_core.results import empty_response

    manifest = Manifest.load(model_dir)
    classifier = Classifier(manifest, backends.load(manifest, model_dir, "litert"))

    def classify(paths: list[Path]) -> dict:
        response = empty_response(manifest.summary())
        items = [Item(i, None, str(path), Path(path).read_bytes()) for i, path in enumerate(paths)]
        response["results"], response["errors"] = classifier.classify(items)
        return response

    return classify


def run_chromium(binary: str, profile: Path, *args: str) -> str:
    """Run Chromium to completion and return its stdout; on timeout kill its process group (ours alone)."""
    env = {key: value for key, value in os.environ.items() if "proxy" not in key.lower()}
    env["HOME"] = str(profile.parent)
    process = subprocess.Popen([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               start_new_session=True)
    try:
        out, err = process.communicate(timeout=BROWSER_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"chromium did not finish within {BROWSER_TIMEOUT} s")
    finally:
        try:  # helpers it leaves behind (e.g. the crash handler) are in the group it leads
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert process.returncode == 0, err[-2000:]
    return out


class Dom(HTMLParser):
    """What the test needs from the dumped DOM: matrix cell counts, images per section, text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.sections: list[str] = []
        self.images: list[tuple[str | None, dict]] = []
        self.cells: list[int] = []
        self.text: list[str] = []
        self.scripts = 0
        self._in_cell = False
        self._cell_span = False
        self.csp = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag == "section":
            self.sections.append(attributes.get("id") or "")
        elif tag == "img":
            self.images.append((self.sections[-1] if self.sections else None, attributes))
        elif tag == "script":
            self.scripts += 1
        elif tag == "meta" and (attributes.get("http-equiv") or "").lower() == "content-security-policy":
            self.csp = attributes.get("content")
        elif tag == "td" and "cell" in classes:
            self._in_cell = True
        elif tag == "span" and self._in_cell and "c" in classes:
            self._cell_span = True

    def handle_endtag(self, tag):
        if tag == "section" and self.sections:
            self.sections.pop()
        elif tag == "td":
            self._in_cell = False
        elif tag == "span":
            self._cell_span = False

    def handle_data(self, data):
        self.text.append(data)
        if self._cell_span:
            self.cells.append(int(data))


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = shutil.which("chromium")
    need(binary is not None, "Debian's chromium")
    return binary


def test_report_in_headless_chromium(chromium, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(EVAL, data_dir)
    # a glass bottle drawing filed under boxes, with a name that is markup
    shutil.copy(EVAL / "glass_bottles" / "glass_bottles_0.jpg", data_dir / "boxes" / HOSTILE)

    evaluation = evaluate(load_dataset(data_dir), core_classify(MODELS / "fixture-psu"), "fixture-psu",
                          against=core_classify(MODELS / "fixture-softmax"), against_name="fixture-softmax")
    assert evaluation["evaluated"] == 25 and len(evaluation["broken"]) == 2
    hostile = f"boxes/{HOSTILE}"
    assert hostile in [m["path"] for m in evaluation["misclassified"]]
    report = write_report(evaluation, tmp_path / "report.html")
    url = report.resolve().as_uri()

    dom = Dom()
    dom.feed(run_chromium(chromium, tmp_path / "profile", "--dump-dom", url))

    # the matrix the browser shows is the one eval computed, cell by cell
    assert dom.cells == [n for row in evaluation["confusion_matrix"] for n in row]
    assert sum(dom.cells) == evaluation["evaluated"]
    # every misclassified image has its inline thumbnail, and nothing else is an image source
    gallery = [attrs for section, attrs in dom.images if section == "misclassified"]
    assert len(gallery) == len(evaluation["misclassified"]) >= 4
    assert all(attrs["src"].startswith("data:image/jpeg;base64,") for attrs in gallery)
    assert all(attrs["src"].startswith("data:image/") for _, attrs in dom.images)
    assert len([1 for section, _ in dom.images if section == "against"]) == \
        len(evaluation["against"]["comparison"]["disagreements"])
    # the suspected label errors have their own gallery, with thumbnails and what each looks like
    suspects = evaluation["suspects"]["images"]
    assert len(suspects) >= 2
    assert len([1 for section, attrs in dom.images if section == "suspects"
                and attrs["src"].startswith("data:image/jpeg;base64,")]) == len(suspects)
    page = " ".join("".join(dom.text).split())
    assert all(f"looks like {s['looks_like'].replace('_', ' ')}" in page for s in suspects)
    # the hostile name is text in the page, never an element
    text = "".join(dom.text)
    assert hostile in text
    assert not [attrs for _, attrs in dom.images if attrs.get("src") == "x" or "onerror" in attrs]
    assert dom.scripts == 0
    assert dom.csp == "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

    screenshot = tmp_path / "report.png"
    run_chromium(chromium, tmp_path / "profile", f"--screenshot={screenshot}", "--window-size=1200,1800", url)
    with Image.open(screenshot) as image:
        assert image.size == (1200, 1800)
        colours = image.convert("RGB").resize((120, 180)).getcolors(maxcolors=100_000)
    assert colours is not None and len(colours) > 50, "the screenshot is blank"
