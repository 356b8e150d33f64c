"""Token shards: the on-disk format of a tokenized corpus, its writer and its manifest.

Format (``FORMAT_VERSION = 2``)
-------------------------------
An output directory holds webdataset tar shards plus a few JSON files::

    out/
      manifest.json            codec, corpus, counts and the list of shards (written last)
      skipped.jsonl            one {"id", "path", "reason"} object per skipped utterance
      shard-000000.tar         samples
      shard-000000.tar.json    sidecar: written after the tar is complete (resume bookkeeping)
      shard-000001.tar ...

Shard names are ``shard-{index:06d}.tar``. They carry no process rank: ``plan_shards`` fixes which
utterances go into shard ``index`` independently of the number of processes, so a one-process run and
an N-process run produce the same shard names with byte-identical contents.

Each sample is a group of tar members sharing the key ``<key>`` (webdataset convention, members of a
sample are written in sorted order):

- ``<key>.codes.npy``    codes ``(K, F)`` (K quantizers, F frames) as ``.npy`` in the smallest unsigned
  dtype that holds the codebook (``codes_dtype``: uint8 up to 256 entries, uint16 up to 65536, else
  uint32).
- ``<key>.json``         the record: ``id`` (the real utterance id), ``speaker``, ``text``,
  ``normalized_text``, ``phonemes``, ``language``, ``duration`` (seconds), ``num_frames``,
  ``num_samples`` (audio samples at the codec's sampling rate), then any extra keys. Missing standard
  text keys are stored as ``""`` (``num_samples`` as null) so every record has the same keys, each of
  one type across the corpus (``datasets`` infers one schema from the first samples).
- ``<key>.phonemes.npy`` optional phoneme ids, int32 ``(P,)``. Either every sample of a corpus has it or
  none does (``datasets`` infers one schema for all samples).

``<key>`` is ``sample_key(id)``: the id with every character other than letters, digits, ``_`` and ``-``
replaced by ``_``, because webdataset splits a member name at its first dot and treats ``/`` as a
directory. ``plan_shards`` refuses a corpus in which two ids map to the same key.

Tar members have mtime 0, uid/gid 0, empty user/group names and mode 0444, so writing the same input
twice gives byte-identical shards and the same sha256.

``manifest.json``::

    {"format_version": 2,
     "codec": {"name", "model_type", "config_hash", "weights_digest", "sampling_rate", "frame_rate",
               "num_quantizers", "codebook_size", "bitrate", ...extra codec settings},
     "identity": {...},       # the settings every shard was written with (see Resuming)
     "corpus": {"name", "root", "subsets", ...},
     "codes_dtype": "uint16", "has_phonemes": true,
     "counts": {"utterances", "skipped", "seconds", "frames"},
     "shards": [{"name", "num_samples", "sha256", "bytes", "seconds", "frames"}, ...]}   # sorted by name

Version 1 (before the codec's weights digest was recorded) is refused with a message: re-tokenize.

Resuming
--------
**A finished shard is reused only when everything that decided its content is the same.** That is:

- the planned utterance ids (``ids_hash``: the corpus listing and ``shard_size``);
- the *identity* of the run, a flat dict the caller passes to ``ShardWriter`` and ``completed_shards``
  and that every sidecar records: for ``tokenize-corpus`` the codec (``model_type``, ``config_hash``,
  ``weights_digest``, ``tokens_digest``), the quantizer count and any post-hoc quantization settings, the
  ``--language`` override, the text normaliser's version and a hash of the phoneme vocabulary. Codecs that
  make the same tokens count as the same (``tokenizer.identity``): a run started with a checkpoint whose
  decoder was since retrained on frozen tokens resumes;
- the shard's ``content_hash`` (``ShardPlan.content_hash``, from per-utterance fingerprints given to
  ``plan_shards``): for ``tokenize-corpus`` the text, normalised text, language, speaker and phoneme
  string of each planned utterance, so an edited transcript or another espeak-ng version is noticed.

A finished shard that differs in any of them is refused with a ``CorpusError`` naming what differs
(never mixed with new shards, never relabelled by the manifest): re-run with the original settings, or
into a fresh output directory. Audio files are identified by their utterance id only: replacing an
audio file under a finished shard is not noticed.

A shard is finished when both ``shard-X.tar`` and its sidecar ``shard-X.tar.json`` exist and agree.
The tar is written to ``shard-X.tar.tmp`` and renamed when its last planned utterance has been written
or skipped; the sidecar (sha256, size, counts, skipped utterances, a hash of the planned ids) is written
atomically after the rename. ``completed_shards`` reads the sidecars, verifies the tars and cleans up
what a killed run left behind, so a rerun only redoes unfinished shards::

    plans = plan_shards(ids, shard_size, rank, world_size)
    done = completed_shards(out_dir, plans, identity=identity)
    todo = [plan for plan in plans if plan.name not in done]
    with ShardWriter(out_dir, todo, codebook_size=1024, identity=identity) as w:
        for plan in todo:
            for utt_id in plan.ids:          # in this order; batching across shards is fine
                ...                          # w.write(record, codes, phoneme_ids) or w.skip(id, path, why)
    write_manifest(out_dir, codec_info, corpus_info, identity=identity)   # once, after every rank finished
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from webdataset.writer import TarWriter

from data_prep.errors import CorpusError
from tokenizer.identity import WEIGHTS_KEYS, tokens_mismatch

FORMAT_VERSION = 2
MANIFEST_NAME = "manifest.json"
SKIPPED_NAME = "skipped.jsonl"
RECORD_KEYS = ("speaker", "text", "normalized_text", "phonemes", "language", "num_samples")
_TEXT_RECORD_KEYS = ("speaker", "text", "normalized_text", "phonemes", "language")
CODEC_KEYS = (
    "name", "model_type", "config_hash", "weights_digest", "sampling_rate", "frame_rate",
    "num_quantizers", "codebook_size", "bitrate",
)  # fmt: skip

logger = logging.getLogger(__name__)
_KEY_UNSAFE = re.compile(r"[^\w-]")
_SHARD_FILE = re.compile(r"^(shard-\d{6}\.tar)(\.tmp|\.json|\.json\.tmp)?$")


def codes_dtype(codebook_size: int) -> np.dtype:
    """Smallest unsigned dtype that holds codes ``0 .. codebook_size - 1``."""
    if not isinstance(codebook_size, (int, np.integer)) or not 1 <= codebook_size <= 2**32:
        raise CorpusError(f"codebook_size must be an integer in [1, 2**32], got {codebook_size!r}")
    for dtype in (np.uint8, np.uint16, np.uint32):
        if codebook_size - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise AssertionError("unreachable")


def sample_key(utt_id: str) -> str:
    """Tar key of an utterance: the id with characters other than letters, digits, _ and - made _."""
    if not isinstance(utt_id, str) or not utt_id:
        raise CorpusError(f"utterance id must be a non-empty string, got {utt_id!r}")
    return _KEY_UNSAFE.sub("_", utt_id)


def shard_name(index: int) -> str:
    """File name of shard ``index`` (the same for every rank and world size)."""
    return f"shard-{index:06d}.tar"


@dataclass(frozen=True)
class ShardPlan:
    """The utterances shard ``index`` holds, in order. ``num_shards`` counts shards of all ranks."""

    name: str
    index: int
    num_shards: int
    ids: tuple[str, ...]
    content_hash: str | None = None

    @property
    def ids_hash(self) -> str:
        """sha256 of the planned ids; a resumed run refuses shards planned from another id list."""
        return hashlib.sha256("\n".join(self.ids).encode("utf-8")).hexdigest()


@dataclass
class ShardInfo:
    """What the sidecar ``<shard>.json`` records about one finished shard."""

    name: str
    index: int
    num_shards: int
    num_samples: int
    sha256: str
    bytes: int
    seconds: float
    frames: int
    ids_hash: str
    codebook_size: int
    identity: dict[str, Any] | None  # the run's settings that decided this shard's content
    content_hash: str | None  # of the planned utterances' fingerprints (see ``plan_shards``)
    has_phonemes: bool | None  # None when every utterance of the shard was skipped
    skipped: list[dict[str, str]] = field(default_factory=list)


def plan_shards(utterance_ids: list[str], shard_size: int, rank: int = 0, world_size: int = 1,
                fingerprints: dict[str, str] | None = None) -> list[ShardPlan]:
    """Split the sorted ids into blocks of ``shard_size``; rank ``r`` gets blocks with index % world_size == r.

    Shard names and contents depend only on the ids and ``shard_size``, never on ``world_size``.
    fingerprints: optional ``{id: str}`` of whatever decides an utterance's record (its text...); each
    plan's ``content_hash`` hashes those of its ids, and a resume refuses a finished shard whose
    fingerprints changed. Raises CorpusError for repeated ids (drop duplicates before planning).
    """
    if shard_size < 1:
        raise CorpusError(f"shard_size must be >= 1, got {shard_size}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise CorpusError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
    ids = sorted(utterance_ids)
    repeated = [a for a, b in zip(ids, ids[1:]) if a == b]
    if repeated:
        raise CorpusError(f"utterance id {repeated[0]!r} is listed more than once ({len(repeated)} repeats)")
    seen: dict[str, str] = {}
    for utt_id in ids:
        key = sample_key(utt_id)
        if key in seen:
            raise CorpusError(f"utterance ids {seen[key]!r} and {utt_id!r} both map to the tar key {key!r}")
        seen[key] = utt_id
    num_shards = -(-len(ids) // shard_size)
    plans = []
    for i in range(rank, num_shards, world_size):
        block = tuple(ids[i * shard_size : (i + 1) * shard_size])
        content = None
        if fingerprints is not None:
            content = hashlib.sha256("\n".join(f"{u}\t{fingerprints[u]}" for u in block).encode("utf-8")).hexdigest()
        plans.append(ShardPlan(shard_name(i), i, num_shards, block, content))
    return plans


def fingerprint(values: dict[str, Any]) -> str:
    """A short stable hash of a JSON-able dict (sorted keys), for ``plan_shards(fingerprints=...)``."""
    text = json.dumps(values, ensure_ascii=False, sort_keys=True, default=_json_default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def identity_differences(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[str]:
    """``key=old vs new`` for every key whose value differs between two identities, sorted by key.
    Two codecs that make the same tokens (`tokenizer.identity.tokens_mismatch`: e.g. a checkpoint whose
    decoder alone was retrained) do not differ: their weights digests are not compared."""
    # Compared as stored in JSON (a tuple comes back from a sidecar as a list, numpy numbers as numbers).
    old, new = (json.loads(json.dumps(d or {}, default=_json_default)) for d in (old, new))
    keys = set(old) | set(new)
    if keys & set(WEIGHTS_KEYS) and tokens_mismatch(old, new) is None:
        keys -= set(WEIGHTS_KEYS)
    return [f"{k}: {old.get(k)!r} vs {new.get(k)!r}" for k in sorted(keys) if old.get(k) != new.get(k)]


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk or Ctrl-C leaves no half-written .tmp behind
        tmp.unlink(missing_ok=True)
        raise


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.generic, np.ndarray)):  # numbers computed with numpy in the corpus readers
        return value.tolist()
    raise TypeError(f"record value {value!r} of type {type(value).__name__} is not JSON serializable")


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # accept torch tensors without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


class ShardWriter:
    """Writes the planned shards of one process, each to ``.tar.tmp`` then renamed when complete.

    ``plans`` are the shards still to write, in order (``plan_shards`` minus ``completed_shards``). Call
    ``write`` or ``skip`` exactly once per planned id, in plan order; a shard is opened at its first id and
    finished (renamed, hashed, sidecar written) at its last.

    webdataset's own ShardWriter is not used: it writes straight to the final name, so a killed run
    would leave a truncated ``.tar`` that looks finished, and it rolls over by count rather than by plan.
    Its ``TarWriter`` does the tar encoding, with ``mtime=0`` (its default is ``time.time()``) and empty
    user/group names so the bytes are reproducible.
    """

    def __init__(
        self, out_dir: str | os.PathLike, plans: list[ShardPlan], codebook_size: int,
        identity: dict[str, Any] | None = None,
    ):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.codebook_size = int(codebook_size)
        self.dtype = codes_dtype(self.codebook_size)
        self.identity = dict(identity) if identity is not None else None
        self._plans = list(plans)
        self._next_plan = 0
        self._plan: ShardPlan | None = None
        self._pos = 0
        self._tar: TarWriter | None = None
        self._file = None
        self._info: ShardInfo | None = None
        self._num_quantizers: int | None = None
        self._has_phonemes: bool | None = None
        self.finished: list[ShardInfo] = []

    @property
    def expected_id(self) -> str | None:
        """The id ``write``/``skip`` must be called with next, or None when every plan is done."""
        if self._plan is not None:
            return self._plan.ids[self._pos]
        while self._next_plan < len(self._plans) and not self._plans[self._next_plan].ids:
            self._next_plan += 1
        return self._plans[self._next_plan].ids[0] if self._next_plan < len(self._plans) else None

    def write(self, record: dict, codes: np.ndarray, phoneme_ids: np.ndarray | None = None) -> None:
        """Add one utterance.

        record: at least ``id`` and ``duration`` (seconds); ``num_frames`` is set from ``codes``.
        codes: integer ``(K, F)`` in ``[0, codebook_size)`` (numpy or torch).
        phoneme_ids: optional integer ``(P,)``; give it for every utterance or for none.
        Raises CorpusError (nothing is written) for codes or phonemes that do not fit the format.
        """
        utt_id = record.get("id")
        self._check_order(utt_id)
        codes = _as_numpy(codes)
        if codes.ndim != 2 or codes.shape[1] == 0 or not np.issubdtype(codes.dtype, np.integer):
            raise CorpusError(
                f"{utt_id}: codes must be a non-empty integer array (K, F), got {codes.dtype} {codes.shape}"
            )
        if codes.min() < 0 or codes.max() >= self.codebook_size:
            raise CorpusError(
                f"{utt_id}: codes outside [0, {self.codebook_size}): min {codes.min()}, max {codes.max()}"
            )
        if self._num_quantizers is not None and codes.shape[0] != self._num_quantizers:
            raise CorpusError(f"{utt_id}: codes have {codes.shape[0]} quantizers, earlier ones {self._num_quantizers}")
        if self._has_phonemes is not None and (phoneme_ids is not None) != self._has_phonemes:
            raise CorpusError(
                f"{utt_id}: phoneme ids {'missing' if phoneme_ids is None else 'given'}, unlike for earlier "
                "utterances; give them for every utterance or for none"
            )
        sample = {"__key__": sample_key(utt_id)}
        if phoneme_ids is not None:
            phoneme_ids = _as_numpy(phoneme_ids)
            if phoneme_ids.ndim != 1 or (phoneme_ids.size and not np.issubdtype(phoneme_ids.dtype, np.integer)):
                raise CorpusError(
                    f"{utt_id}: phoneme ids must be integers (P,), got {phoneme_ids.dtype} {phoneme_ids.shape}"
                )
            if phoneme_ids.size and (phoneme_ids.min() < 0 or phoneme_ids.max() > np.iinfo(np.int32).max):
                raise CorpusError(f"{utt_id}: phoneme ids outside the int32 range [0, 2**31)")
            sample["phonemes.npy"] = _npy_bytes(phoneme_ids.astype(np.int32))
        try:
            duration = float(record["duration"])
            if not math.isfinite(duration) or duration < 0:
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise CorpusError(f"{utt_id}: record needs a numeric 'duration' in seconds, got {record.get('duration')!r}")
        if record.get("num_frames") not in (None, codes.shape[1]):
            raise CorpusError(f"{utt_id}: record says num_frames={record['num_frames']}, codes have {codes.shape[1]}")
        defaults = {k: "" if k in _TEXT_RECORD_KEYS else None for k in RECORD_KEYS}
        full = {"id": utt_id, **defaults, **{k: v for k, v in record.items() if v is not None or k not in defaults},
                "duration": duration}
        full["num_frames"] = int(codes.shape[1])
        sample["json"] = json.dumps(full, ensure_ascii=False, sort_keys=True, default=_json_default).encode("utf-8")
        sample["codes.npy"] = _npy_bytes(codes.astype(self.dtype))

        self._open_if_needed()
        self._tar.write(sample)
        self._num_quantizers = int(codes.shape[0])
        self._has_phonemes = self._info.has_phonemes = phoneme_ids is not None
        self._info.num_samples += 1
        self._info.seconds += duration
        self._info.frames += int(codes.shape[1])
        self._advance()

    def skip(self, utt_id: str, path: str | os.PathLike | None, reason: str) -> None:
        """Record that ``utt_id`` (audio at ``path``) is left out, and why; a resume will not retry it."""
        self._check_order(utt_id)
        self._open_if_needed()
        self._info.skipped.append({"id": utt_id, "path": None if path is None else str(path), "reason": str(reason)})
        self._advance()

    def close(self) -> None:
        """Raise if planned ids are left: their shard is incomplete and is deleted, so a rerun redoes it."""
        missing = self.expected_id
        if missing is not None:
            self._abort()
            raise CorpusError(f"ShardWriter closed before utterance {missing!r} was written or skipped")

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()

    def _check_order(self, utt_id: Any) -> None:
        expected = self.expected_id
        if utt_id != expected:
            raise CorpusError(f"expected utterance {expected!r} next (plan order), got {utt_id!r}")

    def _open_if_needed(self) -> None:
        if self._plan is not None:
            return
        self._plan = plan = self._plans[self._next_plan]
        self._next_plan += 1
        self._pos = 0
        self._file = open(self.out_dir / (plan.name + ".tmp"), "wb")
        # PAX so ids longer than ustar's 100-byte names still fit; no time fields with an integer mtime.
        self._tar = TarWriter(self._file, user="", group="", mode=0o444, mtime=0, encoder=False, format="PAX_FORMAT")
        self._info = ShardInfo(
            name=plan.name, index=plan.index, num_shards=plan.num_shards, num_samples=0, sha256="", bytes=0,
            seconds=0.0, frames=0, ids_hash=plan.ids_hash, codebook_size=self.codebook_size,
            identity=self.identity, content_hash=plan.content_hash, has_phonemes=None,
        )  # fmt: skip

    def _advance(self) -> None:
        self._pos += 1
        if self._pos == len(self._plan.ids):
            self._finish()

    def _finish(self) -> None:
        self._tar.close()  # writes the end-of-archive blocks; the file object is ours to close
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        final = self.out_dir / self._plan.name
        os.replace(final.with_name(final.name + ".tmp"), final)
        info = self._info
        info.sha256, info.bytes = _sha256(final), final.stat().st_size
        sidecar = {"format_version": FORMAT_VERSION, **asdict(info)}
        _write_atomic(final.with_name(final.name + ".json"), json.dumps(sidecar, ensure_ascii=False, indent=1))
        self.finished.append(info)
        self._plan = self._tar = self._file = self._info = None

    def _abort(self) -> None:
        if self._plan is None:
            return
        self._tar.close()  # else tarfile flushes its buffer into the closed file when garbage-collected
        self._file.close()
        (self.out_dir / (self._plan.name + ".tmp")).unlink(missing_ok=True)
        self._plan = self._tar = self._file = self._info = None


def _old_format(what: Path, version: Any) -> CorpusError:
    return CorpusError(
        f"{what} is token shard format {version}, this version reads and writes format {FORMAT_VERSION} "
        "(it records the codec's weights digest): re-run tokenize-corpus into a fresh --out"
    )


def _read_sidecar(path: Path) -> ShardInfo | None:
    """The sidecar's ShardInfo; None when unreadable (an unfinished shard); CorpusError for an old format."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        version = data.pop("format_version", None)
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(version, int) and version != FORMAT_VERSION:
        raise _old_format(path, version)
    try:
        return ShardInfo(**data) if version == FORMAT_VERSION else None
    except TypeError:
        return None


