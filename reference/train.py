"""Train the paper's face detector (e.g. A98) on fixed WIDER crops, on a CPU.

Method (paper Sec. III, DESIGN.md §6), sized for a shared 2-core machine:

1. Build the full model (``reference.models.build_model``, input ``(None, None, 3)``) with
   the first ℓ layers frozen (ImageNet weights for alpha 1.0).
2. Draw ``--crops`` fixed 500×500 WIDER crops (``reference.data.make_crops``); a
   ``--val-fraction`` of the *images* (not crops) is held out for a validation loss.
3. Run the frozen prefix once over every crop and cache its output (for ℓ = 98:
   ``block_10_project_BN``, the only tensor the tail reads: ``block_11_expand`` and
   ``block_11_add`` both take it; for ℓ = 133 ``block_14_add``, see `cache_boundary`) as a
   float32 ``.npy`` memmap in ``--cache-dir``.
4. Train the tail (the trainable layers + head, the *same layer objects* as the full
   model, so weights are shared) on the cached tensors with Adam and the eq. (4) loss:

       L = 1/N_cls Σ_i CE(p_i, p_i*) + λ 1/N_reg Σ_i p_i* MSE(b_i, b_i*)

   per crop, averaged over the batch; N_cls = 256 labelled cell-templates sampled per
   crop per step (at most 50 % positive, label -1 ignored), N_reg = 4, MSE = mean over
   (tx, ty, tw, th), p_i* = the sampled positives. BatchNorm layers run in inference mode
   (moving statistics frozen, gamma/beta trained): batches of a few crops give poor batch
   statistics and the exported model must compute what was trained.
5. Each epoch: log losses and time (one JSON line), save a checkpoint (model, Adam state,
   RNG state; `Checkpoint`): rerunning an interrupted command resumes after its last epoch.
   At the end save the full model as legacy HDF5 and a JSON training record.

Rerun the committed A98 model (see reference/README.md for the exact command used)::

    nohup nice -n 0 python -m reference.train --head A --frozen 98 --alpha 1.0 \\
        --out qsim/assets/a98_alpha1.0.h5 > /tmp/train.log 2>&1 &
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

N_CLS = 256
N_REG = 4
MAX_POS_FRACTION = 0.5
NUM_TEMPLATES = 25


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m reference.train", description=__doc__.split("\n")[0])
    p.add_argument("--head", default="A", choices="ABC")
    p.add_argument("--frozen", type=int, default=98, choices=[63, 98, 133])
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--head-kernel", type=int, default=1)
    p.add_argument("--crops", type=int, default=2000, help="number of fixed training crops (incl. val)")
    p.add_argument("--crop-size", type=int, default=500)
    p.add_argument("--val-fraction", type=float, default=0.1, help="fraction of WIDER images held out")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--schedule", default="cosine", choices=["constant", "cosine"],
                   help="cosine: decay the learning rate to lr/10 over --epochs")
    p.add_argument("--lam", type=float, default=1.0, help="λ of eq. (4)")
    p.add_argument("--hard-negatives", type=float, default=0.0,
                   help="fraction of the sampled negatives taken as the highest-logit ones (OHEM)")
    p.add_argument("--oversize", type=float, default=1.0,
                   help="crop face heights up to this many times the largest template")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-budget", type=float, default=0.0,
                   help="stop after the epoch that passes this many minutes of training (0 = none)")
    p.add_argument("--cache-dir", default=".qsim-cache/train")
    p.add_argument("--out", help="output .h5 (full model, legacy HDF5)")
    p.add_argument("--check", metavar="MODEL_H5",
                   help="instead of training: sanity AP of a trained model on the first "
                        "--check-images present FDDB images (pyramid 0.5/1/2, NMS 0.3)")
    p.add_argument("--check-images", type=int, default=40)
    p.add_argument("--check-box", default="1.3,0.26",
                   help="FDDB ellipse-to-box 'alpha,beta' (paper: 1.3,0.26)")
    p.add_argument("--record", default=None, help="training record JSON (default: --out with .json)")
    return p.parse_args(argv)


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def tail_model(model, cut_name: str):
    """A model from the output of layer ``cut_name`` to ``model.output``, sharing layers.

    The layers after ``cut_name`` are called again on a new Input in the full model's
    order; every layer's inputs are found by the producing layer's name, so residual adds
    (and head C's concat) are rewired correctly.
    """
    import keras

    names = [layer.name for layer in model.layers]
    cut = names.index(cut_name)
    inp = keras.Input(shape=model.get_layer(cut_name).output.shape[1:], name=f"{cut_name}_cached")
    tensors = {cut_name: inp}
    for layer in model.layers[cut + 1:]:
        srcs = [tensors[name] for name in _input_names(layer)]
        tensors[layer.name] = layer(srcs if len(srcs) > 1 else srcs[0])
    return keras.Model(inp, tensors[model.layers[-1].name], name=f"{model.name}_tail")


def _input_names(layer) -> list[str]:
    ins = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
    return [t._keras_history.operation.name for t in ins]


def cache_boundary(model, frozen_name: str) -> str:
    """The layer whose output alone feeds the trainable tail.

    Usually the last frozen layer itself (ℓ = 63, 98). When a residual ``Add`` right after it
    also reads an earlier tensor (ℓ = 133: ``block_14_add`` reads ``block_13_project_BN`` and
    ``block_14_project_BN``), the cut moves forward over weight-free layers until one tensor
    carries everything the tail needs, so a single cached array suffices.
    """
    names = [layer.name for layer in model.layers]
    cut = names.index(frozen_name)
    while True:
        before = set(names[: cut + 1])
        needed = {src for layer in model.layers[cut + 1:] for src in _input_names(layer) if src in before}
        if needed == {names[cut]}:
            return names[cut]
        nxt = model.layers[cut + 1]
        if nxt.weights:
            raise ValueError(f"cannot cut after {frozen_name!r}: the tail reads {sorted(needed)}")
        cut += 1


def cache_features(prefix, images: np.ndarray, path: Path, batch: int = 8) -> np.ndarray:
    """Run ``prefix`` over uint8 crops once; store/reuse the result as a float32 ``.npy``."""
    from reference.data import preprocess

    if path.exists():
        feats = np.load(path, mmap_mode="r")
        if feats.shape[0] == len(images):
            log(f"reusing cached features {path} {feats.shape}")
            return feats
    path.parent.mkdir(parents=True, exist_ok=True)
    first = prefix.predict(preprocess(images[:1]), verbose=0)
    tmp = path.with_suffix(".partial.npy")
    feats = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                      shape=(len(images),) + first.shape[1:])
    t0 = time.time()
    for start in range(0, len(images), batch):
        chunk = images[start: start + batch]
        feats[start: start + len(chunk)] = prefix.predict_on_batch(preprocess(chunk))
        if start // batch % 25 == 0:
            log(f"cached {start + len(chunk)}/{len(images)} crops, {time.time() - t0:.0f} s")
    feats.flush()
    del feats
    os.replace(tmp, path)
    log(f"cached features {path} in {time.time() - t0:.0f} s")
    return np.load(path, mmap_mode="r")


def sample_weights(labels: np.ndarray, rng: np.random.Generator, logits=None, hard_fraction: float = 0.0):
    """Per-crop minibatch of cell-templates (Faster R-CNN): ≤ N_CLS, ≤ 50 % positive.

    Negatives fill the rest of the N_CLS; with ``logits`` given, the ``hard_fraction`` of them
    with the highest current logits are taken first (online hard-negative mining) and the
    others at random.

    Returns ``cls_weight`` (1 on sampled cell-templates) and ``pos_weight`` (1 on sampled
    positives), both shaped like ``labels`` (B, H, W, T) float32.
    """
    cls_w = np.zeros(labels.shape, np.float32)
    pos_w = np.zeros(labels.shape, np.float32)
    for b in range(labels.shape[0]):
        flat = labels[b].reshape(-1)
        pos = np.flatnonzero(flat == 1)
        neg = np.flatnonzero(flat == 0)
        n_pos = min(len(pos), int(N_CLS * MAX_POS_FRACTION))
        pos = rng.choice(pos, n_pos, replace=False) if n_pos < len(pos) else pos
        n_neg = min(len(neg), N_CLS - n_pos)
        n_hard = int(hard_fraction * n_neg) if logits is not None else 0
        if n_hard:
            neg_logits = logits[b].reshape(-1)[neg]
            hardest = np.argpartition(-neg_logits, n_hard - 1)[:n_hard]
            rest = np.delete(neg, hardest)
            neg = np.concatenate([neg[hardest], rng.choice(rest, n_neg - n_hard, replace=False)])
        else:
            neg = rng.choice(neg, n_neg, replace=False)
        cw, pw = cls_w[b].reshape(-1), pos_w[b].reshape(-1)
        cw[pos] = 1.0
        cw[neg] = 1.0
        pw[pos] = 1.0
    return cls_w, pos_w


def make_loss_fn(lam: float):
    """Eq. (4) on a head output (B, H, W, 125) against labels/deltas and sampled weights."""
    import tensorflow as tf

    def loss_fn(out, labels, deltas, cls_w, pos_w):
        logits = out[..., :NUM_TEMPLATES]
        # Channel 25 + 25*k + t holds delta k of template t → (B, H, W, T, 4).
        pred = tf.stack([out[..., NUM_TEMPLATES * (1 + k): NUM_TEMPLATES * (2 + k)]
                         for k in range(4)], axis=-1)
        target = tf.cast(labels > 0, tf.float32)
        ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logits)
        l_cls = tf.reduce_sum(ce * cls_w, axis=[1, 2, 3]) / N_CLS
        mse = tf.reduce_mean(tf.square(pred - tf.cast(deltas, tf.float32)), axis=-1)
        l_reg = tf.reduce_sum(mse * pos_w, axis=[1, 2, 3]) / N_REG
        return tf.reduce_mean(l_cls), tf.reduce_mean(l_reg)

    return loss_fn


def models_stride(model_path) -> int:
    """Head stride from a saved model's file name (``a98_...`` → 16, ``b133_...`` → 32)."""
    from reference.models import HEAD_STRIDES

    return HEAD_STRIDES[Path(model_path).name[0].upper()]


class Checkpoint:
    """Per-epoch training state next to ``--out``, so an interrupted run resumes where it stopped.

    Each epoch writes ``<out>.ckpt<E>.h5`` (the full model) and ``<out>.ckpt<E>.npz`` (Adam's
    variables, iteration count included, so the cosine schedule continues), then replaces
    ``<out>.ckpt.json`` (epoch, history, the NumPy generator's state, training minutes,
    arguments) and only then deletes epoch E-1's files: a crash at any point leaves one
    consistent state. A rerun of the same command resumes from it; a rerun with different
    training arguments refuses to (it would mix two runs in one record).
    """

    # Arguments that may change between a run and its resumption.
    FREE = {"time_budget", "record", "cache_dir"}

    def __init__(self, out_path: Path, args):
        self.out_path = out_path
        self.state_path = out_path.with_suffix(".ckpt.json")
        self.args = {k: v for k, v in sorted(vars(args).items()) if k not in self.FREE}

    def _files(self, epoch: int) -> tuple[Path, Path]:
        stem = self.out_path.with_suffix("")
        return Path(f"{stem}.ckpt{epoch}.h5"), Path(f"{stem}.ckpt{epoch}.npz")

    def save(self, model, optimizer, history, rng, train_minutes: float) -> None:
        epoch = len(history)
        weights, opt = self._files(epoch)
        model.save(weights)
        np.savez(opt, *[np.asarray(v) for v in optimizer.variables])
        state = dict(epoch=epoch, history=history, rng=rng.bit_generator.state,
                     train_minutes=train_minutes, args=self.args)
        tmp = self.state_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(state, indent=1) + "\n")
        os.replace(tmp, self.state_path)
        for old in self._files(epoch - 1):
            old.unlink(missing_ok=True)

    def load(self, model, optimizer):
        """Restore weights and optimizer from the last checkpoint; its state dict, or None."""
        if not self.state_path.exists():
            return None
        state = json.loads(self.state_path.read_text())
        if state["args"] != self.args:
            diff = sorted(k for k in set(state["args"]) | set(self.args)
                          if state["args"].get(k) != self.args.get(k))
            raise SystemExit(f"{self.state_path}: checkpoint of a run with other arguments "
                             f"({', '.join(diff)}); delete it or rerun that command")
        weights, opt = self._files(state["epoch"])
        model.load_weights(weights)
        with np.load(opt) as stored:
            values = [stored[f"arr_{i}"] for i in range(len(stored.files))]
        if len(values) != len(optimizer.variables):
            raise SystemExit(f"{opt}: {len(values)} optimizer variables, "
                             f"expected {len(optimizer.variables)}")
        for var, value in zip(optimizer.variables, values):
            var.assign(value)
        return state

    def remove(self) -> None:
        if self.state_path.exists():
            epoch = json.loads(self.state_path.read_text())["epoch"]
            for path in self._files(epoch):
                path.unlink(missing_ok=True)
            self.state_path.unlink()


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def fddb_sanity(model_path, n_images: int, stride: int, box_alpha: float, box_beta: float) -> dict:
    """AP@0.5 of a Keras model on the first ``n_images`` present FDDB images (a sanity check).

    Uses ``qsim.facedet`` (pyramid 0.5/1/2, score >= 0.05, NMS 0.3); the evaluation proper
    lives there. FDDB boxes from ellipses by ``w = box_alpha * ellipse width``, centre moved
    down by ``box_beta * ellipse width``.
    """
    import keras

    from qsim.facedet.detector import detect
    from qsim.facedet.fddb import load_fddb
    from qsim.facedet.metrics import evaluate
    from qsim.images import load_image

    model = keras.models.load_model(model_path, compile=False)
    per_image = []
    for im in load_fddb(alpha=box_alpha, beta=box_beta).images[:n_images]:
        det = detect(load_image(im.path), model.predict_on_batch, stride=stride, score_threshold=0.05)
        per_image.append((det.boxes, det.scores, im.boxes, im.ignore))
    return evaluate(per_image).to_dict()


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.check:
        box_alpha, box_beta = (float(v) for v in args.check_box.split(","))
        result = fddb_sanity(args.check, args.check_images, models_stride(args.check), box_alpha, box_beta)
        print(json.dumps({k: result[k] for k in ("ap", "n_gt", "n_images", "n_detections", "max_recall")}))
        return 0
    if not args.out:
        raise SystemExit("--out is required when training")
    t_start = time.time()
    commit = git_commit()  # the code that runs, even if the tree moves on meanwhile
    import keras
    import tensorflow as tf

    from qsim.facedet.templates import load_templates
    from reference import data, models

    out_path = Path(args.out)
    record_path = Path(args.record) if args.record else out_path.with_suffix(".json")
    stride = models.HEAD_STRIDES[args.head]
    templates = load_templates()
    rng = np.random.default_rng(args.seed)

    model = models.build_model(args.head, alpha=args.alpha, frozen=args.frozen,
                               head_kernel=args.head_kernel, seed=args.seed)
    cut_name = cache_boundary(model, models.frozen_layer_name(args.frozen))
    prefix = keras.Model(model.input, model.get_layer(cut_name).output, name="frozen_prefix")
    tail = tail_model(model, cut_name)
    assert not any(layer.trainable_weights for layer in prefix.layers)

    # Split by image, so validation crops come from images never trained on.
    images = data.wider_images()
    order = np.random.default_rng(args.seed).permutation(len(images))
    n_val_img = max(1, round(args.val_fraction * len(images))) if args.val_fraction > 0 else 0
    val_imgs = [images[i] for i in order[:n_val_img]]
    train_imgs = [images[i] for i in order[n_val_img:]]
    n_val = round(args.crops * args.val_fraction) if n_val_img else 0
    n_train = args.crops - n_val
    log(f"{len(train_imgs)} train / {len(val_imgs)} val WIDER images; "
        f"{n_train} train / {n_val} val crops of {args.crop_size}px")
    tag = f"{args.head}{args.frozen}_a{args.alpha}_s{args.seed}_c{args.crops}_{args.crop_size}"
    if args.oversize != 1.0:
        tag += f"_o{args.oversize}"
    cache_dir = Path(args.cache_dir)
    sets = {}
    for split, imgs, n, seed in [("train", train_imgs, n_train, args.seed),
                                 ("val", val_imgs, n_val, args.seed + 1)]:
        if n == 0:
            continue
        crops = data.make_crops(imgs, n, templates, size=args.crop_size, seed=seed,
                                oversize=args.oversize)
        feats = cache_features(prefix, crops.images, cache_dir / f"{tag}_{split}.npy")
        probe = tail.predict(np.asarray(feats[:1]), verbose=0)
        out_h, out_w = probe.shape[1:3]
        labels = np.empty((n, out_h, out_w, NUM_TEMPLATES), np.int8)
        # float16 halves the RAM of the targets; |error| < 1e-3 relative, far below the loss.
        deltas = np.empty((n, out_h, out_w, NUM_TEMPLATES, 4), np.float16)
        for k, boxes in enumerate(crops.boxes):
            labels[k], deltas[k] = data.targets_for(boxes, out_h, out_w, stride, templates)
        n_faces = sum(len(b) for b in crops.boxes)
        log(f"{split}: {n} crops, {n_faces} faces, map {out_h}x{out_w}, "
            f"{int((labels == 1).sum())} positive cell-templates")
        sets[split] = dict(feats=feats, labels=labels, deltas=deltas, faces=n_faces)
        del crops

    loss_fn = make_loss_fn(args.lam)
    steps_per_epoch = -(-n_train // args.batch)
    lr = args.lr
    if args.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(args.lr, args.epochs * steps_per_epoch, alpha=0.1)
    optimizer = keras.optimizers.Adam(learning_rate=lr)
    trainable = tail.trainable_weights

    @tf.function(reduce_retracing=True, autograph=False)  # no Python control flow inside
    def score_logits(x):
        return tail(x, training=False)[..., :NUM_TEMPLATES]

    @tf.function(reduce_retracing=True, autograph=False)  # no Python control flow inside
    def train_step(x, labels, deltas, cls_w, pos_w):
        with tf.GradientTape() as tape:
            out = tail(x, training=False)  # BN in inference mode, see module docstring
            l_cls, l_reg = loss_fn(out, labels, deltas, cls_w, pos_w)
            loss = l_cls + args.lam * l_reg
        grads = tape.gradient(loss, trainable)
        optimizer.apply_gradients(zip(grads, trainable))
        return l_cls, l_reg

    @tf.function(reduce_retracing=True, autograph=False)  # no Python control flow inside
    def eval_step(x, labels, deltas, cls_w, pos_w):
        return loss_fn(tail(x, training=False), labels, deltas, cls_w, pos_w)

    def evaluate(split):
        s = sets[split]
        eval_rng = np.random.default_rng(12345)  # same sampled anchors every epoch
        totals, n = np.zeros(2), 0
        for start in range(0, len(s["labels"]), args.batch):
            sl = slice(start, start + args.batch)
            cls_w, pos_w = sample_weights(s["labels"][sl], eval_rng)
            l_cls, l_reg = eval_step(np.asarray(s["feats"][sl]), s["labels"][sl],
                                     s["deltas"][sl], cls_w, pos_w)
            totals += np.array([float(l_cls), float(l_reg)]) * len(cls_w)
            n += len(cls_w)
        return totals / n

    history = []
    ckpt = Checkpoint(out_path, args)
    optimizer.build(trainable)
    first_epoch, minutes_before = 1, 0.0
    state = ckpt.load(model, optimizer)
    if state is not None:
        history, minutes_before = state["history"], state["train_minutes"]
        first_epoch = len(history) + 1
        rng.bit_generator.state = state["rng"]
        log(f"resumed from {ckpt.state_path.name} after epoch {len(history)}")
    tr = sets["train"]
    t_train = time.time() - 60 * minutes_before
    log(f"training {len(trainable)} tensors, {sum(int(np.prod(w.shape)) for w in trainable)} params, "
        f"lr {args.lr}, batch {args.batch}, λ {args.lam}")
    for epoch in range(first_epoch, args.epochs + 1):
        t0 = time.time()
        perm = rng.permutation(len(tr["labels"]))
        sums, count = np.zeros(2), 0
        for start in range(0, len(perm), args.batch):
            idx = np.sort(perm[start: start + args.batch])
            x = np.asarray(tr["feats"][idx])
            # Hard-negative mining needs the current logits: one extra forward pass.
            logits = score_logits(x).numpy() if args.hard_negatives else None
            cls_w, pos_w = sample_weights(tr["labels"][idx], rng, logits, args.hard_negatives)
            l_cls, l_reg = train_step(x, tr["labels"][idx], tr["deltas"][idx], cls_w, pos_w)
            sums += np.array([float(l_cls), float(l_reg)]) * len(idx)
            count += len(idx)
        train_cls, train_reg = sums / count
        entry = dict(epoch=epoch, train_cls=train_cls, train_reg=train_reg,
                     train_loss=train_cls + args.lam * train_reg, seconds=time.time() - t0)
        if "val" in sets:
            val_cls, val_reg = evaluate("val")
            entry.update(val_cls=val_cls, val_reg=val_reg, val_loss=val_cls + args.lam * val_reg)
        history.append({k: round(float(v), 5) for k, v in entry.items()})
        print(json.dumps(history[-1]), flush=True)
        elapsed_min = (time.time() - t_train) / 60
        ckpt.save(model, optimizer, history, rng, elapsed_min)
        if args.time_budget and elapsed_min >= args.time_budget:
            log(f"time budget reached after epoch {epoch} ({elapsed_min:.1f} min)")
            break

    out_path.parent.mkdir(parents=True, exist_ok=True)
    model.save(out_path)
    ckpt.remove()
    record = dict(
        model=out_path.name,
        architecture=dict(head=args.head, frozen=args.frozen,
                          frozen_through=models.frozen_layer_name(args.frozen), cached=cut_name,
                          alpha=args.alpha, head_kernel=args.head_kernel, stride=stride,
                          input_shape=[None, None, 3],
                          backbone_init=models.backbone_init(args.alpha)),
        command="python -m reference.train " + " ".join(sys.argv[1:] if argv is None else argv),
        git_commit=commit,
        started_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_start)),
        duration_minutes=round((time.time() - t_start) / 60, 2),
        training_minutes=round((time.time() - t_train) / 60, 2),
        data=dict(source="WIDER FACE val subset in <data>/wider (FDDB never used)",
                  train_images=len(train_imgs), val_images=len(val_imgs),
                  train_crops=n_train, val_crops=n_val, crop_size=args.crop_size,
                  train_faces=sets["train"]["faces"],
                  val_faces=sets["val"]["faces"] if "val" in sets else 0,
                  augmentation="face-driven log-uniform rescale to template heights "
                               f"(top x{args.oversize}), random offset, horizontal flip "
                               "(reference/data.py)"),
        loss=dict(equation="eq. (4)", n_cls=N_CLS, n_reg=N_REG, lam=args.lam,
                  hard_negative_fraction=args.hard_negatives,
                  max_pos_fraction=MAX_POS_FRACTION, pos_iou=0.7, neg_iou=0.3),
        optimizer=dict(name="Adam", lr=args.lr, schedule=args.schedule, batch=args.batch),
        seed=args.seed, epochs_run=len(history), history=history,
        final=history[-1] if history else None,
        environment=dict(python=platform.python_version(), tensorflow=tf.__version__,
                         keras=keras.__version__, numpy=np.__version__,
                         machine=platform.machine()),
    )
    record_path.write_text(json.dumps(record, indent=1) + "\n")
    log(f"saved {out_path} and {record_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
