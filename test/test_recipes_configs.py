"""Every recipe config under egs/ loads and its stage sections bind to the stage CLIs' dataclasses.

test_shipped_configs.py builds the model part of each config on the meta device; here the stage
sections (data, selfgen, train, decode, score, export, benchmarks) are checked the way each stage
CLI checks them, so a typo in any recipe fails here before a run reaches that stage.
"""

import json
from pathlib import Path

import pytest

from toolkit.config import check_section, load_config, to_container
from toolkit.models.lalm import check_model_config

ROOT = Path(__file__).resolve().parent.parent
# conf/<engine>.yaml (slurm, ray, local) are engine resource files, checked in test/drills/test_engines.py
ENGINE_CONFS = {"local", "slurm", "ray"}
CONFIGS = sorted(p for p in (ROOT / "egs").glob("*/*/conf/*.yaml") if p.stem not in ENGINE_CONFS)
CORPORA = ["librispeech", "vctk", "iemocap", "cremad", "esc50", "audiocaps", "vocalsound", "gtzan", "nsynth",
           "libricount", "speech_commands", "voxceleb1", "commonvoice"]
FULL_SWAP = ["llm=llama3_1_8b_instruct", "encoder=whisper_large_v3", "adapter=qformer"]
# Which stage sections each recipe kind must have (the others are optional).
REQUIRED = {
    "corpus": ("data", "selfgen", "train", "decode", "score", "export"),
    "aqa5m": ("train", "decode", "score", "export"),
    "eval": ("benchmarks", "decode", "score"),
    "targets": ("selfgen",),  # a stage-4-only config (egs/mini/ablation_targets/conf/label_targets.yaml)
}


def kind(path: Path) -> str:
    corpus = path.parts[-4]
    if path.stem.endswith("_targets"):
        return "targets"
    return corpus if corpus in ("aqa5m", "eval") else "corpus"


def stage_problems(cfg) -> list[str]:
    """Every problem in the stage sections of ``cfg``, as the stage CLIs would report them."""
    from toolkit.bin.export import ExportConfig
    from toolkit.bin.prepare_benchmark import read_entries
    from toolkit.config import check_arguments
    from toolkit.data.corpora.base import CORPORA as CORPUS_REGISTRY
    from toolkit.data.section import CheckSection, DataSection
    from toolkit.decode.settings import DecodeConfig
    from toolkit.score.settings import ScoreOptions
    from toolkit.selfgen.settings import SelfGenConfig
    from toolkit.train.settings import TrainSettings
    from toolkit.models.chat_engines import CHAT_ENGINES
    from toolkit.train.datamodule import AQADataModule

    c = to_container(cfg)  # resolves every interpolation: a dangling ${...} fails here
    problems = []
    if "data" in c:
        problems += check_section(c["data"], DataSection, "data")
        problems += CORPUS_REGISTRY.check(c["data"].get("corpus") or {}, "data.corpus")
        problems += check_section(c["data"].get("check") or {}, CheckSection, "data.check")
    if "selfgen" in c:
        problems += check_section(c["selfgen"], SelfGenConfig, "selfgen")
        problems += CHAT_ENGINES.check(c["selfgen"].get("backend") or {}, "selfgen.backend")
    if "train" in c:
        section_problems = check_section(c["train"], TrainSettings, "train")
        problems += section_problems
        if not section_problems:
            problems += TrainSettings(**c["train"]).problems()
            problems += check_arguments(AQADataModule, c["train"]["data"], "train.data", AQADataModule.RUNTIME)
    for key, target in (("decode", DecodeConfig), ("score", ScoreOptions), ("export", ExportConfig)):
        if key in c:
            problems += check_section(c[key], target, key)
    if "benchmarks" in c:
        problems += read_entries(c["benchmarks"])[1]
    return problems


def test_every_corpus_has_a_recipe():
    for corpus in CORPORA:
        d = ROOT / "egs" / corpus / "desta25"
        assert (d / "conf" / "desta25.yaml").is_file() and (d / "run.sh").is_file() and (d / "README.md").is_file(), corpus


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_stage_sections_validate(path):
    cfg = load_config(path)
    assert stage_problems(cfg) == []
    missing = [s for s in REQUIRED[kind(path)] if s not in cfg]
    assert not missing, f"{path}: missing sections {missing}"
    if kind(path) not in ("eval", "targets"):  # they decode a given model_dir or only write targets: no model part
        assert check_model_config(cfg) == []
    text = path.read_text()
    assert text.startswith("#"), f"{path}: a recipe config opens with a comment (purpose, data, launch)"