def completed_shards(
    out_dir: str | os.PathLike,
    plans: list[ShardPlan] | None = None,
    identity: dict[str, Any] | None = None,
    check_sha256: bool = True,
) -> dict[str, ShardInfo]:
    """Finished shards in ``out_dir`` by name, after cleaning up what a killed run left.

    Only the shards named in ``plans`` are looked at (all shards when None; in a distributed run pass
    the rank's own plans, so no rank touches a file another rank is writing). Leftover ``.tmp`` files, a
    tar without sidecar (killed between rename and sidecar) and a tar whose size or sha256 disagrees with
    its sidecar are deleted: those shards are not finished and will be rewritten.
    Raises CorpusError when a finished shard was planned from other ids (another ``shard_size`` or
    subset), from utterances whose fingerprints changed (``content_hash``), or written with another
    ``identity`` (codec, quantizers, language...): mixing them would corrupt the corpus. The message
    names what differs. Raises CorpusError for a sidecar of an older format version.
    """
    out = Path(out_dir)
    if not out.is_dir():
        return {}
    if plans is None:
        names = {_SHARD_FILE.match(p.name).group(1) for p in out.iterdir() if _SHARD_FILE.match(p.name)}
        by_name = {}
    else:
        by_name = {plan.name: plan for plan in plans}
        names = set(by_name)
    done: dict[str, ShardInfo] = {}
    for name in sorted(names):
        tar, sidecar = out / name, out / (name + ".json")
        for leftover in (out / (name + ".tmp"), out / (name + ".json.tmp")):
            leftover.unlink(missing_ok=True)
        info = _read_sidecar(sidecar) if sidecar.exists() else None
        ok = info is not None and tar.exists() and tar.stat().st_size == info.bytes
        if ok and check_sha256:
            ok = _sha256(tar) == info.sha256
        if not ok:
            if tar.exists() or sidecar.exists():
                logger.warning("%s: unfinished or damaged shard, it will be rewritten", tar)
            tar.unlink(missing_ok=True)
            sidecar.unlink(missing_ok=True)
            continue
        plan = by_name.get(name)
        if plan is not None and (info.ids_hash != plan.ids_hash or info.num_shards != plan.num_shards):
            raise CorpusError(
                f"{tar} holds other utterances than planned now (another shard_size or subset?); "
                "use a fresh output directory"
            )
        if identity is not None:
            differ = identity_differences(info.identity, identity)
            if differ:
                raise CorpusError(
                    f"{tar} was written with other settings than this run ({'; '.join(differ)}; finished vs now): "
                    "a finished shard is reused only when everything that decided its content is the same; "
                    "re-run with the original settings or into a fresh --out"
                )
        if plan is not None and plan.content_hash != info.content_hash:
            raise CorpusError(
                f"{tar} was written from other utterance text than listed now (an edited transcript, another "
                "--language or espeak-ng version?): a finished shard is reused only when everything that "
                "decided its content is the same; re-run with the original inputs or into a fresh --out"
            )
        done[name] = info
    return done


