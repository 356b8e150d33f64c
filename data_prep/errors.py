"""Errors a user can cause while preparing a corpus."""

from tokenizer.utils.errors import CodecError


class CorpusError(CodecError):
    """A corpus that cannot be used as given: a missing or wrongly laid out root, an unknown corpus
    or subset name, a missing column, a missing system dependency (espeak-ng).

    The message names the offending path or value and what was expected.
    """
