"""A Hugging Face `datasets` dataset: a folder written by `save_to_disk`, or anything `load_dataset`
reads (a local data folder, or a hub name when online).

Audio is never decoded through `datasets` (its decoder needs torchcodec): the audio column is cast
to `datasets.Audio(decode=False)` and each utterance carries the encoded file's bytes, or its path
when the dataset stores only a path. `tokenizer.audio.load_audio` reads either.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

from ..errors import CorpusError
from .base import DEFAULT_LANGUAGE, Corpus, Utterance

DEFAULT_SPEAKER = "default"
_BATCH = 256


class HFDataset(Corpus):
    """Utterances of one split of a `datasets` dataset, in dataset order.

    split: needed when the dataset has several splits (ignored for a saved single Dataset). audio_column / text_column / speaker_column /
    id_column: column names (text_column=None for audio-only data; without id_column an `id`
    column is used if present, else the row index as "%08d"). Rows with no text get `text=""`;
    rows whose audio has neither bytes nor an existing path are skipped.
    """

    name = "hf"

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | None = None,
        audio_column: str = "audio",
        text_column: str | None = "text",
        speaker_column: str | None = None,
        id_column: str | None = None,
        language: str = DEFAULT_LANGUAGE,
    ) -> None:
        super().__init__(root, language)
        self.source = str(root)
        self.split = split
        self.dataset = self._load()
        columns = list(self.dataset.column_names)
        if id_column is None and "id" in columns:
            id_column = "id"
        wanted = {"audio_column": audio_column, "text_column": text_column,
                  "speaker_column": speaker_column, "id_column": id_column}
        for arg, column in wanted.items():
            if column is not None and column not in columns:
                raise CorpusError(
                    f"dataset {self.source} has no column {column!r} ({arg}); columns: {', '.join(columns)}"
                )
        self.audio_column, self.text_column = audio_column, text_column
        self.speaker_column, self.id_column = speaker_column, id_column

    def _load(self):
        import datasets  # heavy import, only when this corpus is used

        path = self.root
        # A path-like root that does not exist must fail here: handing it to load_dataset would
        # make it try the hub, which is slow and misleading offline.
        looks_local = path.is_absolute() or self.source.startswith((".", "~")) or path.exists()
        if looks_local and not path.exists():
            raise CorpusError(
                f"hf dataset path {path} does not exist; expected a folder written by "
                "Dataset.save_to_disk, a data folder load_dataset can read, or a hub dataset name"
            )
        try:
            if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
                ds = datasets.load_from_disk(str(path))
            else:
                ds = datasets.load_dataset(self.source, split=self.split)
        except Exception as exc:  # datasets raises many unrelated types for "cannot load"
            raise CorpusError(f"cannot load hf dataset {self.source!r}: {type(exc).__name__}: {exc}") from exc
        if isinstance(ds, datasets.DatasetDict):
            splits = sorted(ds)
            if self.split is None and len(splits) == 1:
                self.split = splits[0]
            if self.split not in ds:
                what = "has several splits; pass split=" if self.split is None else f"has no split {self.split!r};"
                raise CorpusError(f"dataset {self.source} {what} available: {', '.join(splits)}")
            ds = ds[self.split]
        if not isinstance(ds, datasets.Dataset):
            raise CorpusError(f"hf dataset {self.source!r} is a {type(ds).__name__}; expected a map-style Dataset")
        return ds

    def _utterances(self) -> Iterator[Utterance]:
        import datasets

        ds = self.dataset
        if isinstance(ds.features[self.audio_column], datasets.Audio):
            ds = ds.cast_column(self.audio_column, datasets.Audio(decode=False))
        columns = [c for c in (self.audio_column, self.text_column, self.speaker_column, self.id_column) if c]
        ds = ds.select_columns(list(dict.fromkeys(columns)))
        index = 0
        for batch in ds.iter(batch_size=_BATCH):
            for i in range(len(batch[self.audio_column])):
                row = {c: batch[c][i] for c in batch}
                utt = self._utterance(index, row)
                if utt is not None:
                    yield utt
                index += 1

    def _utterance(self, index: int, row: dict[str, Any]) -> Utterance | None:
        uid = str(row[self.id_column]) if self.id_column else f"{index:08d}"
        audio, path = _audio_of(row[self.audio_column])
        if audio is None and path:
            local = Path(path) if Path(path).is_absolute() else self.root / path
            audio = str(local) if local.is_file() else None
        if audio is None:
            self._skip(f"{self.source}[{index}] ({uid})", f"row has no audio bytes and no readable path ({path})")
            return None
        text = row[self.text_column] if self.text_column else None
        speaker = row[self.speaker_column] if self.speaker_column else None
        return Utterance(
            id=uid,
            audio=audio,
            text="" if text is None else str(text).strip(),
            normalized_text=None,
            speaker=DEFAULT_SPEAKER if speaker is None else str(speaker),
            language=self.language,
            extra={"index": index, "split": self.split, "path": path},
        )


def _audio_of(value: Any) -> tuple[bytes | None, str | None]:
    """An undecoded audio cell (`{"bytes", "path"}` dict, or a plain path string) -> (bytes, path)."""
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
        return (bytes(data) if data else None), path
    if isinstance(value, str):
        return None, value
    return None, None
