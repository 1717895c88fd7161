from setuptools import find_packages, setup

setup(
    name="qsim",
    version="0.1.0",
    description="Bit-accurate fixed-point (Q-format) and Kendryte K210 simulator for MobileNetV2-style CNNs",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["qsim", "qsim.*"]),
    package_data={"qsim": ["assets/*", "assets/**/*"]},
    install_requires=[
        "numpy>=1.26",
        "numba>=0.59",
        "h5py>=3.10",
        "pillow>=10",
        "matplotlib>=3.8",
        "tqdm>=4.66",
        "scikit-image>=0.22",  # bundled public-domain demo image (astronaut)
        "flatbuffers>=23.5",  # .tflite files are flatbuffers (qsim.tflite.reader)
        "tflite>=2.18",  # generated Python bindings of TFLite's schema.fbs (no TensorFlow)
    ],
    extras_require={
        # qsim.testing (hypothesis strategies and assert_same_codes for users' own kernels)
        "testing": ["hypothesis>=6.100"],
        # sweep/eval on a Dask cluster (--scheduler tcp://HOST:PORT | local:N)
        "dask": ["dask[distributed]>=2024.1"],
        # TensorFlow and friends: reference/ (build, train, export), bench/ and tests only.
        "test": [
            "pytest>=8",
            "hypothesis>=6.100",
            "tensorflow-cpu>=2.16",
            "onnx>=1.15",
            "onnxruntime>=1.17",
            "opencv-python-headless>=4.8,<5",  # 5.x dropped CascadeClassifier + haarcascades (Viola-Jones baseline)
            "dask[distributed]>=2024.1",  # the --scheduler tests (a LocalCluster, and the scheduler .ci/run starts)
            "threadpoolctl>=3",  # tests/runtime/bits.py: which BLAS kernel float hashes were made with
            "ruff==0.17.6",  # pinned: the lint rules of ruff.toml must not move under CI
        ],
    },
    entry_points={"console_scripts": ["qsim=qsim.cli:main"]},
)
