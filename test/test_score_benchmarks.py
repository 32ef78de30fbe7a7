"""Benchmark loaders on small fixtures in each benchmark's real on-disk format."""

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from toolkit.score.benchmarks import BenchmarkError, build_benchmark


def wav_bytes(seconds=0.1, sr=16000):
    buf = io.BytesIO()
    sf.write(buf, np.zeros(int(seconds * sr), dtype="float32"), sr, format="WAV")
    return buf.getvalue()


def write_wav(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav_bytes())


def read_manifest(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


CONTRACT = ["id", "dataset", "audio", "text", "prompt", "reference", "metric", "choices"]


def test_mmau(tmp_path):
    items = [
        {"id": "3fe6", "audio_id": "./test-mini-audios/3fe6.wav", "question": "Identify the source.",
         "choices": ["Man", "Woman", "Child", "Robot"], "answer": "Man", "dataset": "AudioSet", "task": "sound",
         "split": "test-mini", "category": "Reasoning", "sub-category": "Acoustic Source Inference", "difficulty": "medium"},
        {"id": "72fb", "audio_id": "./test-mini-audios/72fb.wav", "question": "Which genre?",
         "choices": ["Jazz", "Rock"], "answer": "Rock", "dataset": "MusicCaps", "task": "music", "difficulty": "easy"},
    ]
    (tmp_path / "mmau-test-mini.json").write_text(json.dumps(items))
    for it in items:
        write_wav(tmp_path / it["audio_id"][2:])
    out = tmp_path / "manifest.jsonl"
    n = build_benchmark({"name": "mmau", "json_path": str(tmp_path / "mmau-test-mini.json"), "audio_root": str(tmp_path)}).write_manifest(out)
    rows = read_manifest(out)
    assert n == 2 and list(rows[0])[:8] == CONTRACT
    assert rows[0]["metric"] == "mmau" and rows[0]["reference"] == "Man" and rows[0]["choices"][1] == "Woman"
    assert rows[0]["prompt"] == 'Identify the source. Choose from the following options: "Man", "Woman", "Child" or "Robot"'
    assert rows[1]["prompt"].endswith('"Jazz" or "Rock"')
    assert rows[0]["task"] == "sound" and rows[0]["sub_category"] == "Acoustic Source Inference"
    (tmp_path / "test-mini-audios" / "72fb.wav").unlink()
    with pytest.raises(BenchmarkError, match="1 audio files missing"):
        build_benchmark({"name": "mmau", "json_path": str(tmp_path / "mmau-test-mini.json"), "audio_root": str(tmp_path)}).write_manifest(out)


def test_sakura(tmp_path):
    meta = {"data/Animal/audio/dog28.wav": {
        "attribute_label": "dog",
        "single_instruction": "Which animal is it? (a) dog (b) crow (c) cow (d) rooster", "single_answer": "(a) dog",
        "multi_instruction": "What feature does it have? (a) Feathers (b) Scales (c) Claws (d) Horns", "multi_answer": "(c) Claws"}}
    (tmp_path / "Animal").mkdir()
    (tmp_path / "Animal" / "metadata.json").write_text(json.dumps(meta))
    write_wav(tmp_path / "Animal" / "audio" / "dog28.wav")
    out = tmp_path / "m.jsonl"
    build_benchmark({"name": "sakura", "root": str(tmp_path), "tracks": ["Animal"]}).write_manifest(out)
    rows = read_manifest(out)
    assert [r["dataset"] for r in rows] == ["sakura_animal_single", "sakura_animal_multi"]
    assert rows[0]["metric"] == "judge" and rows[0]["judge_prompt"] == "sakura" and rows[1]["reference"] == "(c) Claws"
    build_benchmark({"name": "sakura", "root": str(tmp_path), "tracks": ["Animal"], "metric": "mc_accuracy"}).write_manifest(out)
    rows = read_manifest(out)
    assert rows[1]["choices"] == ["Feathers", "Scales", "Claws", "Horns"]
    with pytest.raises(BenchmarkError, match="metadata.json"):
        build_benchmark({"name": "sakura", "root": str(tmp_path), "tracks": ["Gender"]}).write_manifest(out)


def test_speech_ifeval(tmp_path):
    closed = [{"id": 0, "audio_filepath": "Automatic_speech_recognition/1995.flac", "textual_audio": "[..]",
               "instruction": "Convert the speech into text.\nYour entire response should be in all capital letters.",
               "dataset": "Automatic_speech_recognition", "metric": "wer",
               "instruction_id_list": ["change_case:english_capital"], "kwargs": [{}], "label": "HE SAT DOWN"}]
    cot = [{"audio_filepath": "MMAU/ff30.wav", "textual_audio": "[..]", "instruction": "Count the words.\nThink step by step.",
            "dataset": "MMAU", "metric": "cot"}]
    (tmp_path / "eval_data").mkdir()
    (tmp_path / "eval_data" / "closed_ended_questions.jsonl").write_text("\n".join(json.dumps(r) for r in closed) + "\n")
    (tmp_path / "eval_data" / "chain-of-thought.jsonl").write_text("\n".join(json.dumps(r) for r in cot) + "\n")
    write_wav(tmp_path / "audios" / "Automatic_speech_recognition" / "1995.flac")
    write_wav(tmp_path / "audios" / "MMAU" / "ff30.wav")
    out = tmp_path / "m.jsonl"
    build_benchmark({"name": "speech_ifeval", "root": str(tmp_path)}).write_manifest(out)
    row = read_manifest(out)[0]
    assert row["metric"] == "ifeval" and row["instruction_id_list"] == ["change_case:english_capital"]
    assert row["task_metric"] == "wer" and row["reference"] == "HE SAT DOWN"
    build_benchmark({"name": "speech_ifeval", "root": str(tmp_path), "subset": "chain-of-thought"}).write_manifest(out)
    row = read_manifest(out)[0]
    assert row["metric"] == "speech_ifeval_llm" and row["task_metric"] == "cot"
    assert row["id"] == "sifeval_chain-of-thought_0"
    # the task-level accuracy with constraints (Table 4): the same closed-ended rows, judged
    build_benchmark({"name": "speech_ifeval", "root": str(tmp_path), "step": "llm"}).write_manifest(out)
    row = read_manifest(out)[0]
    assert row["metric"] == "speech_ifeval_llm" and row["task_metric"] == "wer" and "instruction_id_list" not in row
    with pytest.raises(BenchmarkError, match="needs subset"):
        build_benchmark({"name": "speech_ifeval", "root": str(tmp_path), "subset": "chain-of-thought",
                         "step": "ifeval"})


def audio_struct(n):
    return pa.array([{"bytes": wav_bytes(), "path": f"clip{i}.wav"} for i in range(n)],
                    type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]))


