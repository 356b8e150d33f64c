"""Text front-end: normaliser cases, phonemizer (needs espeak-ng), phoneme vocabulary, sentencepiece."""

from __future__ import annotations

import json
import shutil

import pytest

from data_prep.errors import CorpusError
from data_prep.text import phonemize as phonemize_module
from data_prep.text.normalize import normalize_text
from data_prep.text.phonemize import phonemize
from data_prep.text.spm import load_sentencepiece, train_sentencepiece
from data_prep.text.vocab import PhonemeVocab, join_phones, split_phones

requires_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install espeak-ng)")


@pytest.mark.parametrize("text, expected", [
    ("Mr. Smith paid $3.50 for the 2nd book.", "Mister Smith paid three dollars and fifty cents for the second book."),
    ("Dr. Jones lives at 221 Baker St.", "Doctor Jones lives at two hundred and twenty-one Baker Street."),
    ("We met at St. Paul's in 1984.", "We met at Saint Paul's in nineteen eighty-four."),
    ("It rose 12.5% in the 1990s \u2014 a record.", "It rose twelve point five percent in the nineteen nineties, a record."),
    ("Pages 10\u201320 of \u201cThe Book\u201d\u2026", 'Pages ten to twenty of "The Book"...'),
    ("\u2018Tis 1,000,000 people, i.e. a lot.", "'Tis one million people, that is a lot."),
    ("$2.5 million, $1, $0.99 and \u00a37.05", "two point five million dollars, one dollar, ninety-nine cents and seven pounds and five pence"),
    ("Apples, pears, etc. The end", "Apples, pears, et cetera. The end"),
    ("In 2005 vs. 1905: No. 3 and #4 were 21st.", "In two thousand and five versus nineteen oh-five: number three and number four were twenty-first."),
    ("3.14 is pi;   MP3  files , too !", "three point one four is pi; MP three files, too!"),
    ("wait -- what - yes", "wait, what, yes"),
    ("At 10:30, 9:05 or 6:00, call 007 or 1234567890123.",
     "At ten thirty, nine oh five or six o'clock, call zero zero seven or one two three four five six seven eight nine zero one two three."),
])
def test_normalize_english(text, expected):
    assert normalize_text(text) == expected
    assert normalize_text(text, language="en-us") == expected


def test_normalize_other_languages_only_cleans_whitespace():
    assert normalize_text("  Il a 3 ans,\n\tM. Dupont ! ", language="fr-fr") == "Il a 3 ans, M. Dupont !"
    assert normalize_text("Er ist 3.", language="de") == "Er ist 3."


@requires_espeak
def test_phonemize_batches_and_failures():
    texts = ["Hello, world!", "", "Paid 3.50 now.", "The cat sat.", "Bonjour le monde."]
    out = phonemize(texts, ["en-us"] * 4 + ["fr-fr"])
    assert len(out) == 5 and out[1] is None  # empty text -> None, not a crash
    hello = out[0].split(" ")
    assert len(hello) == 2 and hello[0].endswith(",") and hello[1].endswith("!")
    assert "ˈ" in out[0] and "|" in out[0]
    # "3.50" makes espeak split its line in two; the other results must still land on their own text.
    assert out[3] == phonemize(["The cat sat."])[0] and out[3].endswith(".")
    assert out[2] and out[2].startswith("p|ˈeɪ|d")
    assert out[4] == phonemize(["Bonjour le monde."], "fr-fr")[0] != phonemize(["Bonjour le monde."])[0]
    assert phonemize_module.get_backend("en-us") is phonemize_module.get_backend("en-us")  # built once
    with pytest.raises(CorpusError, match="cannot phonemize language 'xx-nope'"):
        phonemize(["text"], "xx-nope")
    with pytest.raises(CorpusError, match="got 2 texts but 1 languages"):
        phonemize(["a", "b"], ["en-us"])


def test_phonemize_without_espeak_says_how_to_install(monkeypatch):
    pytest.importorskip("phonemizer")
    from phonemizer.backend import EspeakBackend

    monkeypatch.setattr(EspeakBackend, "is_available", classmethod(lambda cls: False))
    phonemize_module.get_backend.cache_clear()
    try:
        with pytest.raises(CorpusError, match="apt-get install espeak-ng"):
            phonemize(["hello"], "en-us")
    finally:
        phonemize_module.get_backend.cache_clear()


