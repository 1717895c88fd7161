"""The paper's face-detector family: MobileNetV2 backbone cut at A or B, Tiny-Face head.

Contract (see DESIGN.md §6 and the paper, Sec. III):

* Backbone: ``keras.applications.MobileNetV2(include_top=False, alpha)`` with the ImageNet
  no-top weights of the data folder (``IMAGENET_WEIGHTS``: alpha 1.0, 0.5 and 0.35). The
  0.5 / 0.35 files are the original keras-applications release with old layer names
  (``mobl0_conv_0_depthwise`` ...), so they load by layer order, never by name; any other
  alpha starts from Keras' random initialisation (seeded by ``seed``).
* Paper layer numbering: the paper's Keras had a ``Conv1_pad`` layer that today's Keras
  lacks, so paper layer #k is today's ``backbone.layers[k - 1]``. Breakpoints:
  A = paper #119 = ``block_13_expand_relu`` (stride 16, 576·alpha channels),
  B = paper #154 = ``out_relu`` (stride 32, 1280 channels for alpha <= 1).
* Freezing ℓ ∈ {63, 98, 133} freezes ``backbone.layers[0:ℓ]``, i.e. through
  ``block_6_project_BN``, ``block_10_project_BN``, ``block_14_project_BN`` respectively.
  Frozen BatchNorm layers are also run in inference mode (Keras 3 does this for any layer
  with ``trainable=False``).
* Heads (125 linear channels = 25 templates × (1 logit + 4 deltas), no sigmoid):
  OutA = Conv2D on A, OutB = Conv2D on B, OutC = Conv2D on Concatenate([A, bilinear 2×
  upsample of B]). Head C needs the stride-16 map to be exactly twice the stride-32 map.
  With a ``None`` input size Keras pads every stride-2 conv by (0, 1), so each halving
  floors (500 → 250 → 125 → 62 → 31 → 15) and head C works only for sides that are
  multiples of 32 (224, 320, 512); with a fixed input size odd maps are padded (1, 1) and
  each halving rounds up (500 → ... → 32 → 16 works). Mismatched sizes raise a Keras shape
  error.
* The model is one flat functional graph over the backbone's own layers (not a nested
  sub-model), so layer names are the MobileNetV2 names plus ``head`` (and, for head C,
  ``head_upsample`` and ``head_concat``). Head A's model stops at ``block_13_expand_relu``
  (later backbone layers are not in it); heads B and C hold the backbone up to ``out_relu``.
"""
from __future__ import annotations

from pathlib import Path

# Paper layer numbers of the breakpoints and their names in today's Keras MobileNetV2.
PAPER_BREAKPOINTS = {"A": (119, "block_13_expand_relu"), "B": (154, "out_relu")}
# Stride of the head's output map for each head.
HEAD_STRIDES = {"A": 16, "B": 32, "C": 16}
# Frozen-prefix lengths studied in the paper (Table I) and the last frozen layer's name.
PAPER_FROZEN = {63: "block_6_project_BN", 98: "block_10_project_BN", 133: "block_14_project_BN"}
HEAD_CHANNELS = 125
# ImageNet no-top weights in <data>/weights per alpha (see the data folder's PROVENANCE.md).
IMAGENET_WEIGHTS = {
    1.0: "mobilenet_v2_1.0_224_no_top_tfslim.h5",
    0.5: "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_224_no_top.h5",
    0.35: "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5",
}


def paper_layer_name(backbone, paper_index: int) -> str:
    """Name of the paper's layer #``paper_index`` in today's Keras MobileNetV2.

    The paper's Keras had an extra ``Conv1_pad`` layer at index 1, so paper #k is today's
    ``backbone.layers[k - 1]``.
    """
    return backbone.layers[paper_index - 1].name


def frozen_layer_name(frozen: int) -> str:
    """Name of the last layer frozen when the paper freezes its first ``frozen`` layers.

    ``frozen`` = ℓ freezes today's ``layers[0:ℓ]``; the last frozen one is ``layers[ℓ-1]``.

    >>> frozen_layer_name(98)
    'block_10_project_BN'
    """
    if frozen not in PAPER_FROZEN:
        raise ValueError(f"frozen={frozen!r}: the paper studies ℓ in {sorted(PAPER_FROZEN)}")
    return PAPER_FROZEN[frozen]


