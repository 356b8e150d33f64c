"""`tokenize-corpus` and the shard readers never produce or accept a corpus that disagrees with its manifest.

Issue 12 (items 1, 2, 3, 8, 10, 11, 13, 15) and issue 11 (items 4, 7) on small generated corpora.
"""

import errno
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

import data_prep.pipeline as pipeline
from data_prep.tokenize_corpus import main
from data_prep.dataset import TokenShardDataset
from data_prep.errors import CorpusError
from data_prep.shards import ShardWriter, read_manifest, shard_paths
from tokenizer import AutoCodecConfig, AutoCodecTokenizer

requires_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
TEXTS = ["The quick brown fox.", "Jumps over the lazy dog.", "Hello there, world!", "Good morning to you.",
         "A cat sat on a mat.", "Bread and butter."]


def _tone(seconds, sr=16000, f=220.0, seed=0):
    t = np.arange(int(seconds * sr)) / sr
    noise = 0.02 * np.random.default_rng(seed).standard_normal(t.shape)
    return (0.3 * np.sin(2 * np.pi * f * t) + noise).astype(np.float32)


def _libritts(root, subset="train-clean-100", speaker="100", n=6, start=0, texts=TEXTS):
    d = root / subset / speaker / "10"
    d.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        uid = f"{speaker}_10_{i:06d}_000000"
        sf.write(d / f"{uid}.wav", _tone(0.2 + 0.05 * i, f=150 + 30 * i, seed=i), 16000)
        (d / f"{uid}.original.txt").write_text(texts[i % len(texts)])
        (d / f"{uid}.normalized.txt").write_text(texts[i % len(texts)])
    return root


@pytest.fixture(scope="module")
def codec_dir(tmp_path_factory):
    tok = AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("language-codec", preset="tiny"))
    return tok.save_pretrained(tmp_path_factory.mktemp("codec") / "tiny")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return _libritts(tmp_path_factory.mktemp("LibriTTS"))


def _run(root, codec, out, *extra):
    return main(["libritts", "--codec", str(codec), "--root", str(root), "--out", str(out), "--shard-size", "2",
                 "--batch-seconds", "1", "--num-workers", "0", *extra])


def _shard_bytes(out):
    return {p.name: p.read_bytes() for p in sorted(out.glob("shard-*"))}


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("tokenize-corpus: ")]
    assert "Traceback" not in err and len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------- 1: identity of a finished shard
def test_resume_with_other_quantizers_or_weights_is_refused_and_nothing_changes(corpus, codec_dir, tmp_path, capsys):
    out = tmp_path / "k"
    assert _run(corpus, codec_dir, out, "--no-phonemes", "--stop-after-shards", "1") == 130
    assert "interrupted: re-run the same command to resume" in capsys.readouterr().err
    partial = _shard_bytes(out)
    assert _run(corpus, codec_dir, out, "--no-phonemes", "--num-quantizers", "4") == 2
    _one_line_error(capsys, "shard-000000.tar", "num_quantizers: 6 vs 4", "fresh --out")
    assert _shard_bytes(out) == partial and not (out / "manifest.json").exists()

    assert _run(corpus, codec_dir, out, "--no-phonemes") == 0  # the original settings resume
    finished, manifest = _shard_bytes(out), (out / "manifest.json").read_text()
    assert json.loads(manifest)["codec"]["num_quantizers"] == 6
    assert _run(corpus, codec_dir, out, "--no-phonemes", "--num-quantizers", "3") == 2
    _one_line_error(capsys, "num_quantizers: 6 vs 3")
    assert _shard_bytes(out) == finished and (out / "manifest.json").read_text() == manifest  # no false relabel

    # same architecture, other weights: config_hash alone cannot tell them apart
    other = AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("language-codec", preset="tiny"), seed=1)
    other_dir = other.save_pretrained(tmp_path / "seed1")
    assert other.config_hash == AutoCodecTokenizer.from_pretrained(codec_dir).config_hash
    assert _run(corpus, other_dir, out, "--no-phonemes") == 2
    _one_line_error(capsys, "weights_digest")
    m = read_manifest(out)
    assert m["format_version"] == 2 and m["codec"]["weights_digest"] == m["identity"]["weights_digest"]

    # turning phonemes on is another phoneme vocabulary: refused too
    if shutil.which("espeak-ng"):
        assert _run(corpus, codec_dir, out) == 2
        _one_line_error(capsys, "phoneme_vocab")


