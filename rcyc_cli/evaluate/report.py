"""The ``rcyc eval --report FILE.html`` page: one self-contained HTML file.

No network and no external asset: CSS is inline, thumbnails are ``data:image/jpeg;base64`` URIs made
here with Pillow, there is no JavaScript, and a Content-Security-Policy meta tag forbids every load but
inline styles and ``data:`` images. The page is rendered by Jinja2 with autoescaping on, so every file
name, label and message is text, never markup.
"""

from __future__ import annotations

import base64
import io
import os
import stat
import warnings
from pathlib import Path, PurePosixPath

from rcyc_core.labels import LABELS

THUMBNAIL_SIZE = 96
"""Longest side of a gallery thumbnail, in pixels."""

GALLERY_LIMIT = 200
"""At most this many images per gallery (the JSON output lists them all)."""

THUMBNAIL_MAX_PIXELS = 64_000_000
"""Images with more pixels than this get no thumbnail (a decompression bomb is never decoded)."""

TEMPLATE = "report.html.j2"

# Heat-map colours: right answers (the diagonal) in green, confusions in red; the cell's alpha is its
# share of the row, so each row reads as "where the images of this label went".
_DIAGONAL_RGB = (26, 127, 55)
_CONFUSION_RGB = (207, 34, 46)


def thumbnail_data_uri(path: Path, size: int = THUMBNAIL_SIZE) -> str | None:
    """A small upright JPEG of the image at ``path`` as a data URI, or ``None`` if it cannot be made.

    Only regular files are opened; the EXIF orientation is applied; transparency is flattened onto
    white. Any failure to decode (Pillow raises many exception types for damaged files) gives ``None``:
    a report never fails because of one picture.
    """
    from PIL import Image, ImageOps

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                if image.width * image.height > THUMBNAIL_MAX_PIXELS:
                    return None
                image.draft("RGB", (size * 2, size * 2))  # JPEG: decode at a reduced scale, much faster
                upright = ImageOps.exif_transpose(image)
                if upright.mode in ("RGBA", "LA", "P", "PA"):
                    upright = upright.convert("RGBA")
                    canvas = Image.new("RGB", upright.size, (255, 255, 255))
                    canvas.paste(upright, mask=upright.getchannel("A"))
                    upright = canvas
                else:
                    upright = upright.convert("RGB")
                upright.thumbnail((size, size))
                if max(upright.size) < size // 3:  # a few pixels: show them as blocks, not as a dot
                    scale = size // max(upright.size)
                    upright = upright.resize((upright.width * scale, upright.height * scale), Image.Resampling.NEAREST)
                buffer = io.BytesIO()
                upright.save(buffer, "JPEG", quality=80)
    except Exception:  # noqa: BLE001 - decoration only; see the docstring
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _inside(root: Path, relative: str) -> Path | None:
    """``root / relative`` when ``relative`` is a plain relative path (no ``..``, not absolute)."""
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        return None
    return root.joinpath(*pure.parts)