def imagenet_weights_path(alpha: float = 1.0) -> Path:
    """The ImageNet no-top MobileNetV2 weights for ``alpha`` in the data folder."""
    from qsim.datasets import data_path

    if alpha not in IMAGENET_WEIGHTS:
        raise ValueError(f"alpha={alpha!r}: ImageNet weights exist for {sorted(IMAGENET_WEIGHTS)}")
    return data_path("weights", IMAGENET_WEIGHTS[alpha])


def backbone_init(alpha: float) -> str:
    """How :func:`build_backbone` initialises the backbone for ``alpha`` (for records)."""
    if alpha in IMAGENET_WEIGHTS:
        return f"ImageNet ({IMAGENET_WEIGHTS[alpha]})"
    return "random (no ImageNet weights for this alpha)"


def build_backbone(alpha: float = 1.0, input_shape=(None, None, 3), weights="imagenet"):
    """MobileNetV2 without top; ImageNet weights (alpha 1.0, 0.5, 0.35) unless ``weights`` is None.

    Args:
        alpha: width multiplier.
        input_shape: HWC; ``(None, None, 3)`` for any image size.
        weights: ``"imagenet"`` (the data folder's file for alpha 1.0, 0.5 or 0.35, random
            init for any other alpha), a path to a Keras legacy-HDF5 weights file, or None.
    """
    import keras

    backbone = keras.applications.MobileNetV2(
        include_top=False, alpha=alpha, weights=None, input_shape=tuple(input_shape)
    )
    if weights == "imagenet":
        if alpha in IMAGENET_WEIGHTS:
            # Legacy HDF5 loads by layer order (the 0.5 / 0.35 files' names are the old ones).
            backbone.load_weights(str(imagenet_weights_path(alpha)))
    elif weights is not None:
        backbone.load_weights(str(weights))
    # The name↔paper-index mapping is the contract: check it against this Keras version.
    for _, (paper_index, name) in PAPER_BREAKPOINTS.items():
        got = paper_layer_name(backbone, paper_index)
        assert got == name, f"paper layer #{paper_index} is {got!r}, expected {name!r}"
    for frozen, name in PAPER_FROZEN.items():
        assert backbone.layers[frozen - 1].name == name, (frozen, backbone.layers[frozen - 1].name)
    return backbone


def head_layer(head_kernel: int = 1, name: str = "head"):
    """The 125-channel linear detection conv (small normal init, as for an RPN head)."""
    import keras

    return keras.layers.Conv2D(
        HEAD_CHANNELS,
        head_kernel,
        padding="same",
        name=name,
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
        bias_initializer="zeros",
    )


def build_model(
    head: str = "A",
    alpha: float = 1.0,
    input_shape=(None, None, 3),
    frozen: int | None = 98,
    weights="imagenet",
    head_kernel: int = 1,
    seed: int = 0,
):
    """Build the paper's detector ``head`` + ``str(frozen)`` (e.g. A98) as a flat Keras model.

    Args:
        head: "A" (on ``block_13_expand_relu``), "B" (on ``out_relu``) or "C" (on both).
        alpha: MobileNetV2 width multiplier.
        input_shape: HWC input shape.
        frozen: paper ℓ (63, 98 or 133): ``layers[0:ℓ]`` are made non-trainable; None or 0
            trains everything.
        weights: see :func:`build_backbone`.
        head_kernel: spatial size of the head conv (1 in the paper's fast variant).
        seed: seeds Keras' initialisers (head, and backbone when not loaded).

    Returns:
        ``keras.Model`` named ``f"{head}{frozen}_alpha{alpha}"``; output (N, H/s, W/s, 125).
    """
    import keras

    head = head.upper()
    if head not in HEAD_STRIDES:
        raise ValueError(f"head={head!r}: expected one of A, B, C")
    keras.utils.set_random_seed(seed)
    backbone = build_backbone(alpha, input_shape, weights)
    feat_a = backbone.get_layer(PAPER_BREAKPOINTS["A"][1]).output
    feat_b = backbone.get_layer(PAPER_BREAKPOINTS["B"][1]).output
    if head == "A":
        features = feat_a
    elif head == "B":
        features = feat_b
    else:
        up = keras.layers.UpSampling2D(2, interpolation="bilinear", name="head_upsample")(feat_b)
        features = keras.layers.Concatenate(name="head_concat")([feat_a, up])
    out = head_layer(head_kernel)(features)
    model = keras.Model(backbone.input, out, name=f"{head}{frozen or 0}_alpha{alpha}")
    if frozen:
        last = frozen_layer_name(frozen)
        names = [layer.name for layer in backbone.layers]
        frozen_names = set(names[: names.index(last) + 1])
        for layer in model.layers:
            layer.trainable = layer.name not in frozen_names
    return model
