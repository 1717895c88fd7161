"""Export Keras models for qsim: legacy HDF5 full model (``.h5``), Keras 3 archive
(``.keras``), and weights-only files with their architecture JSON.

Command line (builds one of the paper's models with `reference.models.build_model`)::

    python -m reference.export --head A --frozen 98 --alpha 0.5 --out models/
    qsim inspect models/A98_alpha0.5.h5 --size 224x224
"""
from __future__ import annotations

import argparse
from pathlib import Path


def export_h5(model, path: str | Path) -> Path:
    """Save the full model (config + weights) in the legacy HDF5 format."""
    path = Path(path)
    if path.suffix != ".h5":
        raise ValueError(f"{path}: a legacy HDF5 model file must end in .h5")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(path))
    return path


def export_keras(model, path: str | Path) -> Path:
    """Save the model as a Keras 3 ``.keras`` zip archive (config.json + model.weights.h5)."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{path}: a Keras archive must end in .keras")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(path))
    return path


def export_weights(model, weights_path: str | Path, arch_path: str | Path) -> tuple[Path, Path]:
    """Weights-only file + architecture JSON (``qsim.load_model(weights, arch=json)``).

    A ``.weights.h5`` name gives the Keras 3 layout, a plain ``.h5`` the legacy one.
    """
    weights_path, arch_path = Path(weights_path), Path(arch_path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    if weights_path.name.endswith(".weights.h5"):
        model.save_weights(str(weights_path))
    else:
        import h5py
        from keras.src.legacy.saving import legacy_h5_format

        with h5py.File(weights_path, "w") as f:
            legacy_h5_format.save_weights_to_hdf5_group(f, model)
    arch_path.write_text(model.to_json())
    return weights_path, arch_path


def export_all(model, stem: str | Path) -> dict[str, Path]:
    """``<stem>.h5`` and ``<stem>.keras``."""
    stem = Path(stem)
    return {"h5": export_h5(model, stem.parent / f"{stem.name}.h5"),
            "keras": export_keras(model, stem.parent / f"{stem.name}.keras")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--head", default="A", choices=["A", "B", "C"])
    parser.add_argument("--frozen", type=int, default=98)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--weights", default="imagenet", help="'imagenet', a weights file, or 'none'")
    parser.add_argument("--size", default=None, help="fixed input HxW (default: any size)")
    parser.add_argument("--out", default=".", help="output folder")
    args = parser.parse_args(argv)
    from reference.models import build_model

    shape = (None, None, 3)
    if args.size:
        h, w = (int(v) for v in args.size.lower().split("x"))
        shape = (h, w, 3)
    weights = None if args.weights == "none" else args.weights
    model = build_model(args.head, args.alpha, shape, args.frozen, weights)
    paths = export_all(model, Path(args.out) / f"{args.head}{args.frozen}_alpha{args.alpha}")
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
