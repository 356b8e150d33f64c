"""The multi-voice corpus builder (data_prep.multivoice): layout, split, skipped engines, resuming.

Built once per module from espeak-ng (five voices, a dozen sentences) and a small fake "real" folder whose
transcriber is a stub, so neither Whisper nor apt-get is needed; skipped without espeak-ng.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep.corpora import get_corpus
from data_prep.errors import CorpusError
from data_prep.multivoice import TEST_SEEN, TEST_UNSEEN, TRAIN, build_multivoice_corpus
from data_prep.multivoice.cli import main, summary
from data_prep.multivoice.engines import EspeakNG, Piper
from data_prep.multivoice.sources import Clip, Sentence
from data_prep.multivoice.split import Voice, plan_split
from data_prep.multivoice.whisper import Segment, cut_points, split_in_two
from data_prep.text.normalize import normalize_text

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")

SENTENCES = [
    "The cat sat on the warm mat.", "A small boat drifted past the pier.", "Rain fell on the quiet town.",
    "She paid $25 for the old lamp.", "The river runs down to the sea.", "Open the window before noon.",
    "He read the paper at 7:30.", "Green apples hung from every branch.", "The train left the station late.",
    "Bring two cups and a spoon.", "Snow covered the hills by morning.", "They walked home along the shore.",
]
VOICES = ("en-us+m1", "en-us+f2", "en-gb+m4", "en-gb+f3", "en-gb-scotland+m6")
HELD_REAL = ("87", "89", "8324")
REAL_SPEAKERS = ("87", "89", "8324", "1001", "1002", "1003")
OPTIONS = dict(engines=["espeak-ng", "piper"], asterisk=False, train_sentences=4, test_sentences=2,
               held_out_synthetic=3, held_out_real=HELD_REAL, progress=False)


class FakeASR:
    """Three 1.5 s segments and one 0.4 s segment per file (the last is too short to keep)."""

    name = "fake-asr"

    def __init__(self):
        self.calls = 0

    def __call__(self, audio, sampling_rate):
        self.calls += 1
        return [Segment(0.0, 1.5, "first part here."), Segment(1.5, 3.0, "second part here."),
                Segment(3.0, 4.5, "third part here."), Segment(4.5, 4.9, "oh.")]


def _real_folder(path: Path) -> Path:
    path.mkdir()
    rng = np.random.default_rng(0)
    for n, speaker in enumerate(REAL_SPEAKERS):
        t = np.arange(int(4.9 * 16000)) / 16000
        audio = 0.3 * np.sin(2 * np.pi * (120 + 10 * n) * t) + 0.01 * rng.standard_normal(len(t))
        sf.write(path / f"{speaker}-{100 + n}-0000.flac", audio.astype(np.float32), 16000)
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """(options for build_multivoice_corpus, first BuildResult); piper reported as not installed."""
    tmp = tmp_path_factory.mktemp("multivoice")
    (tmp / "sentences.txt").write_text("# a comment line\n" + "\n".join(SENTENCES) + "\n", encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(EspeakNG, "voices", VOICES)
        mp.setattr(Piper, "missing", lambda self: "piper not installed (test)")
        asr = FakeASR()
        options = dict(OPTIONS, texts=[tmp / "sentences.txt"], real_root=_real_folder(tmp / "real"), transcriber=asr)
        result = build_multivoice_corpus(tmp / "corpus", seed=0, **options)
        yield options, result, asr


def _speakers(record, subset):
    return {u["speaker"] for u in record["utterances"].values() if u["subset"] == subset}


def test_layout_reads_back_through_the_libritts_reader(env):
    _, result, _ = env
    record = result.record
    corpus = get_corpus("libritts", root=result.out)
    utts = list(corpus)
    assert corpus.skipped == []
    assert sorted(corpus.subsets) == sorted([TRAIN, TEST_SEEN, TEST_UNSEEN])
    assert {u.id for u in utts} == set(record["utterances"]) and len(utts) == result.written
    for u in utts:
        entry = record["utterances"][u.id]
        assert (u.speaker, u.extra["subset"]) == (entry["speaker"], entry["subset"])
        audio, sr = sf.read(u.audio)
        assert sr == 16000 and audio.ndim == 1 and abs(len(audio) / sr - entry["duration"]) < 1e-3
        if entry["source"] == "synthetic":
            assert entry["text_source"] == "synthesis input" and u.normalized_text == normalize_text(u.text)
        else:
            assert entry["text_source"] == "automatic (fake-asr)" and u.text.endswith("part here.")
    assert record["complete"] and record["sources"]["librispeech-mini"]["texts"] == "automatic"
    assert record["dropped"]["by_reason"] == {"shorter than 1 s": len(REAL_SPEAKERS)}
    totals = {s: c["utterances"] for s, c in record["counts"].items()}
    assert sum(totals.values()) == len(utts)


def test_split_is_disjoint(env):
    _, result, _ = env
    record = result.record
    train, seen, unseen = (_speakers(record, s) for s in (TRAIN, TEST_SEEN, TEST_UNSEEN))
    held = set(record["held_out_voices"])
    assert unseen == held and not held & (train | seen)
    assert set(HELD_REAL) <= held and len(held - set(HELD_REAL)) == 3           # 3 synthetic voices held out
    assert seen <= train
    train_sentences = {u.get("sentence") for u in record["utterances"].values() if u["subset"] == TRAIN}
    test_sentences = {u.get("sentence") for u in record["utterances"].values()
                      if u["subset"] != TRAIN and u["source"] == "synthetic"}
    assert test_sentences and not (train_sentences - {None}) & test_sentences
    normalized = {u.normalized_text for u in get_corpus("libritts", root=result.out, subsets=TRAIN)}
    assert not normalized & set(record["held_out_sentences"])
    for speaker, voice in record["voices"].items():        # every held-out voice can be prompted cross-sentence
        if voice["held_out"]:
            assert voice["utterances"][TEST_UNSEEN] >= 2


def test_split_is_deterministic_from_the_seed():
    pool = [Sentence(s, normalize_text(s), f"t:{n}") for n, s in enumerate(SENTENCES)]
    voices = [Voice(f"v{n}", "espeak-ng", f"x{n}") for n in range(8)]
    real = [Clip(spk, "1", f"000000_{j:06d}", "a.flac", j, j + 1.5, "words", "automatic (x)", "librispeech-mini")
            for spk in ("87", "1001", "1002") for j in range(3)]

    def plan(seed):
        p = plan_split(pool, voices, real, [], seed, 4, 2, 3, ("87",))
        return [(i.id, i.subset) for i in p.items], p.held_out_voices

    assert plan(0) == plan(0)
    assert len({tuple(plan(seed)[1]) for seed in range(6)}) > 1      # the seed does decide
    items, held = plan(0)
    assert {s for i, s in items if i.startswith("87_")} == {TEST_UNSEEN}
    assert sum(1 for i, s in items if i.startswith("1001_") and s == TEST_SEEN) == 1
    # the Asterisk speaker reads the pool's sentences: a held-out one goes to test-seen-voices, never to train
    asterisk = [Clip("asterisk-allison", "1", f"{n:06d}_000000", "p.wav", 0.0, 2.0, s, "verbatim", "asterisk")
                for n, s in enumerate(SENTENCES)]
    p = plan_split(pool, voices, [], asterisk, 0, 4, 2, 3)
    held_out = {pool[i].normalized for i in p.held_out_sentences}
    spoken = {(i.subset, i.original) for i in p.items if i.source == "asterisk"}
    assert spoken == {(TEST_SEEN if normalize_text(s) in held_out else TRAIN, s) for s in SENTENCES} and len(held_out) == 2


def test_missing_engine_is_skipped_and_reported(env, capsys):
    _, result, _ = env
    engines = result.record["engines"]
    assert engines["used"] == ["espeak-ng"] and engines["skipped"] == {"piper": "piper not installed (test)"}
    assert "skipped piper: piper not installed (test)" in summary(result.record, 0, 0, result.out)


def test_resumed_build_redoes_nothing(env):
    options, result, asr = env
    calls = asr.calls
    files = sorted(result.out.rglob("*.wav"))
    stamps = {p: p.stat().st_mtime_ns for p in files}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(EspeakNG, "voices", VOICES)
        mp.setattr(Piper, "missing", lambda self: "piper not installed (test)")
        again = build_multivoice_corpus(result.out, seed=0, **options)
        assert (again.written, again.reused) == (0, result.written) and asr.calls == calls
        assert {p: p.stat().st_mtime_ns for p in files} == stamps
        # an interrupted run: one wav never renamed into place
        victim = files[0]
        victim.rename(victim.with_name(victim.name + ".partial"))
        again = build_multivoice_corpus(result.out, seed=0, **options)
        assert (again.written, again.reused) == (1, result.written - 1) and victim.is_file()
        assert json.loads((result.out / "split.json").read_text())["counts"] == result.record["counts"]
        with pytest.raises(CorpusError, match=r"was built with seed=0 \(now 1\): re-run"):
            build_multivoice_corpus(result.out, seed=1, **options)
        mp.setattr(EspeakNG, "voices", VOICES[:4])                # one voice no longer installed
        with pytest.raises(CorpusError, match=r"voices \['espeak-en-gb-scotland-m6'\] that are not usable now"):
            build_multivoice_corpus(result.out, seed=0, **options)
        mp.setattr(EspeakNG, "voices", VOICES)
        stray = result.out / ".cache" / "x" / "y"               # a folder the libritts reader would take for a subset
        stray.mkdir(parents=True)
        sf.write(stray / "a.wav", np.zeros(1600, np.float32), 16000)
        with pytest.raises(CorpusError, match=r"sees subsets \['.cache'"):
            build_multivoice_corpus(result.out, seed=0, **options)
        shutil.rmtree(result.out / ".cache" / "x")


def test_engine_that_writes_nothing_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(EspeakNG, "voices", VOICES[:2])
    monkeypatch.setattr(EspeakNG, "synthesize", lambda self, voice, text, path: None)
    (tmp_path / "s.txt").write_text("\n".join(SENTENCES[:4]), encoding="utf-8")
    with pytest.raises(CorpusError, match="espeak-ng voice .* wrote no usable audio"):
        build_multivoice_corpus(tmp_path / "c", engines=["espeak-ng"], real_root=None, asterisk=False,
                                texts=[tmp_path / "s.txt"], train_sentences=2, test_sentences=1,
                                held_out_synthetic=1, progress=False)


def test_cli_builds_and_ends_bad_input_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(EspeakNG, "voices", VOICES[:2])
    (tmp_path / "s.txt").write_text("\n".join(SENTENCES[:4]), encoding="utf-8")
    args = ["--out", str(tmp_path / "c"), "--engines", "espeak-ng", "--no-asterisk", "--texts", str(tmp_path / "s.txt"),
            "--train-sentences", "2", "--test-sentences", "1", "--held-out-synthetic", "1", "--no-progress"]
    assert main(args + ["--no-real"]) == 0
    out = capsys.readouterr().out
    assert "4 utterances written" in out and "engines used: espeak-ng" in out
    for bad, message in ((["--real-root", str(tmp_path / "nowhere")], "does not exist"),
                         (["--no-real", "--engines", "espeak-ng,nope"], "unknown synthesis engine 'nope'")):
        assert main(args + bad) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("build-multivoice-corpus: error:") and message in err[0]


def test_cuts_fall_in_the_pause_next_to_whisper_boundaries():
    sr = 16000
    t = np.arange(3 * sr) / sr
    audio = (0.5 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    audio[int(1.40 * sr):int(1.60 * sr)] = 0.0                        # the pause between two words
    cuts = cut_points([Segment(0.0, 1.3, "a"), Segment(1.3, 3.0, "b")], audio, sr)
    assert 1.40 <= cuts[0][1] == cuts[1][0] <= 1.60 and cuts[0][0] == 0.0 and cuts[1][1] == 3.0


def test_a_recording_in_one_segment_is_cut_at_a_word_boundary():
    words = ((0.0, 1.0, " One"), (1.0, 2.0, " two,"), (2.0, 3.5, " three"), (3.6, 5.0, " four"), (5.0, 7.0, " five."))
    seg = Segment(0.0, 7.0, "One two, three four five.", words)
    head, tail = split_in_two(seg, 1.5)                                 # after the comma, not at the 0.1 s pause
    assert (head.text, tail.text, head.end, tail.start) == ("One two,", "three four five.", 2.0, 2.0)
    head, tail = split_in_two(seg, 2.5)                                 # the comma leaves too little: the pause
    assert (head.text, tail.text) == ("One two, three", "four five.")
    assert split_in_two(seg, 4.0) == [seg] and split_in_two(Segment(0.0, 7.0, "x"), 1.0) == [Segment(0.0, 7.0, "x")]