def write_manifest(out_dir: str | os.PathLike, codec_info: dict, corpus_info: dict,
                   extra_skipped: list[dict] | tuple = (), identity: dict[str, Any] | None = None) -> dict:
    """Gather every shard sidecar into ``manifest.json`` and ``skipped.jsonl``; return the manifest.

    codec_info: ``name, model_type, config_hash, sampling_rate, frame_rate (Hz), num_quantizers,
    codebook_size, bitrate (bits per second)`` plus any extra codec settings.
    corpus_info: ``name, root, subsets`` plus anything else worth recording.
    extra_skipped: ``{"id", "path", "reason"}`` entries skipped before planning (e.g. while listing).
    identity: the run's identity (see Resuming); every shard must have been written with it.
    Raises CorpusError when a planned shard is missing (a rank did not finish) or the shards disagree
    with each other, with ``identity`` or with ``codec_info``: the manifest never claims settings that
    its shards were not written with.
    """
    out = Path(out_dir)
    missing_keys = [k for k in CODEC_KEYS if k not in codec_info]
    if missing_keys:
        raise CorpusError(f"codec_info lacks {missing_keys}")
    infos = []
    for sidecar in sorted(out.glob("shard-*.tar.json")):
        info = _read_sidecar(sidecar)
        tar = out / sidecar.name[: -len(".json")]
        if info is None or not tar.exists() or tar.stat().st_size != info.bytes:
            raise CorpusError(f"{tar}: shard missing or damaged; rerun the tokenization to rewrite it")
        infos.append(info)
    if not infos:
        raise CorpusError(f"no finished shards in {out}")
    num_shards = infos[0].num_shards
    missing = sorted(set(map(shard_name, range(num_shards))) - {i.name for i in infos})
    if missing or any(i.num_shards != num_shards for i in infos):
        raise CorpusError(
            f"{out}: {len(missing)} of {num_shards} shards unfinished ({', '.join(missing[:5])}...) "
            "or shards from different plans; rerun the tokenization"
        )
    for info in infos:
        if info.codebook_size != codec_info["codebook_size"]:
            raise CorpusError(f"{info.name} was written with codebook_size={info.codebook_size}, "
                              f"codec_info has {codec_info['codebook_size']}")
        differ = identity_differences(infos[0].identity, info.identity)
        if differ:
            raise CorpusError(f"{out}: {infos[0].name} and {info.name} were written with different settings "
                              f"({'; '.join(differ)}); use a fresh output directory")
    shard_identity = infos[0].identity or {}
    if identity is not None and identity_differences(shard_identity, identity):
        raise CorpusError(f"{out}: the shards were written with other settings than given "
                          f"({'; '.join(identity_differences(shard_identity, identity))}; shards vs given)")
    shared = [k for k in codec_info if k in shard_identity]
    claims = identity_differences({k: shard_identity[k] for k in shared}, {k: codec_info[k] for k in shared})
    if claims:
        raise CorpusError(f"{out}: codec_info disagrees with the shards ({'; '.join(claims)}; shards vs codec_info)")
    phonemes = {i.has_phonemes for i in infos} - {None}
    if len(phonemes) > 1:
        raise CorpusError(f"{out}: some shards have phoneme ids and some do not")
    skipped = list(extra_skipped) + [s for info in infos for s in info.skipped]
    manifest = {
        "format_version": FORMAT_VERSION,
        "codec": dict(codec_info),
        "identity": dict(shard_identity),
        "corpus": dict(corpus_info),
        "codes_dtype": codes_dtype(codec_info["codebook_size"]).name,
        "has_phonemes": bool(phonemes and phonemes.pop()),
        "counts": {
            "utterances": sum(i.num_samples for i in infos),
            "skipped": len(skipped),
            "seconds": sum(i.seconds for i in infos),
            "frames": sum(i.frames for i in infos),
        },
        "shards": [
            {k: getattr(i, k) for k in ("name", "num_samples", "sha256", "bytes", "seconds", "frames")} for i in infos
        ],
    }
    _write_atomic(out / SKIPPED_NAME, "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in skipped))
    _write_atomic(out / MANIFEST_NAME, json.dumps(manifest, ensure_ascii=False, indent=2))
    return manifest


def read_manifest(shard_dir: str | os.PathLike) -> dict:
    """The manifest of a shard directory; CorpusError if missing or of another format version."""
    path = Path(shard_dir) / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CorpusError(f"{path} not found: not a finished token shard directory") from None
    except (OSError, ValueError) as exc:
        raise CorpusError(f"{path} is unreadable: {exc}") from None
    if not isinstance(manifest, dict):
        raise CorpusError(f"{path} is not a token shard manifest (not a JSON object)")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise _old_format(path, manifest.get("format_version"))
    return manifest


def shard_paths(shard_dir: str | os.PathLike) -> list[str]:
    """Paths of the non-empty shards listed in the manifest (``datasets`` cannot read an empty tar)."""
    manifest = read_manifest(shard_dir)
    return [str(Path(shard_dir) / s["name"]) for s in manifest["shards"] if s["num_samples"] > 0]
