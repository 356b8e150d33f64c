"""`train-tts` and `synthesize` in-process on the sample corpus (tiny codec, tiny model): exports, both
synthesis modes, manifest mode, and every bad input as one line naming the value."""

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from data_prep.sample_corpus import SAMPLE_ROOT
from tokenizer import AutoCodecConfig, AutoCodecTokenizer
from tts.cli import synth_main, train_main
from tts.generation import GenerationConfig
from tts.synthesis import Request, Synthesizer

from test_tts_train import HAS_ESPEAK, tokenize_sample

pytestmark = pytest.mark.skipif(not HAS_ESPEAK, reason="phoneme ids need espeak-ng")

UTT = SAMPLE_ROOT / "sample" / "9000" / "1"
MODEL_FLAGS = ["--overrides.hidden_size=32", "--overrides.num_hidden_layers=1", "--overrides.num_attention_heads=2",
               "--overrides.intermediate_size=64", "--data.max_tokens=1200", "--log_every=2", "--eval_every=4",
               "--save_every=4", "--sample_every=4", "--samples.num=1", "--data.valid_utterances=2"]


def wav(n):
    return UTT / f"9000_1_{n:06d}_000000.wav"


def text(n):
    return (UTT / f"9000_1_{n:06d}_000000.normalized.txt").read_text().strip()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ttscli")
    codec_dir, tokens = tokenize_sample(root)
    out = root / "run"
    assert train_main(["valle", "--data", str(tokens), "--preset", "tiny", "--out", str(out), "--steps", "4",
                       *MODEL_FLAGS]) == 0
    return {"root": root, "codec": codec_dir, "tokens": tokens, "run": out, "export": out / "final"}


