"""Text front-end: normalisation, phonemization, phoneme vocabulary, optional sentencepiece.

Import the submodule you need; nothing heavy is imported here.
"""
