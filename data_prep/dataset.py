"""Readers for token shards (format in ``data_prep.shards``): a torch dataset, padding and length bucketing.

``TokenShardDataset`` yields one dict per utterance::

    {"id": str, "codes": LongTensor (K, F), "phoneme_ids": LongTensor (P,) or None, "record": dict}

and ``collate_codes`` pads a list of them into a batch (``codes``, ``lengths``, ``mask`` as in
``tokenizer.CodecEncoding``; ``phoneme_ids``, ``phoneme_lengths``, ``phoneme_mask``). ``DurationBucketBatcher`` groups utterances of
similar length into batches bounded by padded frames; use it with ``DataLoader(batch_size=None)``::

    ds = TokenShardDataset("out/", codec=tok, shuffle=True, max_frames=1500)   # verify=True: sha256 too
    batches = DurationBucketBatcher(ds, max_frames_per_batch=20_000)
    loader = DataLoader(batches, batch_size=None, num_workers=2, collate_fn=collate_codes)

The same shards load with Hugging Face ``datasets`` (offline, local files)::

    from data_prep.shards import shard_paths        # tars of the manifest that hold samples
    ds = datasets.load_dataset("webdataset", data_files={"train": shard_paths("out/")}, split="train")
    ds[0]["json"]["text"]; ds[0]["__key__"]                # the record is a dict, the key a str
    ds.with_format("numpy")[0]["codes.npy"]                # (K, F) array; without a format, K lists of F ints

Columns: ``codes.npy`` (list of K lists of F uint codes), ``json`` (the record as a struct), ``phonemes.npy``
(list of int32, when the corpus has phoneme ids), ``__key__`` (tar key) and ``__url__`` (shard path).
``datasets`` infers the column types from the first samples, so the writer keeps every record field of
one type across the corpus (``""`` rather than null for a missing text).

Checks: the reader compares every shard's size with the manifest when it is built (a partial copy or a
truncated shard is a ``CorpusError`` naming it), counts the samples of each shard as it reads them,
and with ``verify=True`` also checks every shard's sha256 up front. ``codec=`` checks the codec's
identity (``config_hash`` and ``weights_digest``), rates and codebook size, and accepts any quantizer
count the codec supports.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import json
import os
import random
import tarfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info
from webdataset.filters import shuffle as wds_shuffle
from webdataset.tariterators import group_by_keys, tar_file_expander

from data_prep.errors import CorpusError
from data_prep.shards import read_manifest
from tokenizer.identity import record_mismatch
from tokenizer.utils.masking import length_mask, pad_right

CODEC_FIELDS = ("sampling_rate", "frame_rate", "codebook_size")
"""Checked for equality after the identity (`tokenizer.identity.record_mismatch`): the same tokens, the same shape."""


def _codec_field(codec: Any, name: str) -> Any:
    try:
        value = codec[name] if isinstance(codec, Mapping) else getattr(codec, name)
    except (KeyError, AttributeError):
        raise CorpusError(f"codec {type(codec).__name__} has no {name!r} to check against the manifest") from None
    return value() if callable(value) else value


def _supported_num_quantizers(codec: Any) -> list[int]:
    """The quantizer counts ``codec`` can decode: a tokenizer's model's ``supported_num_quantizers()``,
    a dict's ``supported_num_quantizers`` list, else just its ``num_quantizers``."""
    if isinstance(codec, Mapping):
        if "supported_num_quantizers" in codec:
            return list(codec["supported_num_quantizers"])
    else:
        for owner in (codec, getattr(codec, "model", None)):
            supported = getattr(owner, "supported_num_quantizers", None)
            if callable(supported):
                return list(supported())
    return [_codec_field(codec, "num_quantizers")]