def synth(capsys, *argv):
    rc = synth_main([*argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def one_error_line(err):
    lines = [line for line in err.strip().splitlines() if line.startswith("synthesize: error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_train_tts_writes_export_logs_and_samples(run):
    export = run["export"]
    config = json.loads((export / "config.json").read_text())
    assert config["model_type"] == "valle" and config["num_quantizers"] == 4 and config["codebook_size"] == 64
    manifest = json.loads((run["tokens"] / "manifest.json").read_text())
    for key in ("name", "config_hash", "weights_digest"):
        assert config["codec"][key] == manifest["codec"][key]
    assert config["phoneme_tokens"] == json.loads((run["tokens"] / "phonemes.json").read_text())["tokens"]
    assert (export / "model.safetensors").is_file() and (export / "phonemes.json").is_file()
    rows = [json.loads(x) for x in (run["run"] / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [2, 4] and any("valid/nar/top10_q4" in r for r in rows)
    assert list((run["run"] / "tts").rglob("events.out.tfevents.*"))  # TensorBoard
    assert list((run["run"] / "samples" / "step-4").glob("*.wav"))


def test_synthesize_cross_sentence_and_continuation(run, tmp_path, capsys):
    out = tmp_path / "o.wav"
    rc, stdout, _ = synth(capsys, "--model", str(run["export"]), "--text", text(3), "--prompt-audio", str(wav(1)),
                          "--prompt-text", text(1), "--out", str(out), "--greedy", "--max-seconds-per-phoneme", "0.05")
    assert rc == 0 and "o.wav" in stdout
    audio, sr = sf.read(out)
    assert sr == 16000 and 0 < len(audio)
    synthesizer = Synthesizer.from_pretrained(run["export"])
    gen = GenerationConfig(do_sample=False, max_seconds_per_phoneme=0.05)
    # cross-sentence output is the new speech only: exactly the generated frames, no prompt frames
    req = Request(text(3), wav(1), text(1))
    prepared = synthesizer.prepare(req)
    codes = synthesizer.model.generate([prepared[0]], [prepared[1]], [prepared[2]], gen)[0]
    assert len(synthesizer.synthesize([req], gen)[0]) == codes.shape[-1] * 320 == len(audio)
    record = json.loads((tmp_path / "o.wav.json").read_text())  # what evaluate-tts needs, beside the output
    assert record["mode"] == "cross-sentence" and record["prompt_samples"] == 0 and record["num_samples"] == len(audio)
    assert record["prompt_input_samples"] == prepared.prompt_input_samples == len(sf.read(wav(1))[0])  # all of it
    # continuation: prompt (first 1.5 s of the utterance) followed by the continuation
    cont = tmp_path / "c.wav"
    rc, _, _ = synth(capsys, "--model", str(run["export"]), "--mode", "continuation", "--text", text(2),
                     "--prompt-audio", str(wav(2)), "--prompt-seconds", "1.5", "--out", str(cont), "--greedy",
                     "--max-seconds-per-phoneme", "0.05")
    assert rc == 0
    assert len(sf.read(cont)[0]) > 1.5 * 16000 - 320
    record = json.loads((tmp_path / "c.wav.json").read_text())
    assert record["mode"] == "continuation" and record["prompt_input_samples"] == 1.5 * 16000
    assert record["prompt_samples"] == 75 * 320 and record["prompt_seconds"] == 1.5  # 75 prompt frames at 50 Hz
    # batched synthesis of different lengths equals one at a time (greedy)
    reqs = [Request(text(n), wav(1), text(1)) for n in (3, 12)]
    together = synthesizer.synthesize(reqs, gen)
    for r, a in zip(reqs, together):
        assert np.allclose(synthesizer.synthesize([r], gen)[0], a, atol=1e-5)


def test_continuation_prompt_is_the_utterances_own_first_frames(run):
    """Continuation: the prompt codes are the first frames of the whole recording's codes (what the corpus
    tokenizer made), not the codes of a cropped clip, whose last frames are encoded against padding."""
    from tokenizer.audio import load_mono

    synthesizer = Synthesizer.from_pretrained(run["export"])
    prepared = synthesizer.prepare(Request(text(2), wav(2), mode="continuation"), prompt_seconds=1.01)
    audio, _ = load_mono(str(wav(2)), 16000)
    whole = synthesizer.codec(audio, sampling_rate=16000, num_quantizers=synthesizer.num_quantizers)[0]
    frames = -(-16160 // 320)  # 1.01 s of samples, in whole frames
    assert prepared.codes.shape[-1] == frames and torch.equal(prepared.codes, whole[:, :frames])
    assert prepared.prompt_input_samples == frames * 320


def test_synthesize_never_writes_outside_out_dir_nor_over_its_own_inputs(run, tmp_path, capsys):
    """Manifest ids are file names: `../x`, `sub/x` and dot names are skipped, not written outside --out-dir
    (or crashed on after generation); an output that would be one of the manifest's audio files is skipped;
    fields of the wrong type skip their line; a manifest that is not UTF-8 is one line."""
    import shutil

    refs = tmp_path / "refs"
    refs.mkdir()
    victim = tmp_path / "victim.wav"
    shutil.copy(wav(2), victim)
    shutil.copy(wav(1), refs / "p1.wav")
    before = victim.read_bytes(), (refs / "p1.wav").read_bytes()
    base = {"text": text(3), "prompt_audio": "p1.wav", "prompt_text": text(1)}
    lines = [{"id": "../victim", **base}, {"id": "sub/x", **base}, {"id": "..", **base}, {"id": "p1", **base},
             {"id": "num", **base, "prompt_text": 123}, {"id": "good", **base}]
    manifest = refs / "refs.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    rc, stdout, err = synth(capsys, "--model", str(run["export"]), "--manifest", str(manifest), "--out-dir",
                            str(refs), "--max-seconds-per-phoneme", "0.03")
    assert rc == 0 and "1 sentences" in stdout
    assert (victim.read_bytes(), (refs / "p1.wav").read_bytes()) == before
    assert sorted(p.name for p in refs.glob("*.wav")) == ["good.wav", "p1.wav"] and not (refs / "sub").exists()
    skipped = [json.loads(x) for x in (refs / "skipped.jsonl").read_text().splitlines()]
    assert [b["id"] for b in skipped] == ["../victim", "sub/x", "..", "p1", "num"]
    assert "not a plain file name" in skipped[0]["reason"] and "not overwritten" in skipped[3]["reason"]
    assert "prompt_text must be a string" in skipped[4]["reason"]
    manifest.write_bytes(b'{"id": "a", "text": "caf\xe9"}\n')
    rc, _, err = synth(capsys, "--model", str(run["export"]), "--manifest", str(manifest), "--out-dir", str(refs))
    assert rc != 0 and "not UTF-8" in err and len(err.strip().splitlines()) == 1


def test_synthesize_manifest_skips_bad_lines(run, tmp_path, capsys):
    bad_audio = tmp_path / "bad.wav"
    bad_audio.write_bytes(b"RIFF\x00\x00not audio at all")
    lines = [
        {"id": "good1", "text": text(3), "prompt_audio": str(wav(1)), "prompt_text": text(1)},
        "this is not json",
        {"id": "noprompttext", "text": text(3), "prompt_audio": str(wav(1))},
        {"id": "missingaudio", "text": text(3), "prompt_audio": "nowhere.wav", "prompt_text": text(1)},
        {"id": "unreadable", "text": text(3), "prompt_audio": str(bad_audio), "prompt_text": text(1)},
        {"id": "unknownphone", "text": "measure", "prompt_audio": str(wav(1)), "prompt_text": text(1)},
        {"id": "nothing", "text": "!!! ...", "prompt_audio": str(wav(1)), "prompt_text": text(1)},
        {"id": "good2", "text": text(12), "prompt_audio": str(wav(2)), "prompt_text": text(2)},
    ]
    manifest = tmp_path / "refs.jsonl"
    manifest.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    out = tmp_path / "gen"
    rc, stdout, err = synth(capsys, "--model", str(run["export"]), "--manifest", str(manifest), "--out-dir", str(out),
                            "--greedy", "--max-seconds-per-phoneme", "0.05")
    assert rc == 0 and "2 sentences" in stdout and "6 lines skipped" in stdout
    assert sorted(p.name for p in out.glob("*.wav")) == ["good1.wav", "good2.wav"]
    assert sorted(p.name for p in out.glob("*.json")) == ["good1.wav.json", "good2.wav.json"]
    skipped = {r["line"]: r["reason"] for r in map(json.loads, (out / "skipped.jsonl").read_text().splitlines())}
    assert "not a JSON object" in skipped[2] and "prompt_text" in skipped[3]
    assert "not found" in skipped[4] and "nowhere.wav" in skipped[4]
    assert "cannot read audio" in skipped[5] and "bad.wav" in skipped[5]
    assert "'ʒ'" in skipped[6] and "phonemizes to nothing" in skipped[7]
    assert err.count("skipped") == 6


def test_bad_inputs_are_one_line_errors(run, tmp_path, capsys):
    export = str(run["export"])
    base = ["--prompt-audio", str(wav(1)), "--prompt-text", text(1), "--out", str(tmp_path / "x.wav")]
    cases = [
        (["--text", ""] + base, "empty text"),
        (["--text", "!!! ..."] + base, "phonemizes to nothing"),
        (["--text", "a measure"] + base, "phoneme 'ʒ'"),
        (["--text", "hello", "--prompt-audio", str(tmp_path / "none.wav"), "--prompt-text", "x", "--out", "o.wav"],
         "none.wav"),
        (["--text", "hello", "--prompt-audio", str(wav(1)), "--out", str(tmp_path / "x.wav")], "prompt's transcript"),
    ]
    for argv, needle in cases:
        rc, _, err = synth(capsys, "--model", export, *argv)
        assert rc == 2 and needle in one_error_line(err), (argv, err)
    # a prompt longer than the model's context (4096 frames at 50 Hz = 81.9 s)
    long = tmp_path / "long.wav"
    sf.write(long, np.zeros(int(83 * 16000), dtype=np.float32), 16000)
    rc, _, err = synth(capsys, "--model", export, "--text", "hello", "--prompt-audio", str(long), "--prompt-text",
                       "hello", "--out", str(tmp_path / "x.wav"))
    assert rc == 2 and "long.wav is 83.0 s, longer than the model's context" in one_error_line(err)
    # an export without a codec record
    no_codec = tmp_path / "nocodec"
    shutil.copytree(export, no_codec)
    config = json.loads((no_codec / "config.json").read_text())
    config["codec"] = None
    (no_codec / "config.json").write_text(json.dumps(config))
    rc, _, err = synth(capsys, "--model", str(no_codec), "--text", "hello", *base)
    assert rc == 2 and "records no codec" in one_error_line(err)
    # another codec (same architecture, other weights): refused
    other = AutoCodecTokenizer.from_config(
        AutoCodecConfig.for_model("language-codec", preset="tiny", encoder_strides=[2, 4, 5, 8], num_quantizers=4,
                                  n_fft=640), seed=1).save_pretrained(tmp_path / "othercodec")
    rc, _, err = synth(capsys, "--model", export, "--codec", str(other), "--text", "hello", *base)
    assert rc == 2 and "codec mismatch" in one_error_line(err) and "tokens_digest" in err
    rc, _, err = synth(capsys, "--model", str(tmp_path), "--text", "hello", *base)
    assert rc == 2 and "not a TTS model export" in one_error_line(err)


def test_train_tts_refuses_shards_without_phonemes(run, tmp_path, capsys):
    copy = tmp_path / "nophon"
    shutil.copytree(run["tokens"], copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["has_phonemes"] = False
    (copy / "manifest.json").write_text(json.dumps(manifest))
    rc = train_main(["valle", "--data", str(copy), "--out", str(tmp_path / "r"), "--steps", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and f"train-tts: error: {copy} has no phoneme ids" in err
    rc = train_main(["valle", "--data", str(run["tokens"]), "--out", str(tmp_path / "r"), "--preset", "huge"])
    assert rc == 2 and "unknown preset 'huge'" in capsys.readouterr().err
    rc = train_main(["valle", "--data", str(run["tokens"]), "--out", str(tmp_path / "r"), "--optim.lr=fast"])
    assert rc == 2 and "optim.lr='fast'" in capsys.readouterr().err


def test_stage_ar_then_nar_from_its_export(run, tmp_path):
    ar_run, nar_run = tmp_path / "ar", tmp_path / "nar"
    flags = [f for f in MODEL_FLAGS if not f.startswith("--sample_every")] + ["--sample_every=0"]
    assert train_main(["valle", "--data", str(run["tokens"]), "--out", str(ar_run), "--steps", "2", "--stage", "ar",
                       *flags]) == 0
    assert train_main(["valle", "--data", str(run["tokens"]), "--out", str(nar_run), "--steps", "2", "--stage", "nar",
                       f"--init_from={ar_run / 'final'}", *flags]) == 0
    ar_rows = [json.loads(x) for x in (ar_run / "log.jsonl").read_text().splitlines() if '"loss"' in x]
    nar_rows = [json.loads(x) for x in (nar_run / "log.jsonl").read_text().splitlines() if '"loss"' in x]
    assert "ar/loss" in ar_rows[-1] and "nar/loss" not in ar_rows[-1]
    assert "nar/loss" in nar_rows[-1] and "ar/loss" not in nar_rows[-1]
    from safetensors.torch import load_file

    a, b = load_file(ar_run / "final" / "model.safetensors"), load_file(nar_run / "final" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("ar."))  # the AR is left as trained
    assert not all(torch.equal(a[k], b[k]) for k in a if k.startswith("nar."))


def test_manifest_continuation_uses_the_reference_audio(run, tmp_path, capsys, monkeypatch):
    """...and records where the prompt part of each output ends, which evaluate-tts then cuts off."""
    manifest = tmp_path / "refs.jsonl"
    manifest.write_text(json.dumps({"id": "c5", "text": text(5), "reference_audio": str(wav(5))}) + "\n"
                        + json.dumps({"id": "noaudio", "text": text(5)}) + "\n")
    rc, stdout, err = synth(capsys, "--model", str(run["export"]), "--manifest", str(manifest), "--out-dir",
                            str(tmp_path / "gen"), "--mode", "continuation", "--prompt-seconds", "1.01",
                            "--greedy", "--max-seconds-per-phoneme", "0.03")
    assert rc == 0 and "1 sentences" in stdout and "prompt_audio or reference_audio" in err
    audio = sf.read(tmp_path / "gen" / "c5.wav")[0]
    assert len(audio) > 16000 - 320
    record = json.loads((tmp_path / "gen" / "c5.wav.json").read_text())
    # 1.01 s is 16160 samples, not whole frames: the prompt is the utterance's first 51 frames (16320 samples)
    prompt_frames = Synthesizer.from_pretrained(run["export"]).prepare(
        Request(text(5), wav(5), mode="continuation"), 1.01).codes.shape[-1]
    assert record == {"format_version": 1, "id": "c5", "mode": "continuation", "sampling_rate": 16000,
                      "num_samples": len(audio), "prompt_samples": prompt_frames * 320,
                      "prompt_seconds": prompt_frames / 50, "prompt_audio": str(wav(5).resolve()),
                      "prompt_input_samples": prompt_frames * 320, "prompt_input_seconds": prompt_frames * 320 / 16000,
                      "text": text(5), "prompt_text": None, "audio_sha256": record["audio_sha256"], "at_context": False,
                      "model": {"path": str(run["export"].resolve()), "digest": record["model"]["digest"]}}
    assert prompt_frames == 51
    from evaluation import evaluate_tts
    from evaluation.speaker import SpeakerEncoder

    class LengthEncoder(SpeakerEncoder):
        name = "length"

        def embed(self, x, sampling_rate):
            return np.array([1.0, len(x) / sampling_rate])

    monkeypatch.setattr(evaluate_tts, "get_speaker_encoder", lambda spec: LengthEncoder())
    out = tmp_path / "report"
    assert evaluate_tts.main(["--generated", str(tmp_path / "gen"), "--reference", str(manifest), "--out", str(out),
                              "--metrics", "spk_sim", "--num-examples", "0"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "continuation" and summary["prompt_seconds"]["mean"] == 1.02
    assert summary["scored_seconds"] == (len(audio) - prompt_frames * 320) / 16000  # the generated part only


def test_a_line_skipped_in_a_rerun_leaves_no_earlier_output(run, tmp_path, capsys):
    """F3 (tts-adversarial-3): re-running into the same --out-dir, a line that is skipped now must not leave
    the earlier run's `<id>.wav` (which evaluate-tts would score as this run's): synthesize's own outputs (with
    a record) are removed, a WAV it did not write is left, with a warning. Every record names the export (path
    and digest), the text said and the digest of the WAV's bytes."""
    from evaluation.evaluate_tts import file_digest, read_synthesis_record
    from tts.synthesis import export_digest

    out = tmp_path / "gen"
    line = {"text": text(3), "prompt_audio": str(wav(1)), "prompt_text": text(1)}
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"id": i, **line}) + "\n" for i in ("a", "b")))
    flags = ["--model", str(run["export"]), "--manifest", str(manifest), "--out-dir", str(out),
             "--max-seconds-per-phoneme", "0.03"]
    assert synth(capsys, *flags)[0] == 0
    record = json.loads((out / "b.wav.json").read_text())
    assert record["model"] == {"path": str(run["export"].resolve()), "digest": export_digest(run["export"])}
    assert record["text"] == text(3) and record["audio_sha256"] == file_digest(out / "b.wav")
    assert read_synthesis_record(out / "b.wav").model_digest == export_digest(run["export"])
    sf.write(out / "c.wav", np.zeros(800), 16000)  # not written by synthesize
    shutil.copy(out / "b.wav.json", out / "c.wav.json")  # nor is it the WAV this record describes
    bad = {**line, "prompt_audio": str(tmp_path / "moved.wav")}
    manifest.write_text("".join(json.dumps(x) + "\n" for x in ({"id": "a", **line}, {"id": "b", **bad},
                                                                {"id": "c", **bad})))
    rc, stdout, err = synth(capsys, *flags)
    assert rc == 0 and "1 sentences" in stdout and "2 lines skipped" in stdout
    assert not (out / "b.wav").exists() and not (out / "b.wav.json").exists() and "removed" in err
    assert (out / "c.wav").is_file() and "c.wav is not from this run" in err


def test_more_bad_inputs_are_one_line_errors_before_synthesis(run, tmp_path, capsys):
    """F11, F13 (tts-adversarial-3): --prompt-seconds 0 / -1 / nan, --out that is not a .wav name or is a
    folder, --out-dir that is a file, --device cuda without CUDA, NaN sampling settings: one line each, and
    nothing synthesized or written."""
    export = str(run["export"])
    base = ["--model", export, "--text", text(3), "--prompt-audio", str(wav(1)), "--prompt-text", text(1)]
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder.wav").mkdir()
    cases = [
        (["--mode", "continuation", "--prompt-seconds", "0", "--out", str(tmp_path / "o.wav")], "--prompt-seconds"),
        (["--mode", "continuation", "--prompt-seconds", "-1", "--out", str(tmp_path / "o.wav")], "got -1.0"),
        (["--mode", "continuation", "--prompt-seconds", "nan", "--out", str(tmp_path / "o.wav")], "got nan"),
        (["--out", str(tmp_path / "x.txt")], "give a .wav file name"),
        (["--out", str(tmp_path / "noext")], "give a .wav file name"),
        (["--out", str(tmp_path / "folder.wav")], "is a folder"),
        (["--out", str(tmp_path / "file" / "o.wav")], "it is a file"),
        (["--device", "cuda", "--out", str(tmp_path / "o.wav")], "--device 'cuda'"),
        (["--max-seconds-per-phoneme", "nan", "--out", str(tmp_path / "o.wav")], "max_seconds_per_phoneme=nan"),
        (["--sample", "--temperature", "nan", "--out", str(tmp_path / "o.wav")], "temperature=nan"),
    ]
    import torch

    for argv, needle in cases:
        if "cuda" in argv and torch.cuda.is_available():
            continue
        rc, _, err = synth(capsys, *base, *argv)
        assert rc == 2 and needle in one_error_line(err), (argv, err)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"id": "a", "text": text(3), "prompt_audio": str(wav(1)),
                                    "prompt_text": text(1)}) + "\n")
    rc, _, err = synth(capsys, "--model", export, "--manifest", str(manifest), "--out-dir", str(tmp_path / "file"))
    assert rc == 2 and "is a file, not a folder" in one_error_line(err)
    # neither the prompt (single mode) nor the manifest (named skipped.jsonl in --out-dir) is written over
    shutil.copy(wav(1), tmp_path / "p.wav")
    rc, _, err = synth(capsys, "--model", export, "--text", text(3), "--prompt-audio", str(tmp_path / "p.wav"),
                       "--prompt-text", text(1), "--out", str(tmp_path / "p.wav"))
    assert rc == 2 and "is the prompt audio: not overwritten" in one_error_line(err)
    assert (tmp_path / "p.wav").read_bytes() == wav(1).read_bytes()
    manifest.rename(tmp_path / "skipped.jsonl")
    rc, _, err = synth(capsys, "--model", export, "--manifest", str(tmp_path / "skipped.jsonl"), "--out-dir",
                       str(tmp_path))
    assert rc == 2 and "is the skipped.jsonl this run writes" in one_error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder.wav", "p.wav", "skipped.jsonl"]


def test_text_longer_than_the_context_is_refused_naming_the_id(run, tmp_path, capsys):
    """F8: a text that needs more frames than the model's context leaves after the prompt (even at 20
    phonemes per second) is refused, not cut or squeezed: one line alone, a skipped line naming its id in
    manifest mode, the other lines synthesized."""
    from tts.errors import TTSError

    synthesizer = Synthesizer.from_pretrained(run["export"])
    synthesizer.model.config.max_frames = 500  # a short context (5.5 s prompt + 4.5 s), instead of 1,700 phonemes
    req = Request(" ".join([text(3)] * 4), wav(1), text(1))
    with pytest.raises(TTSError, match=r"text of \d+ phonemes needs at least \d+ frames .* split it"):
        synthesizer.prepare(req)
    synthesizer.prepare(Request(text(3), wav(1), text(1)))  # a sentence fits
    # a text that fits at 20 phonemes/s but whose generation fills the context: said in the log and the record
    synthesizer.model.config.max_frames = 275 + 40  # 40 frames after the 5.5 s prompt
    short = Request("Hello there.", wav(1), text(1), id="hello")
    gen = GenerationConfig(do_sample=False, max_seconds_per_phoneme=2.0)
    (output,) = synthesizer.synthesize_outputs([short], [synthesizer.prepare(short)], gen)
    assert output.at_context and output.record(short)["at_context"] is True
    long_text = " ".join([text(3)] * 60)  # ~2,000 phonemes: more than 4096 frames at 2.5 frames per phoneme
    lines = [{"id": "long", "text": long_text, "prompt_audio": str(wav(1)), "prompt_text": text(1)},
             {"id": "short", "text": text(3), "prompt_audio": str(wav(1)), "prompt_text": text(1)}]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    rc, stdout, err = synth(capsys, "--model", str(run["export"]), "--manifest", str(manifest), "--out-dir",
                            str(tmp_path / "gen"), "--max-seconds-per-phoneme", "0.03")
    assert rc == 0 and "1 sentences" in stdout
    (skipped,) = [json.loads(x) for x in (tmp_path / "gen" / "skipped.jsonl").read_text().splitlines()]
    assert skipped["id"] == "long" and "the model's context" in skipped["reason"]
    assert sorted(p.name for p in (tmp_path / "gen").glob("*.wav")) == ["short.wav"]


def test_integer_ids_are_read_alike_by_synthesize_and_evaluate_tts(run, tmp_path, capsys):
    """F17: {"id": 7} is the id "7" for both tools (synthesize used to skip it as "missing id")."""
    from evaluation.evaluate_tts import read_manifest

    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"id": 7, "text": text(3), "prompt_audio": str(wav(1)),
                                    "prompt_text": text(1)}) + "\n")
    rc, stdout, _ = synth(capsys, "--model", str(run["export"]), "--manifest", str(manifest), "--out-dir",
                          str(tmp_path / "gen"), "--max-seconds-per-phoneme", "0.03")
    assert rc == 0 and (tmp_path / "gen" / "7.wav").is_file()
    assert [it.id for it in read_manifest(manifest)] == ["7"]
    manifest.write_text(json.dumps({"id": True, "text": "x"}) + "\n")
    with pytest.raises(Exception, match="'id' \\(a string or an integer\\)"):
        read_manifest(manifest)


def test_valle_sampling_does_not_depend_on_the_batch(run):
    """F15: with --sample and one seed, an item samples the same tokens alone or in a batch with others
    (one generator per item, as MobileSpeech)."""
    synthesizer = Synthesizer.from_pretrained(run["export"])
    gen = GenerationConfig(do_sample=True, top_p=0.9, max_seconds_per_phoneme=0.05, seed=3)
    reqs = [Request(text(n), wav(1), text(1)) for n in (3, 12, 5)]
    together = synthesizer.synthesize(reqs, gen)
    for r, a in zip(reqs, together):
        alone = synthesizer.synthesize([r], gen)[0]
        assert len(alone) == len(a) and np.allclose(alone, a, atol=1e-5)


def test_a_moved_codec_is_found_by_its_recorded_name_or_named_with_codec(run, tmp_path, capsys):
    """F18 (tts-adversarial-3): an export whose recorded codec path is gone (another machine, a moved venv)
    loads the codec by its recorded name when that works; else one line that says to give --codec, which
    then works (the identity is still checked)."""
    moved = tmp_path / "moved"
    shutil.copytree(run["export"], moved)
    config = json.loads((moved / "config.json").read_text())
    config["codec"].update(name_or_path=str(tmp_path / "gone"), name=str(run["codec"]))
    (moved / "config.json").write_text(json.dumps(config))
    out = tmp_path / "o.wav"
    argv = ["--model", str(moved), "--text", text(3), "--prompt-audio", str(wav(1)), "--prompt-text", text(1),
            "--out", str(out), "--max-seconds-per-phoneme", "0.03"]
    assert synth(capsys, *argv)[0] == 0 and out.is_file()
    config["codec"]["name"] = "gone-too"
    (moved / "config.json").write_text(json.dumps(config))
    rc, _, err = synth(capsys, *argv)
    assert rc == 2 and "synthesize --codec PATH" in one_error_line(err) and "gone-too" in err
    assert synth(capsys, *argv, "--codec", str(run["codec"]))[0] == 0


def test_an_unwritable_output_folder_is_one_line_before_synthesis(run, tmp_path, capsys, monkeypatch):
    """F13: a read-only mount (EROFS, which root cannot write either) under --out, --out-dir or train-tts --out
    is one line before any model runs, not an OSError traceback after synthesis or training."""
    import errno
    import tempfile

    from tts.cli import train_main

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", read_only)
    base = ["--model", str(run["export"]), "--text", text(3), "--prompt-audio", str(wav(1)), "--prompt-text", text(1)]
    rc, _, err = synth(capsys, *base, "--out", str(tmp_path / "ro" / "o.wav"))
    assert rc == 2 and "cannot write in" in one_error_line(err) and "Read-only file system" in err
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"id": "a", "text": text(3), "prompt_audio": str(wav(1)),
                                    "prompt_text": text(1)}) + "\n")
    rc, _, err = synth(capsys, "--model", str(run["export"]), "--manifest", str(manifest), "--out-dir",
                       str(tmp_path / "ro2"))
    assert rc == 2 and "--out-dir" in one_error_line(err) and "Read-only" in err
    assert train_main(["valle", "--data", str(run["tokens"]), "--out", str(tmp_path / "ro3"), "--log_with=none"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out" in err[0] and "Read-only file system" in err[0]


def test_manifest_batches_by_length_and_each_output_is_the_one_synthesized_alone(run, tmp_path, capsys):
    """Lines of very different lengths in manifest order: synthesize sorts them into batches of similar length,
    and every WAV equals the one a batch of one makes (sampled, so the seed must follow the item, not the batch)."""
    import soundfile as sf

    lines = [{"id": f"u{i}", "text": text(i), "prompt_audio": str(wav(1)), "prompt_text": text(1)}
             for i in (5, 2, 7, 3)]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    flags = ["--model", str(run["export"]), "--manifest", str(manifest), "--max-seconds-per-phoneme", "0.03",
             "--sample", "--seed", "3"]
    assert synth(capsys, *flags, "--out-dir", str(tmp_path / "batched"), "--batch-size", "2")[0] == 0
    assert synth(capsys, *flags, "--out-dir", str(tmp_path / "single"), "--batch-size", "1")[0] == 0
    for x in lines:
        a, _ = sf.read(tmp_path / "batched" / f"{x['id']}.wav")
        b, _ = sf.read(tmp_path / "single" / f"{x['id']}.wav")
        assert a.shape == b.shape and abs(a - b).max() < 1e-4, x["id"]
