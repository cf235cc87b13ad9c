"""A Keras 3 port of EfficientNet-Lite0, loaded with the ImageNet checkpoint of the weights package.

EfficientNet-Lite0 is EfficientNet-B0 made friendly to mobile runtimes: ReLU6 instead of swish, no
squeeze-excitation, and the stem (32 filters) and head (1280 filters) kept fixed. Blocks are inverted
residuals (1x1 expand, depthwise, 1x1 project) with a residual connection only when the stride is 1 and
the channel count is unchanged. The checkpoint was trained with TensorFlow's "same" padding (asymmetric on
stride 2) and BatchNorm epsilon 1e-3; getting either wrong shifts the logits by whole units while a cat
still looks like a cat, which is why the tests compare full logit vectors with a PyTorch reference.

The model takes rcyc's own preprocessing output, 224x224 RGB scaled to [0, 1]
(``rcyc_core.preprocess``), and folds the ImageNet normalisation (x * 255 - 127) / 128 into its first
layer, so serving needs no second preprocessing. Layer names never start with ``_``: the TFLite converter
of TF 2.21 / Keras 3 fails on such names.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Mapping

import numpy as np

INPUT_SIZE = 224
STEM_FILTERS = 32
HEAD_FILTERS = 1280
FEATURES = HEAD_FILTERS
IMAGENET_CLASSES = 1000
BN_EPSILON = 1e-3
# EfficientNet-B0's block table: (expand ratio, kernel, stride of the first block, in, out, repeats).
STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
# Bumped whenever the graph below changes, so caches of converted backbones are not reused across ports.
PORT_VERSION = "1"


@dataclass(frozen=True)
class Block:
    index: int
    expand: int
    kernel: int
    stride: int
    channels_in: int
    channels_out: int

    @property
    def prefix(self) -> str:
        return f"block{self.index:02d}_"

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.channels_in == self.channels_out


def blocks() -> list[Block]:
    """The 16 blocks of the network, in order."""
    out: list[Block] = []
    for expand, kernel, stride, channels_in, channels_out, repeats in STAGES:
        for r in range(repeats):
            out.append(Block(len(out), expand, kernel, stride if r == 0 else 1, channels_in if r == 0 else channels_out, channels_out))
    return out


def _features(keras, inputs):
    """The convolutional trunk and pooling: (N, 224, 224, 3) in [0, 1] -> (N, 1280)."""
    layers = keras.layers

    def conv_bn(x, filters, kernel, stride, name, relu=True):
        x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
        x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
        return layers.ReLU(max_value=6.0, name=f"{name}_relu6")(x) if relu else x

    x = layers.Rescaling(255.0 / 128.0, offset=-127.0 / 128.0, name="imagenet_normalise")(inputs)
    x = conv_bn(x, STEM_FILTERS, 3, 2, "stem")
    for block in blocks():
        p = block.prefix
        shortcut = x
        if block.expand != 1:
            x = conv_bn(x, block.channels_in * block.expand, 1, 1, p + "expand")
        x = layers.DepthwiseConv2D(block.kernel, strides=block.stride, padding="same", use_bias=False, name=p + "dw_conv")(x)
        x = layers.BatchNormalization(epsilon=BN_EPSILON, name=p + "dw_bn")(x)
        x = layers.ReLU(max_value=6.0, name=p + "dw_relu6")(x)
        x = conv_bn(x, block.channels_out, 1, 1, p + "project", relu=False)
        if block.residual:
            x = layers.Add(name=p + "add")([shortcut, x])
    x = conv_bn(x, HEAD_FILTERS, 1, 1, "head")
    return layers.GlobalAveragePooling2D(name="avg_pool")(x)


def weight_map(include_top: bool) -> "OrderedDict[str, list[tuple[str, str]]]":
    """Keras layer name -> [(checkpoint tensor name, how to lay it out)], in Keras weight order."""

    def bn(torch_name: str) -> list[tuple[str, str]]:
        return [(f"{torch_name}.{w}", "vector") for w in ("weight", "bias", "running_mean", "running_var")]

    mapping: OrderedDict[str, list[tuple[str, str]]] = OrderedDict()
    mapping["stem_conv"] = [("_conv_stem.weight", "conv")]
    mapping["stem_bn"] = bn("_bn0")
    for block in blocks():
        p, t = block.prefix, f"_blocks.{block.index}."
        if block.expand != 1:
            mapping[p + "expand_conv"] = [(t + "_expand_conv.weight", "conv")]
            mapping[p + "expand_bn"] = bn(t + "_bn0")
        mapping[p + "dw_conv"] = [(t + "_depthwise_conv.weight", "depthwise")]
        mapping[p + "dw_bn"] = bn(t + "_bn1")
        mapping[p + "project_conv"] = [(t + "_project_conv.weight", "conv")]
        mapping[p + "project_bn"] = bn(t + "_bn2")
    mapping["head_conv"] = [("_conv_head.weight", "conv")]
    mapping["head_bn"] = bn("_bn1")
    if include_top:
        mapping["imagenet_logits"] = [("_fc.weight", "dense"), ("_fc.bias", "vector")]
    return mapping


_LAYOUTS = {
    "conv": lambda a: a.transpose(2, 3, 1, 0),  # OIHW -> HWIO
    "depthwise": lambda a: a.transpose(2, 3, 0, 1),  # (C, 1, kh, kw) -> (kh, kw, C, 1)
    "dense": lambda a: a.T,  # (out, in) -> (in, out)
    "vector": lambda a: a,
}


def load_weights(model, state: Mapping[str, np.ndarray], include_top: bool) -> int:
    """Copy the checkpoint into the port's layers; returns how many tensors were used.

    Every float tensor of the checkpoint must be used exactly once (only BatchNorm's
    ``num_batches_tracked`` counters are left), and every shape must match, or ValueError.
    """
    used = set()
    for layer_name, sources in weight_map(include_top).items():
        layer = model.get_layer(layer_name)
        arrays = [np.ascontiguousarray(_LAYOUTS[how](state[name]), dtype=np.float32) for name, how in sources]
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if [a.shape for a in arrays] != expected:
            raise ValueError(f"{layer_name}: checkpoint shapes {[a.shape for a in arrays]} != port {expected}")
        layer.set_weights(arrays)
        used.update(name for name, _ in sources)
    left = {n for n in state if n not in used and not n.endswith("num_batches_tracked")}
    if not include_top:
        left -= {"_fc.weight", "_fc.bias"}
    if left:
        raise ValueError(f"checkpoint tensors not used by the port: {sorted(left)[:5]}")
    return len(used)


def build_backbone(include_top: bool = False, state: Mapping[str, np.ndarray] | None = None):
    """EfficientNet-Lite0 with the ImageNet weights: input (N, 224, 224, 3) in [0, 1] (rcyc's preprocessing).

    ``include_top=False``: output the (N, 1280) pooled features (what rcyc trains its head on);
    ``include_top=True``: output the (N, 1000) ImageNet logits (for the golden test and the self-check).
    ``state`` is the checkpoint (``weights.load()``), loaded and sha256-checked here when not given.
    """
    from rcyc_core.backends import import_keras

    from . import weights

    keras = import_keras()
    state = weights.load() if state is None else state
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="image")
    x = _features(keras, inputs)
    if include_top:
        x = keras.layers.Dense(IMAGENET_CLASSES, name="imagenet_logits")(x)
    model = keras.Model(inputs, x, name="efficientnet_lite0" if include_top else "efficientnet_lite0_features")
    load_weights(model, state, include_top)
    return model


def build_classifier(head_kernel: np.ndarray, head_bias: np.ndarray, state: Mapping[str, np.ndarray] | None = None):
    """The exported model: backbone + softmax Dense over the labels, one flat Keras graph.

    Input (N, 224, 224, 3) in [0, 1], output (N, classes) softmax scores in LABELS order; the head's
    weights are those trained on the backbone's features.
    """
    from rcyc_core.backends import import_keras

    from . import weights

    keras = import_keras()
    state = weights.load() if state is None else state
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="image")
    outputs = keras.layers.Dense(head_kernel.shape[1], activation="softmax", name="head")(_features(keras, inputs))
    model = keras.Model(inputs, outputs, name="rcyc_efficientnet_lite0")
    load_weights(model, state, include_top=False)
    model.get_layer("head").set_weights([np.asarray(head_kernel, np.float32), np.asarray(head_bias, np.float32)])
    return model


def set_fine_tunable(model, top_blocks: int) -> list[str]:
    """Freeze everything but the last ``top_blocks`` blocks' convolutions, the head conv and the Dense head.

    BatchNorm layers stay frozen (a frozen BatchNorm in Keras 3 also runs in inference mode, so its
    ImageNet statistics are kept: small batches of a few classes would wreck them). Returns the names of
    the trainable layers.
    """
    first = len(blocks()) - top_blocks
    trainable_prefixes = tuple(f"block{i:02d}_" for i in range(first, len(blocks()))) + ("head_conv", "head")
    names = []
    for layer in model.layers:
        keep = (
            layer.name.startswith(trainable_prefixes)
            and layer.weights
            and layer.__class__.__name__ != "BatchNormalization"
        )
        layer.trainable = bool(keep)
        if keep:
            names.append(layer.name)
    return names