def check_codec(manifest: dict, codec: Any, where: str | os.PathLike = "manifest") -> None:
    """Raise CorpusError naming the identity field that tells the tokens of ``codec`` and the manifest apart
    (``tokenizer.identity.record_mismatch``: a codec whose decoder was retrained on frozen tokens passes), then
    the first of ``CODEC_FIELDS`` where they disagree, or a manifest quantizer count the codec does not support.

    codec: a ``CodecTokenizer``, an object with those attributes (``config_hash`` may be a method), or a
    dict with those keys (such as ``tok.codec_info()``).
    """
    codec_part = manifest.get("codec")
    if not isinstance(codec_part, dict):
        raise CorpusError(f"{where} has no 'codec' section")
    if isinstance(codec, Mapping):
        ours = dict(codec)
    elif callable(getattr(codec, "identity", None)):
        ours = codec.identity()
    else:
        ours = {key: _codec_field(codec, key) for key in ("config_hash", "weights_digest")}
        ours["model_type"] = getattr(codec, "model_type", codec_part.get("model_type"))
    ours.setdefault("model_type", codec_part.get("model_type"))
    ours.update({name: _codec_field(codec, name) for name in CODEC_FIELDS})
    for key in ("config_hash", "weights_digest"):
        if ours.get(key) is None:
            raise CorpusError(f"codec {type(codec).__name__} has no {key!r} to check against the manifest")
    for name in CODEC_FIELDS:
        if codec_part.get(name) is None:
            raise CorpusError(f"{where} records no codec {name}")
    field = record_mismatch(codec_part, ours, fields=CODEC_FIELDS)
    if field is not None:
        raise CorpusError(f"codec mismatch in {field}: {where} has {codec_part.get(field)!r}, the codec has "
                          f"{ours.get(field)!r}")
    k, supported = codec_part.get("num_quantizers"), _supported_num_quantizers(codec)
    if k not in supported:
        raise CorpusError(f"codec mismatch in num_quantizers: {where} has {k!r}, the codec supports {supported}")


def _rank_and_world_size() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    # DataLoader workers started with "spawn" do not inherit the process group; torchrun's variables do.
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _read_shard(path: Path, expected: int | None = None) -> Iterator[dict]:
    """Decode the samples of one tar shard, in order; webdataset does the tar reading and key grouping.

    expected: the manifest's sample count; a shard that holds another number is a CorpusError.
    """
    count = 0
    try:
        with open(path, "rb") as stream:
            for sample in group_by_keys(tar_file_expander([{"url": str(path), "stream": stream}])):
                count += 1
                yield _decode_sample(path, sample)
    except (tarfile.TarError, OSError, ValueError) as exc:  # webdataset wraps some tar errors in ValueError
        if isinstance(exc, CorpusError):
            raise
        raise CorpusError(f"{path}: damaged shard after {count} samples ({exc}); re-copy or re-tokenize it") from None
    if expected is not None and count != expected:
        raise CorpusError(f"{path} holds {count} samples, the manifest says {expected}: the shard is damaged or "
                          "from another run; re-copy or re-tokenize it")


def _decode_sample(path: Path, sample: dict) -> dict:
    """One grouped tar sample -> the dataset's dict; CorpusError naming the shard and key if damaged."""
    try:
        record = json.loads(sample["json"])
        utt_id = record["id"]
        codes = np.lib.format.read_array(io.BytesIO(sample["codes.npy"]), allow_pickle=False)
        phonemes = sample.get("phonemes.npy")
        if phonemes is not None:
            phonemes = torch.from_numpy(
                np.lib.format.read_array(io.BytesIO(phonemes), allow_pickle=False).astype(np.int64)
            )
    except (KeyError, ValueError, TypeError) as exc:
        raise CorpusError(f"{path}: sample {sample.get('__key__')!r} is damaged ({exc!r})") from None
    return {
        "id": utt_id,
        "codes": torch.from_numpy(codes.astype(np.int64)),
        "phoneme_ids": phonemes,
        "record": record,
    }