def test_voicebench_parquet(tmp_path):
    root = tmp_path / "voicebench"
    (root / "mmsu").mkdir(parents=True)
    pq.write_table(pa.table({"audio": audio_struct(2), "prompt": ["Q1 A. x B. y", "Q2"], "reference": ["A", "C"]}),
                   root / "mmsu" / "test-00000-of-00001.parquet")
    (root / "ifeval").mkdir()
    pq.write_table(pa.table({"audio": audio_struct(1), "prompt": ["Write in lowercase."], "key": [1000],
                             "instruction_id_list": [["change_case:english_lowercase"]],
                             "kwargs": [[{"num_words": None, "relation": None}]]}),
                   root / "ifeval" / "test-00000-of-00001.parquet")
    out = tmp_path / "m.jsonl"
    build_benchmark({"name": "voicebench", "root": str(root), "subset": "mmsu", "audio_dir": str(tmp_path / "wav")}).write_manifest(out)
    rows = read_manifest(out)
    assert [r["metric"] for r in rows] == ["voicebench_mcq"] * 2 and rows[1]["reference"] == "C"
    assert sf.info(rows[0]["audio"]).samplerate == 16000
    build_benchmark({"name": "voicebench", "root": str(root), "subset": "ifeval", "audio_dir": str(tmp_path / "wav")}).write_manifest(out)
    row = read_manifest(out)[0]
    assert row["metric"] == "ifeval" and row["ifeval_variant"] == "ifeval" and row["source_key"] == 1000
    assert row["kwargs"] == [{"num_words": None, "relation": None}]
    (root / "bbh").mkdir()
    pq.write_table(pa.table({"audio": audio_struct(1), "prompt": ["Is it plausible?"], "reference": ["Yes"],
                             "id": ["sports_understanding_7"]}), root / "bbh" / "test-00000-of-00001.parquet")
    bbh = {"name": "voicebench", "root": str(root), "subset": "bbh", "audio_dir": str(tmp_path / "wav")}
    build_benchmark(bbh).write_manifest(out)
    row = read_manifest(out)[0]
    assert row["metric"] == "voicebench_bbh" and row["source_id"] == "sports_understanding_7"  # the task is in the id
    with pytest.raises(BenchmarkError, match="not one of"):
        build_benchmark({"name": "voicebench", "root": str(root), "subset": "nope", "audio_dir": str(tmp_path)})


def ds_table():
    return pa.table({"file": ["a.wav", "b.wav"], "audio": audio_struct(2),
                     "instruction": ["Is there speech? Answer yes or no.", "Is there speech?"], "label": ["yes", "no"]})


def test_dynamic_superb_parquet_and_save_to_disk(tmp_path):
    task = tmp_path / "SpeechDetection_LJSpeech"
    (task / "data").mkdir(parents=True)
    pq.write_table(ds_table(), task / "data" / "test-00000-of-00001.parquet")
    out = tmp_path / "m.jsonl"
    build_benchmark({"name": "dynamic_superb", "root": str(task), "audio_dir": str(tmp_path / "wav")}).write_manifest(out)
    rows = read_manifest(out)
    assert rows[0]["id"] == "SpeechDetection_LJSpeech_00000" and rows[0]["metric"] == "label_accuracy"
    assert rows[1]["reference"] == "no" and rows[0]["file"] == "a.wav"

    # Dataset.save_to_disk layout of a DatasetDict: dataset_dict.json + test/{state.json, data-*.arrow}
    saved = tmp_path / "saved"
    (saved / "test").mkdir(parents=True)
    (saved / "dataset_dict.json").write_text(json.dumps({"splits": ["test"]}))
    with pa.OSFile(str(saved / "test" / "data-00000-of-00001.arrow"), "wb") as sink:
        with pa.ipc.new_stream(sink, ds_table().schema) as writer:
            writer.write_table(ds_table())
    (saved / "test" / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}], "_split": "test"}))
    build_benchmark({"name": "dynamic_superb", "root": str(saved), "task": "SpeechDetection", "audio_dir": str(tmp_path / "wav2"),
                     "metric": "judge"}).write_manifest(out)
    rows = read_manifest(out)
    assert len(rows) == 2 and rows[0]["judge_prompt"] == "voicebench_qa" and rows[0]["dataset"] == "dynamic_superb_SpeechDetection"
