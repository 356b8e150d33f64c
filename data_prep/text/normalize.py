"""English text normalisation for TTS: spell out numbers and abbreviations, make punctuation ASCII.

Numbers are read by `num2words`; the patterns that find them are ours, because the full
normalisers (NeMo text processing, WeTextProcessing) need pynini/OpenFst and a large grammar build,
which is far too heavy for a data-prep dependency. The rules, in order:

- Unicode compatibility forms are folded (NFKC: "…" -> "...", full-width digits, ligatures), curly
  quotes become `"` / `'`, an en dash between digits becomes " to ", an em dash (or a spaced
  dash / "--") becomes a comma pause, other dashes a hyphen.
- Abbreviations: titles (Mr., Mrs., Dr., Prof., Capt., ...), "St." (Saint before a capitalised
  word, Street otherwise or after one: "Baker St."), "No." and "#" before a number, Jr., Inc., etc.,
  e.g., i.e., vs. A period that also ended the sentence (end of text, or a non-title followed by
  a capitalised word) is kept.
- Numbers: digit-group commas are dropped; currency ($, £, €, with an optional million/billion),
  percentages, ordinals (1st, 22nd), clock times (10:30, 9:05, 6:00), decades (1990s), years
  (a bare 1100-2099), decimals, then cardinals; digit strings with a leading zero or more than
  twelve digits are read digit by digit. num2words' commas ("one thousand, two hundred") are
  dropped so they do not become pauses; its hyphens ("thirty-four") are kept.
- Whitespace is collapsed and spaces before punctuation removed. Sentence punctuation is kept.

Any other language: whitespace is collapsed and the text is otherwise returned unchanged.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal

from num2words import num2words

_WS = re.compile(r"\s+")

_CHAR_MAP = str.maketrans({
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2039": "'", "\u203a": "'",
    "\u2032": "'", "\u2033": '"', "\u00b4": "'", "`": "'",
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2212": "-",
})
_RANGE_DASH = re.compile(r"(?<=\d)\s*[\u2013\u2014]\s*(?=\d)")
_PAUSE_DASH = re.compile(r"\s*[\u2014\u2015]\s*|\s+[\u2013-]+\s+|\s*--+\s*")

# "<abbreviation>." -> words (case-sensitive). Titles always precede a name, so their period never
# ends a sentence unless the text ends there; the others may end one ("..., etc. The next").
TITLES = {
    "Mr": "Mister", "Mrs": "Missus", "Ms": "Miz", "Messrs": "Messieurs", "Dr": "Doctor",
    "Drs": "Doctors", "Prof": "Professor", "Capt": "Captain", "Col": "Colonel", "Gen": "General",
    "Gov": "Governor", "Lt": "Lieutenant", "Maj": "Major", "Sgt": "Sergeant", "Rev": "Reverend",
    "Hon": "Honorable", "Mt": "Mount", "Ft": "Fort",
}
ABBREVIATIONS = {
    **TITLES,
    "Jr": "Junior", "Sr": "Senior", "Esq": "Esquire", "Co": "Company", "Ltd": "Limited",
    "Inc": "Incorporated", "Bros": "Brothers", "etc": "et cetera", "vs": "versus",
    "e.g": "for example", "i.e": "that is", "St": "Street",
}
_ABBREV = re.compile(
    r"(?<![\w.])(" + "|".join(re.escape(k) for k in sorted(ABBREVIATIONS, key=len, reverse=True)) + r")\.(?=\W|$)"
)
_NUMBER_ABBREV = re.compile(r"(?<![\w.])(?:No\.|no\.|#)\s*(?=\d)")
_CAPITALISED_BEFORE = re.compile(r"\b[A-Z][a-z]*\s+$")
_CAPITALISED_AFTER = re.compile(r"\s+[A-Z]")

_CURRENCIES = {  # symbol -> (unit, units, subunit, subunits)
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
}
_SCALES = "thousand|million|billion|trillion"
_DIGIT_GROUPS = re.compile(r"(?<![\d.])\d{1,3}(?:,\d{3})+(?![\d])")
_CURRENCY = re.compile(r"([$£€])\s?(\d+)(?:\.(\d+))?(?:\s?(" + _SCALES + r")\b)?")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s?%")
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b")
_TIME = re.compile(r"\b([01]?\d|2[0-3]):([0-5]\d)\b")
_DECADE = re.compile(r"\b(1[1-9]|20)(\d0)s\b")
_YEAR = re.compile(r"(?<![\d.,])(1[1-9]\d\d|20\d\d)(?![\d]|\.\d)")
_DECIMAL = re.compile(r"(?<![\d.])(\d+\.\d+)(?![\d])")
_CARDINAL = re.compile(r"\d+")
MAX_CARDINAL_DIGITS = 12
# Bump when a rule changes what `normalize_text` returns: token shards record it, and a resume refuses
# finished shards normalised by another version.
NORMALIZER_VERSION = 1
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?])")
_REPEATED_COMMA = re.compile(r",(\s*,)+")


def is_english(language: str) -> bool:
    """True for "en", "en-us", "en_GB", "English"..."""
    code = language.strip().lower().replace("_", "-")
    return code.split("-")[0] in ("en", "eng", "english")


def normalize_text(text: str, language: str = "en") -> str:
    """Spell out `text` for TTS (English; see the module docstring). Other languages: only
    whitespace is cleaned."""
    if not is_english(language):
        return _WS.sub(" ", text).strip()
    text = unicodedata.normalize("NFKC", text).translate(_CHAR_MAP)
    text = _RANGE_DASH.sub(" to ", text)
    text = _PAUSE_DASH.sub(", ", text)
    text = text.replace("\u2013", "-")
    text = _WS.sub(" ", text).strip()
    text = expand_abbreviations(text)
    text = expand_numbers(text)
    text = _REPEATED_COMMA.sub(",", text)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    return _WS.sub(" ", text).strip(" ,")


def expand_abbreviations(text: str) -> str:
    """"Dr. Smith lives on Baker St." -> "Doctor Smith lives on Baker Street."; "No. 5", "#5" ->
    "number 5"; "St." is "Saint" before a capitalised word unless one precedes it ("Baker St.")."""
    text = _NUMBER_ABBREV.sub("number ", text)
    return _ABBREV.sub(_abbreviation, text)


def _abbreviation(m: re.Match) -> str:
    key, before, after = m.group(1), m.string[: m.start()], m.string[m.end():]
    if not after.strip():
        return ABBREVIATIONS[key] + "."  # it ended the text: keep the sentence's period
    next_is_capital = _CAPITALISED_AFTER.match(after) is not None
    if key == "St" and next_is_capital and not _CAPITALISED_BEFORE.search(before):
        return "Saint"
    if key not in TITLES and next_is_capital:
        return ABBREVIATIONS[key] + "."
    return ABBREVIATIONS[key]


def expand_numbers(text: str) -> str:
    """Spell out every number: "$3.50" -> "three dollars and fifty cents", "21st" ->
    "twenty-first", "1990s" -> "nineteen nineties", "in 1984" -> "in nineteen eighty-four",
    "3.14" -> "three point one four", "12,000" -> "twelve thousand"."""
    text = _DIGIT_GROUPS.sub(lambda m: m.group(0).replace(",", ""), text)
    text = _CURRENCY.sub(_currency, text)
    text = _PERCENT.sub(lambda m: f"{_number(m.group(1))} percent", text)
    text = _ORDINAL.sub(lambda m: _words(int(m.group(1)), to="ordinal"), text)
    text = _TIME.sub(_time, text)
    text = _DECADE.sub(_decade, text)
    text = _YEAR.sub(lambda m: _words(int(m.group(1)), to="year"), text)
    text = _DECIMAL.sub(lambda m: _number(m.group(1)), text)
    return _CARDINAL.sub(_cardinal, text)


def _words(value: int | Decimal, to: str = "cardinal") -> str:
    return num2words(value, lang="en", to=to).replace(",", "")


def _number(digits: str) -> str:
    return _words(Decimal(digits)) if "." in digits else _words(int(digits))


def _cardinal(m: re.Match) -> str:
    # "3D", "MP3": keep the spelled number a separate word from the letters it was glued to.
    s, start, end = m.string, m.start(), m.end()
    before = " " if start > 0 and s[start - 1].isalpha() else ""
    after = " " if end < len(s) and s[end].isalpha() else ""
    digits = m.group(0)
    if len(digits) > MAX_CARDINAL_DIGITS or (len(digits) > 1 and digits[0] == "0"):
        # Codes, phone and serial numbers ("007", a 16-digit card number) are read digit by digit.
        return before + " ".join(_words(int(d)) for d in digits) + after
    return before + _words(int(digits)) + after


def _currency(m: re.Match) -> str:
    # Composed from cardinals rather than num2words' currency mode, which reads an integer as
    # cents, always says "zero cents" and names "pounds sterling".
    unit, units, subunit, subunits = _CURRENCIES[m.group(1)]
    whole, frac, scale = m.group(2), m.group(3), m.group(4)
    if scale:  # "$2.5 million" -> "two point five million dollars"
        return f"{_number(whole + ('.' + frac if frac else ''))} {scale} {units}"
    if frac and len(frac) > 2:
        return f"{_number(whole + '.' + frac)} {units}"
    dollars, cents = int(whole), int(frac.ljust(2, "0")) if frac else 0
    parts = []
    if dollars or not cents:
        parts.append(f"{_words(dollars)} {unit if dollars == 1 else units}")
    if cents:
        parts.append(f"{_words(cents)} {subunit if cents == 1 else subunits}")
    return " and ".join(parts)


def _time(m: re.Match) -> str:
    hour, minute = int(m.group(1)), int(m.group(2))
    if minute == 0:
        return f"{_words(hour)} o'clock"
    return f"{_words(hour)} {'oh ' if minute < 10 else ''}{_words(minute)}"


def _decade(m: re.Match) -> str:
    words = _words(int(m.group(1) + m.group(2)), to="year")
    return words[:-1] + "ies" if words.endswith("y") else words + "s"