class TokenShardDataset(IterableDataset):
    """Utterances of the shards listed in ``shard_dir/manifest.json``.

    Shards are split across distributed ranks and DataLoader workers (each shard is read by exactly one
    of them, so there are no duplicates; with fewer non-empty shards than ranks x workers some readers
    get none). With ``shuffle`` the shard order is permuted per epoch (same permutation on every rank,
    seeded by ``seed`` and ``set_epoch``) and samples are shuffled within a buffer of ``buffer_size``.
    ``max_frames`` drops utterances longer than that many frames. ``set_epoch`` reaches the workers
    only when they are restarted per epoch (``persistent_workers=False``, the default).

    Every shard's size is checked against the manifest here, and its sample count while it is read;
    ``verify=True`` also checks every shard's sha256 here (reads the whole corpus once). A mismatch is a
    CorpusError naming the shard. ``codec``: see ``check_codec``.
    """

    def __init__(
        self,
        shard_dir: str | os.PathLike,
        codec: Any = None,
        shuffle: bool = False,
        seed: int = 0,
        max_frames: int | None = None,
        buffer_size: int = 1000,
        verify: bool = False,
    ):
        super().__init__()
        self.shard_dir = Path(shard_dir)
        self.manifest = read_manifest(self.shard_dir)
        where = self.shard_dir / "manifest.json"
        if codec is not None:
            check_codec(self.manifest, codec, where)
        try:
            listed = [(self.shard_dir / s["name"], int(s["num_samples"]), int(s["bytes"]), s["sha256"])
                      for s in self.manifest["shards"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise CorpusError(f"{where}: malformed shard list ({exc!r})") from None
        missing = [str(p) for p, *_ in listed if not p.is_file()]
        if missing:
            raise CorpusError(f"{len(missing)} shards listed in the manifest are missing: {missing[:3]}")
        for path, _, size, sha256 in listed:
            if path.stat().st_size != size:
                raise CorpusError(f"{path} has {path.stat().st_size} bytes, the manifest says {size}: the shard is "
                                  "truncated or from another run; re-copy or re-tokenize it")
            if verify:
                with open(path, "rb") as f:
                    if hashlib.file_digest(f, "sha256").hexdigest() != sha256:
                        raise CorpusError(f"{path}: sha256 differs from the manifest's: the shard is damaged; "
                                          "re-copy or re-tokenize it")
        self.shards = [p for p, n, _, _ in listed if n > 0]
        self._expected = {p: n for p, n, _, _ in listed}
        self.shuffle, self.seed, self.max_frames, self.buffer_size = shuffle, seed, max_frames, buffer_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the shard and sample order of ``epoch`` (only matters with ``shuffle``)."""
        self.epoch = epoch

    def _my_shards(self) -> tuple[list[Path], int]:
        shards = list(self.shards)
        if self.shuffle:
            random.Random(f"{self.seed}:{self.epoch}").shuffle(shards)
        rank, world_size = _rank_and_world_size()
        worker = get_worker_info()
        worker_id, num_workers = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        slot = rank * num_workers + worker_id
        return shards[slot :: world_size * num_workers], slot

    def all_samples(self) -> Iterator[dict]:
        """Every sample of every shard, in manifest order, whatever the rank or worker (for consumers that
        hold a whole corpus in memory on each process, such as the TTS trainer); counts are checked."""
        for path in self.shards:
            yield from _read_shard(path, self._expected[path])

    def __iter__(self) -> Iterator[dict]:
        shards, slot = self._my_shards()
        samples: Iterator[dict] = (sample for path in shards for sample in _read_shard(path, self._expected[path]))
        if self.max_frames is not None:
            samples = (s for s in samples if s["codes"].shape[-1] <= self.max_frames)
        if self.shuffle:
            rng = random.Random(f"{self.seed}:{self.epoch}:{slot}")
            samples = wds_shuffle(self.buffer_size, self.buffer_size, rng=rng)(samples)
        yield from samples


def collate_codes(samples: list[dict], pad_code: int = 0, pad_phoneme: int = 0) -> dict:
    """Pad samples of ``TokenShardDataset`` into a batch.

    Returns ``codes`` LongTensor (B, K, F_max) padded with ``pad_code``, ``lengths`` (B,) frames,
    ``mask`` bool (B, F_max) True on real frames (the names of ``tokenizer.CodecEncoding``),
    ``phoneme_ids`` (B, P_max) padded with ``pad_phoneme``, ``phoneme_lengths`` (B,) and
    ``phoneme_mask`` bool (B, P_max) (all three None when the samples have no phoneme ids), ``ids``
    and ``records`` (lists of B).
    """
    if not samples:
        raise ValueError("collate_codes needs at least one sample")
    codes, lengths = pad_right([s["codes"] for s in samples], pad_code, dtype=torch.long)
    phonemes = [s["phoneme_ids"] for s in samples]
    if all(p is None for p in phonemes):
        phoneme_ids = phoneme_lengths = phoneme_mask = None
    elif any(p is None for p in phonemes):
        raise CorpusError("some samples of the batch have phoneme ids and some do not")
    else:
        phoneme_ids, phoneme_lengths = pad_right(phonemes, pad_phoneme, dtype=torch.long)
        phoneme_mask = length_mask(phoneme_lengths, phoneme_ids.shape[-1])
    return {
        "codes": codes,
        "lengths": lengths,
        "mask": length_mask(lengths, codes.shape[-1]),
        "phoneme_ids": phoneme_ids,
        "phoneme_lengths": phoneme_lengths,
        "phoneme_mask": phoneme_mask,
        "ids": [s["id"] for s in samples],
        "records": [s["record"] for s in samples],
    }


def bucket_batches(
    samples: Iterable[dict], max_frames_per_batch: int, num_buckets: int = 8, warmup: int = 500, seed: int = 0
) -> Iterator[list[dict]]:
    """Group samples of similar length into batches whose padded size stays within a frame budget.

    The first ``warmup`` samples set ``num_buckets`` bucket boundaries at quantiles of their frame counts.
    Each sample then joins its bucket; a bucket is emitted as a batch when one more sample would make
    ``len(batch) * max(num_frames)`` exceed ``max_frames_per_batch``. Leftover batches come last, in an
    order shuffled by ``seed``. Every sample is yielded exactly once; output depends only on the input
    order and ``seed``. Hand-written: neither webdataset nor datasets batch by a padded-frame budget.
    Raises CorpusError for a sample longer than the budget (filter with ``max_frames``).
    """
    if max_frames_per_batch < 1 or num_buckets < 1:
        raise ValueError(f"need max_frames_per_batch, num_buckets >= 1, got {max_frames_per_batch}, {num_buckets}")
    iterator = iter(samples)
    head = [s for _, s in zip(range(warmup), iterator)]
    lengths = sorted(s["codes"].shape[-1] for s in head)
    boundaries = sorted({lengths[len(lengths) * i // num_buckets] for i in range(1, num_buckets)}) if lengths else []
    buckets: list[list[dict]] = [[] for _ in range(len(boundaries) + 1)]
    longest = [0] * len(buckets)
    for sample in (s for part in (head, iterator) for s in part):
        frames = sample["codes"].shape[-1]
        if frames > max_frames_per_batch:
            raise CorpusError(
                f"{sample['id']} has {frames} frames, more than max_frames_per_batch={max_frames_per_batch}; "
                "drop such utterances with TokenShardDataset(max_frames=...)"
            )
        b = bisect.bisect_left(boundaries, frames)
        if (len(buckets[b]) + 1) * max(longest[b], frames) > max_frames_per_batch:
            yield buckets[b]
            buckets[b], longest[b] = [], 0
        buckets[b].append(sample)
        longest[b] = max(longest[b], frames)
    leftovers = [batch for batch in buckets if batch]
    random.Random(seed).shuffle(leftovers)
    yield from leftovers


class DurationBucketBatcher(IterableDataset):
    """``bucket_batches`` over a dataset, as an IterableDataset of lists of samples.

    Use with ``DataLoader(batcher, batch_size=None, collate_fn=collate_codes)``; each DataLoader worker
    batches the shards it reads. ``set_epoch`` is passed on to the dataset.
    """

    def __init__(
        self, dataset: Iterable[dict], max_frames_per_batch: int, num_buckets: int = 8, warmup: int = 500, seed: int = 0
    ):
        super().__init__()
        self.dataset, self.max_frames_per_batch = dataset, max_frames_per_batch
        self.num_buckets, self.warmup, self.seed = num_buckets, warmup, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Reseed the leftover order and pass ``epoch`` on to the dataset."""
        self.epoch = epoch
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __iter__(self) -> Iterator[list[dict]]:
        seed = self.seed * 1_000_003 + self.epoch
        return bucket_batches(self.dataset, self.max_frames_per_batch, self.num_buckets, self.warmup, seed)
