"""Corpus readers on small layouts generated in tmp_path, plus the built-in sample corpus."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep.corpora import CORPORA, get_corpus
from data_prep.corpora.folder import Folder
from data_prep.corpora.hf import HFDataset
from data_prep.corpora.librispeech import LibriSpeech
from data_prep.corpora.libritts import LibriTTS, LibriTTSR
from data_prep.corpora.ljspeech import LJSpeech
from data_prep.errors import CorpusError
from data_prep.sample_corpus import SAMPLE_ROOT
from data_prep.text.normalize import normalize_text
from tokenizer.audio import load_audio
from tokenizer.utils.errors import AudioError, CodecError

SR = 16000
NOT_UTF8 = "caf\xe9 au lait".encode("latin-1")


def tone(seconds: float = 0.05, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_audio(path: Path, freq: float = 440.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(freq=freq), SR)
    return path


def wav_bytes(freq: float = 440.0) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, tone(freq=freq), SR, format="WAV")
    return buf.getvalue()


def write(path: Path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)


def skipped_reasons(corpus) -> dict[str, str]:
    return {Path(item).name if "/" in item else item: reason for item, reason in corpus.skipped}


# -- LibriTTS ---------------------------------------------------------------------------------------


def make_libritts(base: Path, folder: str = "LibriTTS") -> Path:
    root = base / folder
    ch = root / "dev-clean" / "100" / "200"
    write_audio(ch / "100_200_000001_000000.wav")
    write(ch / "100_200_000001_000000.original.txt", "Mr. Brown paid $5.\n")
    write(ch / "100_200_000001_000000.normalized.txt", "Mister Brown paid five dollars.\n")
    write_audio(ch / "100_200_000002_000000.wav")
    write(ch / "100_200_000002_000000.original.txt", "Only the original.")
    write_audio(ch / "100_200_000003_000000.wav")  # no transcript at all
    write_audio(ch / "100_200_000004_000000.wav")
    write(ch / "100_200_000004_000000.original.txt", NOT_UTF8)
    write(ch / "100_200_000005_000000.wav", b"RIFF but not really a wav file")  # corrupt audio
    write(ch / "100_200_000005_000000.original.txt", "Corrupt audio.")
    write(ch / "100_200.book.tsv", "ignored")
    write_audio(root / "dev-clean" / "19" / "7" / "19_7_000001_000000.wav")
    write(root / "dev-clean" / "19" / "7" / "19_7_000001_000000.normalized.txt", "Speaker nineteen.")
    test = root / "test-clean" / "300" / "400"
    write_audio(test / "300_400_000001_000001.wav")
    write(test / "300_400_000001_000001.original.txt", "Test subset.")
    write(root / "SPEAKERS.txt", "not a subset")
    return root


def test_libritts_yields_sorted_utterances_and_skips(tmp_path):
    make_libritts(tmp_path)
    corpus = LibriTTS(tmp_path)  # the parent of LibriTTS/ is accepted
    utts = list(corpus)
    assert [u.id for u in utts] == [
        "100_200_000001_000000", "100_200_000002_000000", "100_200_000005_000000",
        "19_7_000001_000000", "300_400_000001_000001",
    ]
    first = utts[0]
    assert first.text == "Mr. Brown paid $5."
    assert first.normalized_text == "Mister Brown paid five dollars."
    assert (first.speaker, first.language) == ("100", "en-us")
    assert first.extra == {"subset": "dev-clean", "chapter": "200"}
    assert first.audio == str(tmp_path / "LibriTTS/dev-clean/100/200/100_200_000001_000000.wav")
    assert (utts[1].text, utts[1].normalized_text) == ("Only the original.", None)
    assert (utts[3].text, utts[3].normalized_text) == ("Speaker nineteen.", "Speaker nineteen.")
    assert utts[4].extra["subset"] == "test-clean"
    reasons = skipped_reasons(corpus)
    assert list(reasons) == ["100_200_000003_000000.wav", "100_200_000004_000000.wav"]
    assert reasons["100_200_000003_000000.wav"].startswith("no transcript")
    assert "not valid UTF-8" in reasons["100_200_000004_000000.wav"]
    # Corrupt audio is listed (corpora never decode audio) and fails cleanly when loaded.
    with pytest.raises(AudioError, match="100_200_000005_000000.wav"):
        load_audio(utts[2].audio)
    assert load_audio(first.audio)[0].shape == (1, 800)
    assert len(list(corpus)) == 5 and len(corpus.skipped) == 2  # skipped is rebuilt per pass


def test_libritts_subsets_and_roots(tmp_path):
    root = make_libritts(tmp_path)
    corpus = LibriTTS(root, subsets=["test-clean"])  # root holding the subsets directly
    assert corpus.available_subsets.keys() == {"dev-clean", "test-clean"}
    assert corpus.subsets == ["test-clean"]
    assert [u.id for u in corpus] == ["300_400_000001_000001"]
    assert LibriTTS(root, subsets="dev-clean").subsets == ["dev-clean"]
    with pytest.raises(CorpusError, match=r"unknown libritts subset 'train-clean-100'.*available: dev-clean, test-clean"):
        LibriTTS(root, subsets=["train-clean-100"])


def test_libritts_wrong_roots(tmp_path):
    root = make_libritts(tmp_path)
    with pytest.raises(CorpusError, match=rf"no libritts subset folders under {root / 'dev-clean'}; expected <root>/<subset>"):
        LibriTTS(root / "dev-clean")  # a subset folder is not a root
    with pytest.raises(CorpusError, match=f"{tmp_path / 'nope'} does not exist"):
        LibriTTS(tmp_path / "nope")
    with pytest.raises(CorpusError, match="is not a directory"):
        LibriTTS(root / "SPEAKERS.txt")
    assert issubclass(CorpusError, CodecError) and issubclass(CorpusError, ValueError)


def test_libritts_r_prefers_its_own_folder(tmp_path):
    make_libritts(tmp_path, "LibriTTS")
    r = make_libritts(tmp_path, "LibriTTS_R")
    (r / "test-clean").rename(r / "dev-other")
    assert LibriTTSR(tmp_path).subsets == ["dev-clean", "dev-other"]
    assert LibriTTS(tmp_path).subsets == ["dev-clean", "test-clean"]
    assert get_corpus("LibriTTS_R", tmp_path).name == "libritts-r"


# -- LibriSpeech ------------------------------------------------------------------------------------


def test_librispeech(tmp_path):
    ch = tmp_path / "LibriSpeech" / "dev-clean" / "84" / "121123"
    for n in ("0000", "0001", "0002", "0004"):
        write_audio(ch / f"84-121123-{n}.flac")
    write(ch / "84-121123.trans.txt",
          b"84-121123-0000 GO DO YOU HEAR\n84-121123-0001 BUT IN LESS THAN FIVE MINUTES\n"
          b"84-121123-0002 " + NOT_UTF8 + b"\n84-121123-0003 NO AUDIO FOR THIS ONE\n")
    corpus = get_corpus("librispeech", tmp_path, subsets=["dev-clean"])
    utts = list(corpus)
    assert [(u.id, u.text, u.speaker) for u in utts] == [
        ("84-121123-0000", "GO DO YOU HEAR", "84"),
        ("84-121123-0001", "BUT IN LESS THAN FIVE MINUTES", "84"),
    ]
    assert utts[0].normalized_text is None and utts[0].extra == {"subset": "dev-clean", "chapter": "121123"}
    assert skipped_reasons(corpus) == {
        "84-121123-0002.flac": "84-121123.trans.txt line 3 is not valid UTF-8",
        "84-121123-0003.flac": "audio file missing (listed in transcript)",
        "84-121123-0004.flac": "no transcript line in 84-121123.trans.txt",
    }
    assert load_audio(utts[0].audio)[1] == SR
    with pytest.raises(CorpusError, match=r"no librispeech subset folders under .*\*\.flac"):
        LibriSpeech(tmp_path / "LibriSpeech" / "dev-clean" / "84")


# -- LJSpeech ---------------------------------------------------------------------------------------


def test_ljspeech(tmp_path):
    root = tmp_path / "LJSpeech-1.1"
    for n in ("0001", "0002", "0003", "0005", "0006"):
        write_audio(root / "wavs" / f"LJ001-{n}.wav")
    write(root / "metadata.csv",
          b"LJ001-0002|in being comparatively modern.|in being comparatively modern.\n"
          b"LJ001-0001|Printing, in the only sense, 1st|Printing, in the only sense, first\n"
          b'LJ001-0003|He said "yes|\n'
          b"LJ001-0004|no wav for this line|no wav for this line\n"
          b"LJ001-0005|" + NOT_UTF8 + b"|x\n")
    corpus = LJSpeech(tmp_path)  # the parent of LJSpeech-1.1/ is accepted
    utts = list(corpus)
    assert [(u.id, u.text, u.normalized_text, u.speaker) for u in utts] == [
        ("LJ001-0001", "Printing, in the only sense, 1st", "Printing, in the only sense, first", "LJ"),
        ("LJ001-0002", "in being comparatively modern.", "in being comparatively modern.", "LJ"),
        ("LJ001-0003", 'He said "yes', None, "LJ"),
    ]
    assert skipped_reasons(corpus) == {
        "LJ001-0004.wav": "audio file missing (listed in metadata.csv)",
        "LJ001-0005.wav": "metadata.csv line 5 is not valid UTF-8",
        "LJ001-0006.wav": "no line in metadata.csv",
    }
    (root / "metadata.csv").unlink()
    with pytest.raises(CorpusError, match=rf"no metadata.csv under {root}; expected <root>/metadata.csv"):
        LJSpeech(root)


# -- folder and manifests ---------------------------------------------------------------------------


def test_folder_of_audio_files(tmp_path):
    root = tmp_path / "data"
    write_audio(root / "spk1" / "a.wav")
    write(root / "spk1" / "a.txt", "First clip.\n")
    write_audio(root / "spk1" / "b.flac")
    write(root / "spk1" / "b.lab", "second clip")
    write_audio(root / "spk2" / "sub" / "c.wav")  # no transcript: kept with text ""
    sf.write(root / "d.ogg", tone(), SR)
    write(root / "d.txt", "Ogg file.")
    write_audio(root / "e.wav")
    write(root / "e.txt", NOT_UTF8)
    write(root / "notes.txt", "not a transcript of anything")
    corpus = get_corpus("folder", root, language="en-gb")
    utts = list(corpus)
    assert [(u.id, u.text, u.speaker) for u in utts] == [
        ("d", "Ogg file.", "default"),
        ("spk1_a", "First clip.", "spk1"),
        ("spk1_b", "second clip", "spk1"),
        ("spk2_sub_c", "", "spk2"),
    ]
    assert utts[3].extra == {"path": "spk2/sub/c.wav"} and utts[0].language == "en-gb"
    assert skipped_reasons(corpus) == {"e.wav": "e.txt is not valid UTF-8 (byte 3)"}
    for u in utts:
        assert load_audio(u.audio)[0].shape == (1, 800)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match=f"no audio files under {tmp_path / 'empty'}"):
        Folder(tmp_path / "empty")


def test_folder_jsonl_manifest(tmp_path):
    base = tmp_path / "m"
    write_audio(base / "clips" / "x.wav")
    absolute = write_audio(tmp_path / "elsewhere" / "y.wav")
    rows = [
        {"audio": "clips/x.wav", "text": " Hello. ", "speaker": "s1"},
        {"audio": str(absolute), "text": "Bonjour.", "id": "custom", "language": "fr-fr", "emotion": "happy"},
        "{not json",
        {"audio": "clips/missing.wav", "text": "gone"},
        {"text": "no audio column value"},
        {"audio": "clips/x.wav", "text": "same id again"},
    ]
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    write(base / "manifest.jsonl", "\n".join(lines[:2]) + "\n\n" + "\n".join(lines[2:]) + "\n")
    corpus = Folder(base / "manifest.jsonl")
    utts = list(corpus)
    assert [(u.id, u.text, u.speaker, u.language) for u in utts] == [
        ("clips_x", "Hello.", "s1", "en-us"),
        ("custom", "Bonjour.", "default", "fr-fr"),
    ]
    assert utts[0].audio == str(base / "clips" / "x.wav") and utts[1].audio == str(absolute)
    assert utts[1].extra == {"emotion": "happy"}
    assert [reason for _, reason in corpus.skipped] == [
        "line 4 is not valid JSON: Expecting property name enclosed in double quotes",
        f"audio file not found: {base / 'clips' / 'missing.wav'}",
        "line 6 has no audio path",
        "duplicate id 'clips_x'",
    ]


def test_folder_csv_manifest(tmp_path):
    write_audio(tmp_path / "a.wav")
    write_audio(tmp_path / "b.wav")
    write(tmp_path / "list.csv",
          b'audio,text,speaker\na.wav,"Hello, with a comma.",anna\n' + b"b.wav," + NOT_UTF8 + b",bob\nb.wav,,bob\n")
    corpus = get_corpus("folder", tmp_path / "list.csv")
    assert [(u.id, u.text, u.speaker) for u in corpus] == [("a", "Hello, with a comma.", "anna"), ("b", "", "bob")]
    assert corpus.skipped == [(f"{tmp_path / 'list.csv'}:3", "line 3 is not valid UTF-8")]
    write(tmp_path / "bad.csv", "path,text\na.wav,hi\n")
    with pytest.raises(CorpusError, match=r"bad.csv has no 'audio' column \(columns: path, text\)"):
        Folder(tmp_path / "bad.csv")
    with pytest.raises(CorpusError, match="is a file but not a manifest"):
        Folder(tmp_path / "a.wav")


# -- Hugging Face datasets --------------------------------------------------------------------------


def test_hf_saved_dataset_yields_bytes(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({
        "audio": [{"bytes": wav_bytes(440), "path": "a.wav"}, {"bytes": wav_bytes(880), "path": "b.wav"}],
        "sentence": ["first sentence", None],
        "spk": [7, 8],
    }).cast_column("audio", datasets.Audio())
    datasets.DatasetDict({"train": ds, "test": ds.select([1])}).save_to_disk(str(tmp_path / "dd"))
    corpus = get_corpus("hf", tmp_path / "dd", split="train", text_column="sentence", speaker_column="spk")
    utts = list(corpus)
    assert [(u.id, u.text, u.speaker) for u in utts] == [("00000000", "first sentence", "7"), ("00000001", "", "8")]
    assert isinstance(utts[0].audio, bytes) and utts[0].extra["path"] == "a.wav"
    audio, sr = load_audio(utts[1].audio)
    assert sr == SR and audio.shape == (1, 800)
    assert corpus.dataset.features["audio"].decode  # the reader's cast does not change the dataset
    with pytest.raises(CorpusError, match="has several splits; pass split= available: test, train"):
        HFDataset(tmp_path / "dd", text_column="sentence")
    with pytest.raises(CorpusError, match="has no split 'dev'; available: test, train"):
        HFDataset(tmp_path / "dd", split="dev")
    with pytest.raises(CorpusError, match=r"has no column 'text' \(text_column\); columns: audio, sentence, spk"):
        HFDataset(tmp_path / "dd", split="test")


def test_hf_path_column_and_errors(tmp_path):
    datasets = pytest.importorskip("datasets")
    clip = write_audio(tmp_path / "clip.wav")
    ds = datasets.Dataset.from_dict({"audio": [str(clip), str(tmp_path / "gone.wav")], "text": ["a", "b"], "id": ["u1", "u2"]})
    ds.save_to_disk(str(tmp_path / "paths"))
    corpus = HFDataset(tmp_path / "paths")
    assert [(u.id, u.audio, u.speaker) for u in corpus] == [("u1", str(clip), "default")]
    assert corpus.skipped == [(f"{tmp_path / 'paths'}[1] (u2)", f"row has no audio bytes and no readable path ({tmp_path / 'gone.wav'})")]
    with pytest.raises(CorpusError, match=f"hf dataset path {tmp_path / 'missing'} does not exist"):
        HFDataset(tmp_path / "missing")


# -- registry ---------------------------------------------------------------------------------------


def test_registry_errors(tmp_path):
    assert list(CORPORA) == ["libritts", "libritts-r", "librispeech", "ljspeech", "folder", "hf"]
    with pytest.raises(CorpusError, match="unknown corpus 'vctk'; known corpora: libritts, libritts-r, librispeech, ljspeech, folder, hf"):
        get_corpus("vctk", tmp_path)
    with pytest.raises(CorpusError, match="corpus 'ljspeech' needs a root path"):
        get_corpus("ljspeech")
    with pytest.raises(CorpusError, match=r"corpus 'folder' has no subsets \(got subsets=\['a'\]\)"):
        get_corpus("folder", tmp_path, subsets=["a"])


def test_builtin_sample_corpus():
    corpus = get_corpus("libritts")
    assert corpus.data_root == SAMPLE_ROOT and corpus.subsets == ["sample"]
    utts = list(corpus)
    assert len(utts) == 20 and not corpus.skipped
    assert [u.id for u in utts] == [f"9000_1_{n:06d}_000000" for n in range(1, 21)]
    assert utts[0].text == "Goodbye.  Thank you for trying out the Asterisk Open Source PBX."
    assert utts[2].normalized_text == "press one to accept this call, or two to reject it"
    for u in utts:
        assert u.speaker == "9000" and u.text and u.normalized_text
        # The sample must be rebuilt (build_sample.py) when the normaliser changes.
        assert u.normalized_text == normalize_text(u.text), u.id
        audio, sr = load_audio(u.audio)
        assert sr == SR and audio.shape[0] == 1 and 2.0 <= audio.shape[1] / sr <= 6.0
        assert 0.3 < np.abs(audio).max() <= 1.0


def test_manifest_columns_never_override_computed_fields(tmp_path, caplog):
    write_audio(tmp_path / "a.wav")
    write_audio(tmp_path / "b.wav")
    rows = [{"audio": "a.wav", "text": "A.", "duration": 99.0, "num_frames": "10", "emotion": "calm"},
            {"audio": "b.wav", "text": "B.", "duration": "n/a", "phonemes": "x|y", "num_samples": 3}]
    write(tmp_path / "m.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    corpus = Folder(tmp_path / "m.jsonl")
    with caplog.at_level("WARNING", logger="data_prep.corpora.base"):
        utts = list(corpus)
    assert [u.extra for u in utts] == [{"emotion": "calm"}, {}]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 4 and all("the pipeline computes" in w for w in warnings)
    assert "ignoring the 'duration' field the corpus gives (first for a)" in warnings[0]
    write(tmp_path / "m.csv", "audio,text,num_frames,duration\na.wav,A.,276,5.5\nb.wav,B.,x,n/a\n")
    assert [u.extra for u in Folder(tmp_path / "m.csv")] == [{}, {}]


def test_folder_takes_every_format_libsndfile_reads_and_reports_the_rest(tmp_path, caplog):
    root = tmp_path / "ext"
    write_audio(root / "a.wav")
    sf.write(root / "b.opus", tone(), 48000, format="OGG", subtype="OPUS")
    sf.write(root / "c.aiff", tone(), SR, format="AIFF")
    sf.write(root / "d.aif", tone(), SR, format="AIFF")
    sf.write(root / "e.FLAC", tone(), SR, format="FLAC")
    sf.write(root / "f.wave", tone(), SR, format="WAV")
    sf.write(root / "g.caf", tone(), SR, format="CAF")
    write(root / "h.m4a", b"not for libsndfile")
    write(root / "sub" / "i.wma", b"nor this")
    write(root / "a.txt", "Transcript.")
    write(root / ".DS_Store", b"\0")
    with caplog.at_level("WARNING", logger="data_prep.corpora.folder"):
        utts = list(get_corpus("folder", root))
    assert [u.id for u in utts] == ["a", "b", "c", "d", "e", "f", "g"]
    for u in utts:
        assert load_audio(u.audio)[0].shape[1] in (800, 2400)  # 2400: opus at 48 kHz
    (message,) = [r.getMessage() for r in caplog.records]
    assert message == f"folder: left out 2 files under {root} that are not audio libsndfile reads: h.m4a, sub/i.wma"
    only = tmp_path / "m4a"
    for n in range(5):
        write(only / f"{n}.m4a", b"x")
    with pytest.raises(CorpusError, match=rf"no audio files under {only} \(only 0.m4a, 1.m4a, 2.m4a and 2 more\)"):
        Folder(only)


# -- ids --------------------------------------------------------------------------------------------


def test_bom_in_ljspeech_metadata_keeps_the_first_utterance(tmp_path):
    root = tmp_path / "lj"
    for n in ("0001", "0002"):
        write_audio(root / "wavs" / f"LJ001-{n}.wav")
    write(root / "metadata.csv", b"\xef\xbb\xbfLJ001-0001|Goodbye.|Goodbye.\r\nLJ001-0002|Two.|Two.\r\n")
    corpus = LJSpeech(root)
    assert [(u.id, u.text) for u in corpus] == [("LJ001-0001", "Goodbye."), ("LJ001-0002", "Two.")]
    assert corpus.skipped == []


def test_bom_in_librispeech_transcript_keeps_the_first_utterance(tmp_path):
    ch = tmp_path / "ls" / "dev-clean" / "19" / "198"
    for n in ("0000", "0001"):
        write_audio(ch / f"19-198-{n}.flac")
    write(ch / "19-198.trans.txt", b"\xef\xbb\xbf19-198-0000 FIRST LINE\n19-198-0001 SECOND LINE\n")
    corpus = LibriSpeech(tmp_path / "ls")
    assert [(u.id, u.text) for u in corpus] == [("19-198-0000", "FIRST LINE"), ("19-198-0001", "SECOND LINE")]
    assert corpus.skipped == []


def test_manifest_of_absolute_paths_keeps_speaker_folders_in_ids(tmp_path):
    data = tmp_path / "absdata"
    files = [write_audio(data / "spk1" / "0001.wav"), write_audio(data / "spk2" / "0001.wav"),
             write_audio(data / "spk1" / "0002.wav")]
    write_audio(tmp_path / "man" / "local" / "0001.wav")
    rows = [{"audio": str(f), "text": "t"} for f in files] + [{"audio": "local/0001.wav", "text": "t"}]
    write(tmp_path / "man" / "train.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    corpus = Folder(tmp_path / "man" / "train.jsonl")
    assert [u.id for u in corpus] == ["spk1_0001", "spk2_0001", "spk1_0002", "local_0001"]
    assert corpus.skipped == []
    write(tmp_path / "man" / "one.jsonl", json.dumps({"audio": str(files[1])}) + "\n")
    assert [u.id for u in Folder(tmp_path / "man" / "one.jsonl")] == ["0001"]
