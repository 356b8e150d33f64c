"""A multi-voice English corpus built offline by one command, in LibriTTS layout with a split.

    build-multivoice-corpus --out runs/data/multivoice            # every installed engine, real speech
    tokenize-corpus libritts --root runs/data/multivoice --subsets train --codec language-codec

    from data_prep.multivoice import build_multivoice_corpus
    result = build_multivoice_corpus("corpus/", engines=["espeak-ng"], real_root=None, asterisk=False,
                                     texts=["sentences.txt"])

Files by role: `engines` (the synthesizers), `whisper` (timed transcripts), `sources` (real clips and
sentences), `split` (who goes where), `builder` (writing, resuming, the record), `cli` (the command).
"""

from .builder import DEFAULT_REAL_ROOT, BuildResult, build_multivoice_corpus
from .engines import ENGINES
from .split import HELD_OUT_LIBRISPEECH, SUBSETS, TEST_SEEN, TEST_UNSEEN, TRAIN

__all__ = ["BuildResult", "DEFAULT_REAL_ROOT", "ENGINES", "HELD_OUT_LIBRISPEECH", "SUBSETS", "TEST_SEEN",
           "TEST_UNSEEN", "TRAIN", "build_multivoice_corpus"]
