"""`tokenize-corpus` run in-process on a generated LibriTTS-layout corpus with bad files among good ones."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from data_prep.tokenize_corpus import main
from data_prep.dataset import TokenShardDataset, collate_codes
from data_prep.shards import read_manifest, shard_paths
from tokenizer import AutoCodecConfig, AutoCodecTokenizer, CodecError

HAS_ESPEAK = shutil.which("espeak-ng") is not None or shutil.which("espeak") is not None


@pytest.fixture(scope="module")
def codec_dir(tmp_path_factory):
    tok = AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("language-codec", preset="tiny"))
    return tok.save_pretrained(tmp_path_factory.mktemp("codec") / "tiny")


def _utt(root, spk, chap, n, audio=None, sr=24000, text="The quick brown fox jumps over 2 lazy dogs.",
         normalized=True, subtype="PCM_16", raw=None, text_bytes=None):
    d = root / "train-clean-100" / spk / chap
    d.mkdir(parents=True, exist_ok=True)
    uid = f"{spk}_{chap}_{n:06d}_000000"
    if raw is not None:
        (d / f"{uid}.wav").write_bytes(raw)
    else:
        sf.write(d / f"{uid}.wav", audio, sr, subtype=subtype)
    (d / f"{uid}.original.txt").write_bytes(text_bytes if text_bytes is not None else text.encode())
    if normalized:
        (d / f"{uid}.normalized.txt").write_text(text.replace("2", "two"))
    return uid


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("LibriTTS")
    rng = np.random.default_rng(0)

    def tone(sec, sr, f):
        t = np.arange(int(sec * sr)) / sr
        return (0.3 * np.sin(2 * np.pi * f * t) + 0.02 * rng.standard_normal(t.shape)).astype(np.float32)

    good = []
    for i in range(7):
        good.append(_utt(root, str(100 + i % 3), "10", i, tone(0.3 + 0.1 * i, 24000, 150 + 40 * i)))
    good.append(_utt(root, "200", "20", 1, np.stack([tone(0.5, 44100, 300), tone(0.5, 44100, 500)], 1), sr=44100))
    good.append(_utt(root, "200", "20", 2, tone(0.4, 16000, 220), sr=16000, subtype="PCM_24"))
    good.append(_utt(root, "200", "20", 3, tone(0.4, 22050, 220), sr=22050, subtype="PCM_U8"))
    _utt(root, "200", "20", 4, tone(0.3, 24000, 220), text_bytes=b"caf\xe9 au lait")  # latin-1: skipped, listed
    bad = {
        _utt(root, "300", "30", 1, raw=b"RIFF\x00\x00garbage that is not audio"): "cannot read audio",
        _utt(root, "300", "30", 2, raw=b""): "cannot read audio",
    }
    truncated = root / "train-clean-100" / "300" / "30"
    sf.write(truncated / "x.wav", tone(0.5, 24000, 200), 24000)
    uid = "300_30_000003_000000"
    (truncated / f"{uid}.wav").write_bytes((truncated / "x.wav").read_bytes()[:30])
    (truncated / "x.wav").unlink()
    (truncated / f"{uid}.original.txt").write_text("truncated")
    (truncated / f"{uid}.normalized.txt").write_text("truncated")
    bad[uid] = "cannot read audio"
    missing_text = root / "train-clean-100" / "300" / "30" / "300_30_000009_000000.wav"
    sf.write(missing_text, tone(0.3, 24000, 200), 24000)
    return root, good, bad


def _run(corpus, codec_dir, out, *extra):
    root, _, _ = corpus
    return main(["libritts", "--codec", str(codec_dir), "--root", str(root), "--out", str(out),
                 "--shard-size", "4", "--batch-seconds", "2", "--num-workers", "0", *extra])


def _manifest_core(out):
    m = read_manifest(out)
    return m["counts"], [(s["name"], s["sha256"], s["num_samples"]) for s in m["shards"]], m["codec"]


def test_tokenize_reads_back_and_reports_bad_files(corpus, codec_dir, tmp_path):
    root, good, bad = corpus
    out = tmp_path / "out"
    assert _run(corpus, codec_dir, out, "--num-workers", "2") == 0
    m = read_manifest(out)
    tok = AutoCodecTokenizer.from_pretrained(codec_dir)
    assert m["codec"]["config_hash"] == tok.config.config_hash()
    assert m["codec"]["num_quantizers"] == tok.num_quantizers and m["codes_dtype"] == "uint8"
    assert m["counts"]["utterances"] == len(good)
    skipped = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    reasons = {s["id"]: s["reason"] for s in skipped if s["id"]}
    assert set(reasons) == set(bad)
    for uid, why in bad.items():
        assert why in reasons[uid] and uid in reasons[uid]
    assert any("300_30_000009_000000" in (s["path"] or "") for s in skipped)  # missing transcript
    assert any("200_20_000004_000000" in (s["path"] or "") and "UTF-8" in s["reason"] for s in skipped)
    # both readers give the codes the tokenizer gives for the same file
    ds = TokenShardDataset(out, codec=tok)
    samples = {s["id"]: s for s in ds}
    assert set(samples) == set(good)
    for uid in good[:3] + good[7:9]:
        path = next(root.rglob(f"{uid}.wav"))
        assert torch.equal(samples[uid]["codes"], tok(str(path)).codes[0]), uid
        rec = samples[uid]["record"]
        assert rec["num_frames"] == samples[uid]["codes"].shape[-1]
        assert rec["normalized_text"].startswith("The quick brown fox")
    batch = collate_codes(list(samples.values())[:4])
    assert batch["codes"].shape[:2] == (4, tok.num_quantizers)
    if HAS_ESPEAK:
        assert m["has_phonemes"] and (out / "phonemes.json").is_file()
        assert batch["phoneme_ids"].shape[0] == 4 and int(batch["phoneme_lengths"].min()) > 0
    import datasets

    hf = datasets.load_dataset("webdataset", data_files={"train": shard_paths(out)}, split="train")
    assert len(hf) == len(good)
    row = hf[0]
    assert np.array_equal(np.asarray(row["codes.npy"]), samples[row["json"]["id"]]["codes"].numpy())
    # a different codec is refused by the reader
    other = AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("language-codec", preset="paper"))
    with pytest.raises(CodecError, match="mismatch"):
        TokenShardDataset(out, codec=other)


def test_kill_and_resume_equals_uninterrupted(corpus, codec_dir, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    assert _run(corpus, codec_dir, full, "--no-phonemes") == 0
    assert _run(corpus, codec_dir, part, "--no-phonemes", "--stop-after-shards", "1") == 130
    assert not (part / "manifest.json").exists()
    assert len(list(part.glob("shard-*.tar"))) == 1 and not list(part.glob("*.tmp"))
    assert _run(corpus, codec_dir, part, "--no-phonemes") == 0
    assert _manifest_core(part) == _manifest_core(full)
    # idempotent: running again changes nothing
    before = {p.name: p.read_bytes() for p in part.glob("shard-*")}
    assert _run(corpus, codec_dir, part, "--no-phonemes") == 0
    assert {p.name: p.read_bytes() for p in part.glob("shard-*")} == before
    assert _manifest_core(part) == _manifest_core(full)


def test_two_processes_equal_one(corpus, codec_dir, tmp_path):
    root, _, _ = corpus
    one, two = tmp_path / "one", tmp_path / "two"
    assert _run(corpus, codec_dir, one, "--no-phonemes") == 0
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "--master_port", "29533", "-m", "data_prep.tokenize_corpus", "libritts",
         "--codec", str(codec_dir), "--root", str(root), "--out", str(two), "--shard-size", "4",
         "--batch-seconds", "2", "--num-workers", "0", "--no-phonemes"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _manifest_core(two) == _manifest_core(one)


def test_clear_errors(corpus, codec_dir, tmp_path, capsys):
    root, _, _ = corpus
    assert main(["libritts", "--codec", str(codec_dir), "--root", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["timit", "--codec", str(codec_dir), "--root", str(root)]) == 2
    assert "unknown corpus 'timit'" in capsys.readouterr().err
    assert main(["libritts", "--codec", "no-such-codec", "--root", str(root)]) == 2
    assert "unknown codec 'no-such-codec'" in capsys.readouterr().err
    assert main(["libritts", "--codec", str(codec_dir), "--root", str(root), "--num-quantizers", "2"]) == 2
    assert "num_quantizers=2" in capsys.readouterr().err


def test_builtin_sample_corpus_is_the_default_root(codec_dir, tmp_path, capsys):
    out = tmp_path / "sample"
    assert main(["libritts", "--codec", str(codec_dir), "--out", str(out), "--num-workers", "0",
                 "--sentencepiece", "80"]) == 0
    m = read_manifest(out)
    from data_prep.text.spm import encode_texts, load_sentencepiece

    spm = load_sentencepiece(out / "spm.model")
    ids = encode_texts(spm, ["the quick brown fox"])[0]
    assert ids and max(ids) < 80 and m["corpus"]["sentencepiece"] == "spm.model"
    assert m["counts"]["utterances"] == 20 and m["counts"]["skipped"] == 0
    assert m["corpus"]["root"].endswith("LibriTTS")
    printed = capsys.readouterr().out
    assert "20 utterances" in printed and "real-time" in printed


def test_post_hoc_quantization_is_recorded_in_the_manifest(corpus, tmp_path, capsys):
    tok = AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("stable-codec", preset="tiny"))
    codec = tok.save_pretrained(tmp_path / "fsq")
    out = tmp_path / "fsq-out"
    assert _run(corpus, codec, out, "--no-phonemes", "--quantization", "levels=5,stages=2") == 0
    m = read_manifest(out)
    assert (m["codec"]["fsq_levels"], m["codec"]["fsq_stages"], m["codec"]["num_quantizers"]) == (5, 2, 2)
    assert m["codec"]["codebook_size"] == 5 ** tok.config.latent_dim
    assert m["codec"]["bitrate"] == tok.frame_rate * 2 * math.ceil(math.log2(5 ** tok.config.latent_dim))
    assert _run(corpus, codec, out, "--no-phonemes", "--quantization", "levels=5,stages=2") == 0  # resumes as is
    sample = next(iter(TokenShardDataset(out)))
    assert sample["codes"].shape[0] == 2 and int(sample["codes"].max()) < 5 ** tok.config.latent_dim
    root = corpus[0]
    assert main(["libritts", "--codec", str(codec), "--root", str(root), "--out", str(tmp_path / "x"),
                 "--quantization", "levels=2"]) == 2
    assert "levels" in capsys.readouterr().err
    lc = AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("language-codec", preset="tiny"))
    assert main(["libritts", "--codec", str(lc.save_pretrained(tmp_path / "lc")), "--root", str(root),
                 "--out", str(tmp_path / "y"), "--quantization", "levels=5"]) == 2
    assert "no post-hoc quantization" in capsys.readouterr().err


def test_library_function_writes_what_the_cli_writes(corpus, codec_dir, tmp_path):
    """`data_prep.pipeline.tokenize_corpus` is the CLI's engine: same shards, same manifest, and it takes a plain
    list of utterances too; its result reports what this run did."""
    from data_prep.corpora import get_corpus
    from data_prep.pipeline import encode_in_batches, tokenize_corpus
    from tokenizer.audio import load_mono

    root, good, bad = corpus
    cli_out, lib_out = tmp_path / "cli", tmp_path / "lib"
    assert _run(corpus, codec_dir, cli_out, "--no-phonemes") == 0
    tok = AutoCodecTokenizer.from_pretrained(codec_dir)
    result = tokenize_corpus(get_corpus("libritts", root=str(root)), tok, lib_out, phonemes=False, shard_size=4,
                             batch_seconds=2, num_workers=0, codec_name=str(codec_dir), corpus_name="libritts")
    assert _manifest_core(lib_out) == _manifest_core(cli_out)
    assert result.stats["utterances"] == len(good) and result.finished_before == 0
    assert sum(result.skip_reasons.values()) == len(bad) and result.manifest["counts"]["utterances"] == len(good)
    again = tokenize_corpus(get_corpus("libritts", root=str(root)), tok, lib_out, phonemes=False, shard_size=4,
                            batch_seconds=2, num_workers=0)
    assert again.stats["utterances"] == 0
    assert again.finished_before == len(read_manifest(lib_out)["shards"]) and again.shards_done == 0
    # any iterable of Utterance works; batching does not change codes
    utts = [u for u in get_corpus("libritts", root=str(root)) if u.id in good[:4]]
    plain = tokenize_corpus(utts, tok, tmp_path / "plain", phonemes=False, num_workers=0, show_progress=False)
    assert plain.stats["utterances"] == 4
    clips = [load_mono(u.audio, tok.sampling_rate)[0] for u in utts]
    one = encode_in_batches(tok, clips, tok.num_quantizers, max_samples=1)
    many = encode_in_batches(tok, clips, tok.num_quantizers, max_samples=10 ** 9)
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(one, many))