PHONEMES = ["h|ə|l|ˈoʊ, w|ˈɜː|l|d!", 'ʃ|iː s|ˈɛ|d "j|ˈɛ|s" — t|w|ˈaɪ|s.', "ð|ə k|ˈæ|t"]


def test_split_and_join_phones():
    assert split_phones(PHONEMES[0]) == ["h", "ə", "l", "ˈoʊ", ",", " ", "w", "ˈɜː", "l", "d", "!"]
    assert split_phones(PHONEMES[1])[6:12] == [" ", '"', "j", "ˈɛ", "s", '"']
    for p in PHONEMES:
        assert join_phones(split_phones(p)) == p


def test_vocab_round_trip_and_json(tmp_path):
    vocab = PhonemeVocab.build(PHONEMES + [None])
    assert vocab.tokens[:5] == ["<pad>", "<unk>", "<bos>", "<eos>", " "]
    assert (vocab.pad_id, vocab.unk_id, vocab.bos_id, vocab.eos_id) == (0, 1, 2, 3)
    assert len(vocab) == 5 + len({t for p in PHONEMES for t in split_phones(p)} - {" "})
    for p in PHONEMES:
        ids = vocab.encode(p, add_bos_eos=True)
        assert ids[0] == 2 and ids[-1] == 3 and 1 not in ids
        assert vocab.decode(ids) == p
    assert vocab.encode("h|ʒ") == [vocab.index["h"], vocab.unk_id]
    assert vocab.decode(vocab.encode("h|ʒ")) == "h|<unk>"
    path = vocab.save(tmp_path)
    assert path == tmp_path / "phonemes.json"
    assert json.loads(path.read_text(encoding="utf-8"))["version"] == 1
    loaded = PhonemeVocab.load(tmp_path)
    assert loaded.tokens == vocab.tokens and loaded.encode(PHONEMES[1]) == vocab.encode(PHONEMES[1])
    with pytest.raises(CorpusError, match="phoneme id 999 is outside the vocabulary"):
        vocab.decode([999])
    (tmp_path / "other.json").write_text('{"tokens": []}')
    with pytest.raises(CorpusError, match="other.json is not a phoneme vocabulary"):
        PhonemeVocab.load(tmp_path / "other.json")
    with pytest.raises(CorpusError, match="cannot read phoneme vocabulary"):
        PhonemeVocab.load(tmp_path / "missing.json")


@requires_espeak
def test_vocab_from_phonemizer_output_round_trips():
    out = phonemize(["Doctor Smith paid three dollars (in cash); really?", "Yes \u2014 twice!"])
    vocab = PhonemeVocab.build(out)
    for p in out:
        assert vocab.decode(vocab.encode(p)) == p


def test_sentencepiece_train_and_encode(tmp_path):
    pytest.importorskip("sentencepiece")
    subjects = ["the cat", "a dog", "my friend", "the teacher", "our neighbour", "the old man"]
    verbs = ["walks to", "looks at", "talks about", "waits for", "thinks of"]
    objects = ["the station", "a red house", "the river"]
    texts = [f"{s} {v} {o}." for s in subjects for v in verbs for o in objects][:30]
    model_path = train_sentencepiece(texts, tmp_path / "spm" / "text", vocab_size=120)
    assert model_path == tmp_path / "spm" / "text.model" and model_path.is_file()
    sp = load_sentencepiece(model_path)
    assert 20 < sp.get_piece_size() <= 120
    assert (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) == (0, 1, 2, 3)
    ids = sp.encode("the cat talks about the river.")
    assert ids and sp.unk_id() not in ids
    assert sp.decode(ids) == "the cat talks about the river."
    with pytest.raises(CorpusError, match="no text to train"):
        train_sentencepiece(["", "  "], tmp_path / "empty")
    with pytest.raises(CorpusError, match="sentencepiece model not found"):
        load_sentencepiece(tmp_path / "nope.model")