def test_resume_with_a_retrained_decoder_on_the_same_tokens_continues(corpus, codec_dir, tmp_path, capsys):
    """A checkpoint whose decoder alone changed (e.g. a new shipped version trained with the encoder and
    quantizer frozen) makes the same tokens: an interrupted run resumes with it, and the corpus equals an
    uninterrupted run with the first checkpoint."""
    whole = tmp_path / "whole"
    assert _run(corpus, codec_dir, whole, "--no-phonemes") == 0
    retrained = AutoCodecTokenizer.from_pretrained(codec_dir)
    with torch.no_grad():
        for p in retrained.model.head.parameters():
            p.add_(0.01)
    first = AutoCodecTokenizer.from_pretrained(codec_dir)
    assert retrained.weights_digest != first.weights_digest and retrained.tokens_digest == first.tokens_digest
    retrained_dir = retrained.save_pretrained(tmp_path / "retrained")

    out = tmp_path / "k"
    assert _run(corpus, codec_dir, out, "--no-phonemes", "--stop-after-shards", "1") == 130
    capsys.readouterr()
    assert _run(corpus, retrained_dir, out, "--no-phonemes") == 0
    assert _shard_bytes(out).keys() == _shard_bytes(whole).keys()
    a, b = TokenShardDataset(whole, codec=first), TokenShardDataset(out, codec=first)
    assert [(x["id"], x["codes"].tolist()) for x in a] == [(x["id"], x["codes"].tolist()) for x in b]
    assert read_manifest(out)["codec"]["weights_digest"] == retrained.weights_digest


def test_old_format_is_refused_with_a_clear_message(corpus, codec_dir, tmp_path, capsys):
    out = tmp_path / "v1"
    assert _run(corpus, codec_dir, out, "--no-phonemes") == 0
    for path in [out / "manifest.json", *out.glob("*.tar.json")]:
        data = json.loads(path.read_text())
        data["format_version"] = 1
        path.write_text(json.dumps(data))
    with pytest.raises(CorpusError, match="format 1.*fresh --out"):
        TokenShardDataset(out)
    assert _run(corpus, codec_dir, out, "--no-phonemes") == 2
    _one_line_error(capsys, "shard-000000.tar.json is token shard format 1")
    assert (out / "shard-000000.tar").exists()  # refused, not deleted as "damaged"


# ---------------------------------------------------------------- 2: phoneme vocabulary and text
@requires_espeak
def test_rerun_with_other_language_or_edited_text_keeps_phonemes_consistent(tmp_path, codec_dir, capsys):
    root = _libritts(tmp_path / "LibriTTS")
    out = tmp_path / "p"
    assert _run(root, codec_dir, out) == 0
    vocab_before = (out / "phonemes.json").read_text()
    assert _run(root, codec_dir, out, "--language", "fr-fr") == 2
    _one_line_error(capsys, "language: 'en-us' vs 'fr-fr'")
    assert (out / "phonemes.json").read_text() == vocab_before

    # an edited transcript between an interrupted run and its resume
    part = tmp_path / "part"
    assert _run(root, codec_dir, part, "--stop-after-shards", "1") == 130
    capsys.readouterr()
    for n, text in ((0, TEXTS[2]), (2, TEXTS[0])):  # swapped: the vocabulary stays, shard 0's text changes
        for kind in ("normalized", "original"):
            next(root.rglob(f"100_10_{n:06d}_000000.{kind}.txt")).write_text(text)
    assert _run(root, codec_dir, part) == 2
    _one_line_error(capsys, "shard-000000.tar", "other utterance text")

    # every stored phoneme id sequence decodes to its record's phonemes
    from data_prep.text.vocab import PhonemeVocab

    vocab = PhonemeVocab.load(out)
    for sample in TokenShardDataset(out):
        assert vocab.decode(sample["phoneme_ids"]) == sample["record"]["phonemes"]