def _percent(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{value * 100:.{digits}f}%"


def _fixed(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}"


def _signed(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    if abs(value) < 0.5 * 10 ** -digits:
        return f"{0:.{digits}f}"
    return f"{value:+.{digits}f}".replace("-", "\u2212")


def _width(value: float | None) -> str:
    """A CSS percentage for a bar of ``value`` in [0, 1] (numbers only, so safe in a style attribute)."""
    v = 0.0 if value is None else min(1.0, max(0.0, float(value)))
    return f"{v * 100:.1f}%"


def _score(value: float) -> str:
    if value >= 0.995:
        return f"{value:.2f}"
    if value < 0.005:
        return "<0.01" if value > 0 else "0"
    return f"{value:.2f}"


def _heat_cells(matrix: list[list[int]]) -> list[list[dict]]:
    rows = []
    for i, row in enumerate(matrix):
        total = sum(row)
        cells = []
        for j, count in enumerate(row):
            share = count / total if total else 0.0
            rgb = _DIAGONAL_RGB if i == j else _CONFUSION_RGB
            alpha = 0.0 if count == 0 else 0.12 + 0.83 * share
            cells.append({
                "count": count,
                "share": share,
                "diagonal": i == j,
                "style": f"background: rgba({rgb[0]}, {rgb[1]}, {rgb[2]}, {alpha:.3f}); "
                         f"color: {'#ffffff' if alpha > 0.5 else '#1f2328'};",
            })
        rows.append(cells)
    return rows


def _model_text(model: dict | None) -> dict:
    model = model or {}
    sha = str(model.get("sha256") or "")
    return {"name": str(model.get("name") or model.get("given_as") or "model"),
            "version": str(model.get("version") or ""),
            "sha": sha[:12], "given_as": str(model.get("given_as") or "")}


def _gallery(entries: list[dict], root: Path, thumbnails: bool, limit: int, cache: dict) -> tuple[list[dict], int]:
    shown = []
    for entry in entries[:limit]:
        uri = None
        if thumbnails:
            if entry["path"] not in cache:
                location = _inside(root, entry["path"])
                cache[entry["path"]] = thumbnail_data_uri(location) if location is not None else None
            uri = cache[entry["path"]]
        shown.append({**entry, "thumbnail": uri})
    return shown, max(0, len(entries) - limit)


def _scores(scores: dict, true: str, predicted: str) -> list[dict]:
    return [{"label": label, "value": float(scores.get(label, 0.0)), "text": _score(float(scores.get(label, 0.0))),
             "true": label == true, "predicted": label == predicted} for label in LABELS]


def _scores_of(evaluation: dict, path: str) -> dict:
    return next((p.get("scores") or {} for p in evaluation.get("predictions", []) if p["path"] == path), {})


def build_context(evaluation: dict, thumbnails: bool = True, gallery_limit: int = GALLERY_LIMIT) -> dict:
    """Everything the template shows, precomputed (the template only lays it out)."""
    metrics = evaluation["metrics"]
    labels = list(metrics.get("labels") or LABELS)
    root = Path(evaluation.get("data_dir") or ".")
    cache: dict[str, str | None] = {}
    misclassified = [{**m, "bars": _scores(m.get("scores") or {}, m["true"], m["predicted"])}
                     for m in evaluation.get("misclassified", [])]
    gallery, gallery_more = _gallery(misclassified, root, thumbnails, gallery_limit, cache)
    per_class = [{"label": label, **metrics["per_class"][label]} for label in labels]
    found = evaluation.get("suspects") or {}
    suspects = [{**entry, "bars": _scores(_scores_of(evaluation, entry["path"]), entry["label"], entry["looks_like"])}
                for entry in found.get("images", [])]
    suspects, suspects_more = _gallery(suspects, root, thumbnails, gallery_limit, cache)

    context = {
        "labels": labels,
        "model": _model_text(evaluation.get("model")),
        "data_dir": str(evaluation.get("data_dir") or ""),
        "images": evaluation.get("images", 0),
        "evaluated": evaluation.get("evaluated", 0),
        "broken": evaluation.get("broken", []),
        "skipped": evaluation.get("skipped", []),
        "metrics": metrics,
        "per_class": per_class,
        "heat": list(zip(labels, _heat_cells(metrics["confusion_matrix"]),
                         (sum(row) for row in metrics["confusion_matrix"]))),
        "column_totals": [sum(row[j] for row in metrics["confusion_matrix"]) for j in range(len(labels))],
        "top_confusions": metrics.get("top_confusions", [])[:8],
        "calibration": [b for b in metrics.get("calibration", []) if b.get("count")],
        "gallery": gallery,
        "gallery_more": gallery_more,
        "misclassified_count": len(misclassified),
        "images_per_second": evaluation.get("images_per_second"),
        "seconds": evaluation.get("seconds"),
        "thumbnails": thumbnails,
        "accuracy": evaluation.get("accuracy", metrics["accuracy"]),
        "accuracy_ci": evaluation.get("accuracy_ci", metrics.get("accuracy_ci")),
        "leakage": evaluation.get("leakage") or {},
        "suspects_found": found,
        "suspects": suspects,
        "suspects_more": suspects_more,
        "against": None,
    }
    other = evaluation.get("against")
    if other and other.get("comparison"):
        comparison = other["comparison"]
        disagreements, more = _gallery(comparison.get("disagreements", []), root, thumbnails, gallery_limit, cache)
        context["against"] = {
            "model": _model_text(other.get("model")),
            "metrics": other["metrics"],
            "broken": other.get("broken", []),
            "images_per_second": other.get("images_per_second"),
            "comparison": comparison,
            "per_class": [{"label": label, **comparison["per_class"][label]} for label in labels],
            "disagreements": disagreements,
            "disagreements_more": more,
            "mcnemar": comparison["mcnemar"],
        }
    return context


def _environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(str(Path(__file__).with_name("templates"))),
        autoescape=True,  # every value is escaped, whatever the template's file name
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(percent=_percent, fixed=_fixed, signed=_signed, width=_width,
                       label=lambda name: str(name).replace("_", " "))
    return env


def render_report(evaluation: dict, thumbnails: bool = True, gallery_limit: int = GALLERY_LIMIT) -> str:
    """The report's HTML as a string."""
    return _environment().get_template(TEMPLATE).render(**build_context(evaluation, thumbnails, gallery_limit))


def write_report(evaluation: dict, path: Path, thumbnails: bool = True, gallery_limit: int = GALLERY_LIMIT) -> Path:
    """Write the report for an :func:`rcyc_cli.evaluate.evaluate` result to ``path`` (atomically: a
    reader never sees half a file) and return ``path``.

    ``thumbnails=False`` leaves the pictures out (a smaller file; the galleries show the names only).
    Each gallery shows at most ``gallery_limit`` images, and says how many more there are.
    """
    from ..outputs import write_file

    html = render_report(evaluation, thumbnails, gallery_limit)
    write_file(Path(path), html, "--report")
    return path
