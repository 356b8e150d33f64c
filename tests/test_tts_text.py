"""The TTS text front-end: the model's vocabulary, one-line errors naming the phoneme or text."""

import logging
import shutil

import pytest

from data_prep.sample_corpus import SAMPLE_ROOT
from data_prep.text.phonemize import phonemize
from data_prep.text.vocab import PhonemeVocab
from tts.errors import TTSError
from tts.text import TextFrontend

HAS_ESPEAK = shutil.which("espeak-ng") is not None or shutil.which("espeak") is not None
pytestmark = pytest.mark.skipif(not HAS_ESPEAK, reason="needs espeak-ng")

LINES = [p.read_text().strip() for p in sorted((SAMPLE_ROOT / "sample" / "9000" / "1").glob("*.normalized.txt"))]


@pytest.fixture(scope="module")
def frontend():
    return TextFrontend(PhonemeVocab.build(phonemize(LINES)))


def test_encodes_corpus_text_with_the_corpus_vocabulary(frontend):
    ids = frontend.encode(["Please try again."])[0]
    assert ids == frontend.vocab.encode(phonemize(["Please try again."])[0])
    assert frontend.vocab.unk_id not in ids and frontend.word_boundary_id in ids
    assert frontend.vocab.index["."] == ids[-1]  # punctuation survives
    joined = frontend.join([10, 11], [12])
    assert joined == [10, 11, frontend.word_boundary_id, 12]


def test_bad_text_names_the_value(frontend):
    with pytest.raises(TTSError, match="empty text ''"):
        frontend.encode([""])
    with pytest.raises(TTSError, match=r"text '\.\.\. !' phonemizes to nothing"):
        frontend.encode(["... !"])
    with pytest.raises(TTSError, match="phoneme 'ʒ' .*'measure'.* is not in the model's phoneme vocabulary"):
        frontend.encode(["measure"])


def test_sample_corpus_phonemizes_without_word_count_warnings(caplog):
    with caplog.at_level(logging.WARNING):
        out = phonemize(LINES)
    assert not [r for r in caplog.records if "words count mismatch" in r.getMessage()]
    assert [len(o.split(" ")) for o in out] == [len(t.split()) for t in LINES]  # word boundaries survive
