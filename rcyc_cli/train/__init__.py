"""Training: a five-class model from labelled photos, by transfer learning from EfficientNet-Lite0.

The library behind ``rcyc train`` and the training line of ``rcyc doctor`` (no Click, no rich here):

- :func:`train` (``pipeline.train``): labelled images -> a packaged model directory + a summary dict;
- :func:`self_check` (``selfcheck.self_check``): the backbone against the golden logits;
- :func:`installed`: whether the ``train`` extra is there (TensorFlow, LiteRT, the weights package),
  without importing TensorFlow.

Modules: ``weights`` (find and verify the checkpoint), ``pth`` (torch-free restricted reader of the
legacy PyTorch format), ``backbone`` (the Keras port), ``pipeline`` (the stages), ``selfcheck``.
Importing this package is cheap; TensorFlow loads only when a model is built.
"""

from __future__ import annotations

from typing import Any


def require() -> None:
    """PrerequisiteError unless TensorFlow, LiteRT and the backbone weights are installed."""
    import importlib.util

    from rcyc_core.errors import PrerequisiteError

    from . import weights

    for module, what in (("tensorflow", "TensorFlow"), ("ai_edge_litert", "the LiteRT runtime (ai-edge-litert)")):
        if importlib.util.find_spec(module) is None:
            raise PrerequisiteError(f"{what} is not installed (training needs it)", hint=weights.INSTALL_HINT)
    weights.locate()


def installed() -> tuple[bool, str]:
    """(True, "") when training can run here, else (False, what is missing + the install hint)."""
    from rcyc_core.errors import PrerequisiteError

    try:
        require()
    except PrerequisiteError as exc:
        return False, f"{exc.message} ({exc.hint})"
    return True, ""


def __getattr__(name: str) -> Any:
    # Lazy, so ``import rcyc_cli.train`` (rcyc doctor) stays cheap; the real functions keep their signatures.
    if name == "train":
        from .pipeline import train

        return train
    if name == "self_check":
        from .selfcheck import self_check

        return self_check
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["installed", "require", "self_check", "train"]