@pytest.mark.parametrize("corpus", CORPORA)
def test_corpus_config_shape(corpus):
    """A corpus config takes the shared base, names its corpus and a source_dir under downloads/<corpus>."""
    path = ROOT / "egs" / corpus / "desta25" / "conf" / "desta25.yaml"
    cfg = to_container(load_config(path))
    assert "recipes/conf/desta25_base.yaml" in path.read_text()
    assert cfg["data"]["corpus"]["name"] == corpus
    assert cfg["data"]["corpus"]["source_dir"] == f"downloads/{corpus}"
    train = cfg["train"]
    assert (train["accelerator"], train["precision"], train["strategy"]) == ("gpu", "bf16-mixed", "ddp")
    # the sets the later stages read are the ones stage 1 writes
    sets = {f"{cfg['data_dir']}/{s}" for s in cfg["data"]["sets"]}
    assert set(cfg["selfgen"]["data_dirs"]) <= sets and set(cfg["decode"]["eval_sets"]) <= sets
    assert train["data"]["train_jsonl"] == f"{cfg['selfgen']['output_dir']}/{cfg['train_set']}*.jsonl"  # a glob: sharded output too
    assert {Path(p).name for p in cfg["score"]["inputs"]} == {Path(p).name for p in cfg["decode"]["eval_sets"]}
    assert len(path.read_text().splitlines()) <= 30, "keep corpus configs short: shared settings go in the base"


def test_one_override_swaps_to_the_desta25_backbone():
    """The README's swap gives DeSTA2.5's model: checked on the meta device, same numbers as the aqa5m config."""
    from toolkit.models.lalm import LALM
    from toolkit.models.loading import skip_weights

    cfg = load_config(ROOT / "egs/esc50/desta25/conf/desta25.yaml", FULL_SWAP + ["selfgen.backend.name=vllm"])
    assert check_model_config(cfg) == [] and stage_problems(cfg) == []
    c = to_container(cfg)
    assert c["encoder"]["tapped_layers"] == [7, 15, 23, 31] and c["adapter"]["num_layers"] == 6
    # the vllm chat engine answers with the same llm node the model trains on
    assert c["selfgen"]["backend"] == {"name": "vllm", "llm": c["llm"], "generation": {"max_new_tokens": 256}, "device": "cuda"}
    assert c["llm"]["model_path"] == "meta-llama/Llama-3.1-8B-Instruct"
    with skip_weights():
        model = LALM.from_config(cfg)
    assert model.parameter_counts()["all"]["trainable"] == 131_540_224


def test_full_reference_config_inspect(capsys):
    """`python -m toolkit.bin.inspect` on the full-scale config reports DESIGN.md's numbers."""
    from toolkit.bin import inspect

    inspect.main(["--config", str(ROOT / "egs/aqa5m/desta25/conf/desta25.yaml")])
    report = json.loads(capsys.readouterr().out)
    assert report["trainable_params"] == 131_540_224
    assert report["total_params"] == 8_798_767_872  # ~8.8 B: 0.64 B encoder + 0.13 B adapter + 8.03 B LLM
    assert report["modules"]["llm"]["trainable"] == 0 and report["modules"]["encoder"]["trainable"] == 0


def test_full_reference_hyperparameters():
    c = to_container(load_config(ROOT / "egs/aqa5m/desta25/conf/desta25.yaml"))
    t = c["train"]
    assert (t["devices"], t["strategy"], t["precision"], t["batch_size"], t["max_epochs"]) == (8, "ddp", "bf16-mixed", 12, 5)
    assert (t["lr"], t["betas"], t["weight_decay"], t["warmup_steps"], t["grad_clip"]) == (1e-4, [0.9, 0.98], 0.01, 5000, 1.0)
    assert c["lalm"]["max_seq_len"] == 300 and c["lalm"]["transcript_max_tokens"] == 100
    assert c["encoder"]["model_path"] == "openai/whisper-large-v3" and c["encoder"]["tapped_layers"] == [7, 15, 23, 31]
    assert (c["adapter"]["num_layers"], c["adapter"]["num_queries"]) == (6, 64)
    assert c["llm"]["preset"] == "llama-3.1-8b-instruct" and c["llm"]["dtype"] == "bfloat16" and c["llm"]["frozen"]
    assert c["transcriber"]["model_path"] == "openai/whisper-large-v3"


