"""Corpus readers and the text front-end that feed `tokenize-corpus`.

Kept import-light on purpose: import the submodule you need (`data_prep.corpora`, `data_prep.text`).
"""
