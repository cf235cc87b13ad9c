"""The library half of ``rcyc eval``: how good a model is on a labelled folder, and whether it beats another.

No Click and no rich here; the command parses options, builds the ``classify`` callables (in-process
core or the local emulator pool) and renders what these functions return.

- :func:`evaluate` runs one model (and optionally a reference, ``against``) over a
  :class:`rcyc_cli.dataset.Dataset` and returns a JSON-ready dict;
- :func:`compute_metrics` / :class:`Metrics`: accuracy, per-class and macro precision/recall/F1,
  the confusion matrix, top confusions, expected calibration error;
- :func:`compare_predictions` / :func:`compare_evaluations`, :func:`mcnemar_exact`, :func:`images_needed`: the
  paired comparison of two models;
- :func:`gate`: the reasons a model fails ``--min-accuracy`` / ``--no-worse-than`` (empty = passes);
- :func:`write_report` (in :mod:`.report`, imported lazily: it needs Jinja2 and Pillow): the HTML report.
"""

from .compare import (ALPHA, Comparison, McNemar, compare_evaluations, compare_predictions,
                      gate, images_needed, mcnemar_exact)
from .metrics import ECE_BINS, Metrics, compute_metrics
from .run import CHUNK_SIZE, evaluate, run_model


def write_report(evaluation: dict, path, thumbnails: bool = True, **options):
    """See :func:`rcyc_cli.evaluate.report.write_report` (imported on first use)."""
    from .report import write_report as _write_report

    return _write_report(evaluation, path, thumbnails=thumbnails, **options)


__all__ = [
    "ALPHA", "CHUNK_SIZE", "Comparison", "ECE_BINS", "McNemar", "Metrics", "compare_evaluations", "compare_predictions",
    "compute_metrics", "evaluate", "gate", "images_needed", "mcnemar_exact", "run_model", "write_report",
]
