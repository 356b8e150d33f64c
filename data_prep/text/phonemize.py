"""Text -> IPA phonemes with `phonemizer`'s espeak-ng backend, batched per language.

Output format (what `vocab.split_phones` reads): words separated by `WORD_SEPARATOR` (" "),
phones inside a word by `PHONE_SEPARATOR` ("|"), stress marks kept on their vowel, sentence
punctuation kept and attached to the word it follows:

    "Hello, world!" -> "h|ə|l|ˈoʊ, w|ˈɜː|l|d!"

Each word is phonemized on its own (one batch for all words of all texts), so the output has exactly one
phoneme word per input word, and the same word always gets the same phones.

Needs the Debian/Ubuntu package `espeak-ng` (`apt-get install espeak-ng`; macOS: `brew install espeak-ng`).
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Sequence

from ..errors import CorpusError

logger = logging.getLogger(__name__)

PHONE_SEPARATOR = "|"
WORD_SEPARATOR = " "
# phonemizer's default marks, passed explicitly so that `vocab.split_phones` splits on the same set.
PUNCTUATION = ';:,.!?¡¿—…"«»“”(){}[]'

_WS = re.compile(r"\s+")


def espeak_available() -> bool:
    """Whether phonemizer can load the espeak-ng library."""
    from phonemizer.backend import EspeakBackend

    return bool(EspeakBackend.is_available())


@functools.lru_cache(maxsize=None)
def get_backend(language: str = "en-us"):
    """The espeak backend for `language`, built once per language and reused (building one starts
    espeak-ng and takes a noticeable fraction of a second).

    Raises `CorpusError` when espeak-ng is not installed or does not know `language`.
    """
    from phonemizer.backend import EspeakBackend

    if not espeak_available():
        raise CorpusError(
            "phonemization needs espeak-ng, which is not installed: apt-get install espeak-ng "
            "(macOS: brew install espeak-ng)"
        )
    try:
        return EspeakBackend(
            language,
            punctuation_marks=PUNCTUATION,
            preserve_punctuation=True,
            with_stress=True,
            language_switch="remove-flags",
            # Texts go to espeak one word per line (see `phonemize`), so a count mismatch would be a
            # real anomaly: log it rather than drop the utterance.
            words_mismatch="warn",
            logger=logger,
        )
    except RuntimeError as exc:  # "language ... is not supported by the espeak backend"
        raise CorpusError(f"espeak-ng cannot phonemize language {language!r}: {exc}") from exc


def phonemize(texts: Sequence[str], language: str | Sequence[str] = "en-us") -> list[str | None]:
    """Phonemize `texts` (ideally already normalised) -> one phoneme string per text, in order.

    language: one espeak code for all texts, or one per text; each language is sent to espeak as
    one batch. An empty text, or one whose phonemization fails or comes back empty, gives None
    (and a log warning) rather than an exception.
    """
    languages = [language] * len(texts) if isinstance(language, str) else list(language)
    if len(languages) != len(texts):
        raise CorpusError(f"got {len(texts)} texts but {len(languages)} languages")
    out: list[str | None] = [None] * len(texts)
    groups: dict[str, list[int]] = {}
    for i, (text, lang) in enumerate(zip(texts, languages)):
        if text and text.strip():
            groups.setdefault(lang, []).append(i)
    for lang, indices in groups.items():
        backend = get_backend(lang)
        # Word by word, in one batch: espeak joins words of a sentence ("I am" -> one word "aɪɐm", "does
        # not"), which loses word boundaries and makes phonemizer log "words count mismatch"; its
        # maintainers say it cannot be fixed at their level (bootphon/phonemizer #72, #172). Per word, every
        # word keeps its boundary and always gets the same phones (as a pronunciation lexicon gives them),
        # at the cost of citation forms for weak words ("a" -> "eɪ"), the same at training and synthesis.
        words = [_WS.sub(" ", texts[i]).strip().split(" ") for i in indices]
        flat = _phonemize_batch(backend, [w for ws in words for w in ws])
        pos = 0
        for i, ws in zip(indices, words):
            phones = WORD_SEPARATOR.join(p for p in flat[pos : pos + len(ws)] if p) or None
            pos += len(ws)
            if not phones:
                logger.warning("phonemization of %r (%s) failed or came back empty", texts[i], lang)
            out[i] = phones or None
    return out


def _phonemize_batch(backend, texts: list[str]) -> list[str | None]:
    from phonemizer.separator import Separator

    separator = Separator(phone=PHONE_SEPARATOR, word=WORD_SEPARATOR)
    try:
        lines = backend.phonemize(texts, separator=separator, strip=True, njobs=1)
    except Exception as exc:  # espeak/phonemizer raise RuntimeError, ValueError...; never crash a run
        logger.debug("batch of %d failed (%s); retrying one by one", len(texts), exc)
        lines = None
    if lines is not None and len(lines) == len(texts):
        return [line.strip() or None for line in lines]
    if len(texts) == 1:
        # espeak sometimes splits one input into several lines (e.g. at "3.50"): they are still the
        # phonemes of this one text, in order.
        return [WORD_SEPARATOR.join(x.strip() for x in lines if x.strip()) or None] if lines else [None]
    # The batch came back misaligned (one text turned into several lines): redo it text by text so
    # every result lands on its own text.
    return [_phonemize_batch(backend, [t])[0] for t in texts]