def test_variants_change_one_component():
    conf = ROOT / "egs/aqa5m/desta25/conf"
    full = to_container(load_config(conf / "desta25.yaml"))
    expected = {"desta25_qwen2_5_0_5b": ("llm", "qwen2.5-0.5b-instruct"), "desta25_qwen2_5_7b": ("llm", "qwen2.5-7b-instruct"),
                "desta25_whisper_small": ("encoder", "whisper-small"), "desta25_whisper_medium": ("encoder", "whisper-medium"),
                "desta25_wavlm": ("encoder", "wavlm-large"), "desta25_lora": ("llm", "llama-3.1-8b-instruct")}
    for name, (slot, preset) in expected.items():
        c = to_container(load_config(conf / f"{name}.yaml"))
        assert c[slot]["preset"] == preset, name
        same = {k: v for k, v in c["train"].items() if k != "output_dir"} == {k: v for k, v in full["train"].items() if k != "output_dir"}
        assert same, f"{name}: a variant changes one component, not the training recipe"
        assert c["tag"] == name, f"{name}: its tag (and exp dir) is named after the file, as recipes/desta25.sh names it"
        others = {"encoder", "adapter", "llm", "transcriber"} - {slot}
        assert all(c[o] == full[o] for o in others), name
    wavlm = to_container(load_config(conf / "desta25_wavlm.yaml"))["encoder"]
    assert wavlm["name"] == "wavlm" and "max_chunks" not in wavlm  # the reset include dropped the Whisper keys
    lora = to_container(load_config(conf / "desta25_lora.yaml"))["llm"]["lora"]
    assert (lora["r"], lora["alpha"], lora["dropout"]) == (16, 16, 0.1)


def test_stage_checks_catch_typos():
    """The checks above can fail: a misspelled key in any stage section is reported with its place."""
    path = ROOT / "egs/esc50/desta25/conf/desta25.yaml"
    bad = ["train.warmup_step=10", "data.corpus.source=x", "selfgen.prompt_per_clip=2", "decode.batchsize=2", "score.judges=1"]
    problems = "\n".join(stage_problems(load_config(path, bad)))
    for where in ("train.warmup_step", "data.corpus.source", "selfgen.prompt_per_clip", "decode.batchsize", "score.judges"):
        assert where in problems
    assert "train.warmup_steps=5000 >= train.max_steps=100" in "\n".join(
        stage_problems(load_config(path, ["train.max_steps=100", "train.warmup_steps=5000"])))


FULL_FAKES = {"audiocaps", "commonvoice", "esc50", "gtzan", "nsynth", "speech_commands", "vocalsound", "voxceleb1"}


@pytest.mark.parametrize("corpus", CORPORA)
def test_stage1_reads_the_documented_layout(corpus, tmp_path, monkeypatch):
    """Stage 1 with the recipe config on the data preparers' fake tree placed at downloads/<corpus>.

    The fakes are tiny, so hashed splits of some corpora come out empty: those run with data.sets=null.
    """
    from test_data_corpora import FAKES  # the corpus tests' fake trees (real layouts, a few files)

    from toolkit.bin import check_data, prepare_data, seed_descriptions

    monkeypatch.chdir(tmp_path)
    FAKES[corpus](tmp_path / "downloads" / corpus)
    config = str(ROOT / "egs" / corpus / "desta25" / "conf" / "desta25.yaml")
    overrides = [] if corpus in FULL_FAKES else ["data.sets=null"] + (["data.corpus.subsets=null"] if corpus == "librispeech" else [])
    assert prepare_data.main(["--config", config, *overrides]) == 0
    written = sorted(p.parent.name for p in (tmp_path / "data").glob("*/.done"))
    assert written and (corpus not in FULL_FAKES or written == ["dev", "test", "train"])
    if corpus == "esc50":  # the base's data section carries on through stages 2 and 3
        assert check_data.main(["--config", config]) == 0
        assert seed_descriptions.main(["--config", config]) == 0
        assert (tmp_path / "data" / "train" / "seed_descriptions.jsonl").stat().st_size > 0