# ---------------------------------------------------------------- 3: duplicate ids
def test_duplicate_ids_keep_the_first_and_are_recorded(tmp_path, codec_dir, capsys):
    root = _libritts(tmp_path / "dup", subset="train-a", n=4)
    _libritts(root, subset="train-b", n=4, start=2)  # ids 2 and 3 are in both subsets
    out = tmp_path / "d"
    assert _run(root, codec_dir, out, "--no-phonemes") == 0
    m = read_manifest(out)
    assert m["counts"]["utterances"] == 6 and m["counts"]["skipped"] == 2
    skipped = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    assert sorted(s["id"] for s in skipped) == ["100_10_000002_000000", "100_10_000003_000000"]
    assert all("duplicate id" in s["reason"] and "train-b" in s["path"] and "train-a" in s["reason"] for s in skipped)
    kept = {s["id"]: s["record"] for s in TokenShardDataset(out)}
    assert "train-a" in str(next(root.rglob("100_10_000002_000000.wav")))
    assert kept["100_10_000002_000000"]["num_samples"] == int((0.2 + 0.05 * 2) * 16000)  # the train-a file
    assert "skipped 2: duplicate id" in capsys.readouterr().out


# ---------------------------------------------------------------- 8: readers check the shards
def test_reader_checks_sizes_counts_and_hashes(corpus, codec_dir, tmp_path):
    out = tmp_path / "r"
    assert _run(corpus, codec_dir, out, "--no-phonemes", "--num-quantizers", "4") == 0
    tok = AutoCodecTokenizer.from_pretrained(codec_dir)
    assert len(list(TokenShardDataset(out, codec=tok, verify=True))) == 6  # K=4 of a 6-quantizer codec
    other = AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("language-codec", preset="tiny"), seed=1)
    with pytest.raises(CorpusError, match="codec mismatch in tokens_digest"):
        TokenShardDataset(out, codec=other)
    with pytest.raises(CorpusError, match="num_quantizers.*supports"):
        TokenShardDataset(out, codec={**tok.codec_info(), "supported_num_quantizers": [6]})

    shard = out / "shard-000001.tar"
    data = shard.read_bytes()
    import tarfile

    with tarfile.open(shard) as tar:  # cut at a member boundary: the last sample is gone, the tar still reads
        members = tar.getmembers()
    cut = next(m.offset for m in members if m.name.endswith(".codes.npy") and m is not members[0])
    shard.write_bytes(data[:cut] + b"\0" * 1024)
    with pytest.raises(CorpusError, match="shard-000001.tar has .* bytes, the manifest says"):
        TokenShardDataset(out)

    flipped = bytearray(data)
    flipped[members[0].offset_data + 130] ^= 1  # inside the first codes.npy payload
    shard.write_bytes(bytes(flipped))
    assert len(list(TokenShardDataset(out))) == 6  # the cheap checks pass...
    with pytest.raises(CorpusError, match="shard-000001.tar: sha256"):
        TokenShardDataset(out, verify=True)  # ...the full check does not

    # a shard of the right size with fewer samples than the manifest says is caught while reading
    shard.write_bytes(data)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["shards"][1]["num_samples"] = 3
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorpusError, match="shard-000001.tar holds 2 samples, the manifest says 3"):
        list(TokenShardDataset(out))


# ---------------------------------------------------------------- 10: language per row, espeak missing
def _folder(root, rows):
    root.mkdir(parents=True, exist_ok=True)
    for i, row in enumerate(rows):
        sf.write(root / f"u{i}.wav", _tone(0.25, seed=i), 16000)
        row.setdefault("audio", f"u{i}.wav")
    (root / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "m.jsonl"


@requires_espeak
def test_one_bad_language_row_skips_that_row_only(tmp_path, codec_dir, capsys):
    manifest = _folder(tmp_path / "lang", [{"text": "Hello there."}, {"text": "Bonjour", "language": "french"},
                                           {"text": "Good night."}])
    out = tmp_path / "l"
    assert main(["folder", "--codec", str(codec_dir), "--root", str(manifest), "--out", str(out),
                 "--num-workers", "0"]) == 0
    m = read_manifest(out)
    assert m["has_phonemes"] and m["counts"]["utterances"] == 2 and m["counts"]["skipped"] == 1
    skipped = json.loads((out / "skipped.jsonl").read_text())
    assert skipped["id"] == "u1" and "french" in skipped["reason"]

    assert main(["folder", "--codec", str(codec_dir), "--root", str(manifest), "--out", str(tmp_path / "x"),
                 "--language", "en_us"]) == 2
    _one_line_error(capsys, "--language 'en_us'")
    assert not (tmp_path / "x").exists()


def test_phonemes_without_espeak_fail_up_front(tmp_path, codec_dir, corpus, capsys, monkeypatch):
    from data_prep import tokenize_corpus

    monkeypatch.setattr(tokenize_corpus, "espeak_available", lambda: False)
    assert _run(corpus, codec_dir, tmp_path / "e") == 2
    _one_line_error(capsys, "espeak-ng", "--no-phonemes")
    assert not (tmp_path / "e").exists()


# ---------------------------------------------------------------- 11 and 13: bad audio, one type per field
def test_audio_that_resamples_to_nothing_is_skipped_and_fields_keep_one_type(tmp_path, codec_dir, monkeypatch):
    root = tmp_path / "nulltxt"
    root.mkdir()
    for i in range(8):
        sf.write(root / f"u{i:02d}.wav", _tone(0.25, seed=i), 16000)
    for i in (6, 7):  # only the last two have transcripts: the first records have none
        (root / f"u{i:02d}.txt").write_text("Hello there.")
    sf.write(root / "u03b.wav", np.array([0.1], dtype=np.float32), 48000)  # 1 sample at 48 kHz -> 0 at 16 kHz
    out = tmp_path / "n"
    assert main(["folder", "--codec", str(codec_dir), "--root", str(root), "--out", str(out), "--num-workers", "0",
                 "--no-phonemes"]) == 0
    m = read_manifest(out)
    assert m["counts"]["utterances"] == 8 and m["counts"]["skipped"] == 1
    skipped = json.loads((out / "skipped.jsonl").read_text())
    assert skipped["path"].endswith("u03b.wav") and "resampled to 16000 Hz) is empty" in skipped["reason"]
    records = [s["record"] for s in TokenShardDataset(out)]
    assert {type(r[key]) for r in records for key in ("text", "normalized_text", "phonemes", "language")} == {str}

    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    ds = datasets.load_dataset("webdataset", data_files={"train": shard_paths(out)}, split="train",
                               cache_dir=str(tmp_path / "hf"))
    assert len(ds) == 8 and sorted(r["text"] for r in ds["json"])[-1] == "Hello there."


@requires_espeak
def test_phonemes_are_strings_even_without_text(tmp_path, codec_dir, monkeypatch):
    root = tmp_path / "mixed"
    root.mkdir()
    for i in range(7):
        sf.write(root / f"u{i:02d}.wav", _tone(0.2, seed=i), 16000)
    (root / "u06.txt").write_text("Hello there.")
    out = tmp_path / "o"
    assert main(["folder", "--codec", str(codec_dir), "--root", str(root), "--out", str(out),
                 "--num-workers", "0"]) == 0
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    ds = datasets.load_dataset("webdataset", data_files={"train": shard_paths(out)}, split="train",
                               cache_dir=str(tmp_path / "hf"))
    phonemes = [r["phonemes"] for r in ds["json"]]
    assert phonemes[:6] == [""] * 6 and phonemes[6]


# ---------------------------------------------------------------- 15: one line, no traceback
@pytest.mark.parametrize("flags, needle", [
    (["--batch-seconds", "nan"], "--batch-seconds"),
    (["--batch-seconds", "inf"], "--batch-seconds"),
    (["--device", "gpu"], "--device 'gpu'"),
    (["--shard-size", "0"], "--shard-size"),
])
def test_bad_flags_are_one_line(corpus, codec_dir, tmp_path, capsys, flags, needle):
    assert _run(corpus, codec_dir, tmp_path / "o", *flags) == 2
    _one_line_error(capsys, needle)


def test_cuda_without_cuda_out_as_file_and_codecs_without_weights(corpus, codec_dir, tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _run(corpus, codec_dir, tmp_path / "o", "--device", "cuda") == 2
    _one_line_error(capsys, "--device cuda", "CUDA is not available")

    afile = tmp_path / "afile"
    afile.write_text("x")
    assert _run(corpus, codec_dir, afile, "--no-phonemes") == 2
    _one_line_error(capsys, f"--out {afile} is a file")

    assert _run(corpus, "stable-codec", tmp_path / "s", "--no-phonemes") == 2
    _one_line_error(capsys, "--random-weights")
    seen = {}

    def fake(name, device=None, random_weights=False):
        seen.update(name=name, random_weights=random_weights)
        raise CorpusError("stop here")

    monkeypatch.setattr(AutoCodecTokenizer, "from_pretrained", staticmethod(fake))
    assert _run(corpus, "stable-codec", tmp_path / "s", "--no-phonemes", "--random-weights") == 2
    assert seen == {"name": "stable-codec", "random_weights": True}
    capsys.readouterr()


def test_full_disk_is_one_line_and_leaves_no_temporary_files(corpus, codec_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "full"

    def no_space(self):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.out_dir / "shard-000001.tar.tmp"))

    original = ShardWriter._finish
    calls = []

    def finish(self):
        calls.append(1)
        return original(self) if len(calls) == 1 else no_space(self)

    monkeypatch.setattr(ShardWriter, "_finish", finish)
    assert _run(corpus, codec_dir, out, "--no-phonemes") == 1
    _one_line_error(capsys, "disk full", "re-run the same command to resume")
    assert not list(out.glob("*.tmp"))
    monkeypatch.setattr(ShardWriter, "_finish", original)
    assert _run(corpus, codec_dir, out, "--no-phonemes") == 0
    assert read_manifest(out)["counts"]["utterances"] == 6


# ---------------------------------------------------------------- memory bounded by --batch-seconds
def test_audio_held_is_bounded_by_batch_seconds_not_shard_size(tmp_path, codec_dir, monkeypatch):
    root = _libritts(tmp_path / "mem", n=12)
    loaded, written, held = [0], [0], []
    reader_get, writer_write = pipeline.AudioReader.__getitem__, ShardWriter.write

    def get(self, i):
        loaded[0] += 1
        return reader_get(self, i)

    def write(self, *args, **kwargs):
        written[0] += 1
        held.append(loaded[0] - written[0])
        return writer_write(self, *args, **kwargs)

    monkeypatch.setattr(pipeline.AudioReader, "__getitem__", get)
    monkeypatch.setattr(ShardWriter, "write", write)
    small = tmp_path / "small"
    assert main(["libritts", "--codec", str(codec_dir), "--root", str(root), "--out", str(small), "--no-phonemes",
                 "--shard-size", "12", "--batch-seconds", "0.3", "--num-workers", "0"]) == 0
    # a window of 4 batches of 0.3 s holds at most 5 clips of >= 0.2 s (old code: the whole 12-clip shard)
    assert written[0] == 12 and max(held) <= 5
    big = tmp_path / "big"
    assert main(["libritts", "--codec", str(codec_dir), "--root", str(root), "--out", str(big), "--no-phonemes",
                 "--shard-size", "12", "--batch-seconds", "100", "--num-workers", "0"]) == 0
    assert _shard_bytes(small) == _shard_bytes(big)


def test_corpus_columns_never_override_computed_fields_and_keep_one_type(tmp_path, codec_dir, monkeypatch):
    manifest = _folder(tmp_path / "cols", [{"text": "a", "duration": 99.0, "num_frames": "10", "snr": 1, "tag": "x"},
                                           {"text": "b", "snr": 2.5, "tag": "y"},
                                           {"text": "c", "tag": "z"}])
    out = tmp_path / "c"
    assert main(["folder", "--codec", str(codec_dir), "--root", str(manifest), "--out", str(out),
                 "--num-workers", "0", "--no-phonemes"]) == 0
    records = {s["id"]: s["record"] for s in TokenShardDataset(out)}
    assert [round(records[u]["duration"], 3) for u in ("u0", "u1", "u2")] == [0.25] * 3
    assert records["u0"]["num_frames"] == 100  # 0.25 s at 400 frames/s, not the column's "10"
    assert [records[u]["snr"] for u in ("u0", "u1", "u2")] == ["1", "2.5", ""]  # missing somewhere: text
    assert [records[u]["tag"] for u in ("u0", "u1", "u2")] == ["x", "y", "z"]
    assert read_manifest(out)["counts"]["seconds"] == pytest.approx(0.75)
