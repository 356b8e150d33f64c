"""Token shard format: writer, resume protocol, manifest, torch readers and the `datasets` loader."""

import io
import json
import tarfile

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data_prep.dataset import DurationBucketBatcher, TokenShardDataset, bucket_batches, collate_codes
from data_prep.errors import CorpusError
from data_prep.shards import (
    ShardWriter,
    codes_dtype,
    completed_shards,
    plan_shards,
    read_manifest,
    sample_key,
    shard_paths,
    write_manifest,
)

CONFIG_HASH = "cafe0123"
WEIGHTS_DIGEST = "0123456789abcdef"
CORPUS_INFO = {"name": "toy", "root": "/corpora/toy", "subsets": ["train-clean"]}


def codec_info(codebook_size: int, num_quantizers: int = 3) -> dict:
    return {
        "name": "language-codec", "model_type": "language_codec", "config_hash": CONFIG_HASH,
        "weights_digest": WEIGHTS_DIGEST,
        "sampling_rate": 24000, "frame_rate": 75.0, "num_quantizers": num_quantizers,
        "codebook_size": codebook_size, "bitrate": 75.0 * num_quantizers * np.log2(codebook_size),
        "bandwidth_id": 2,
    }  # fmt: skip


def make_corpus(n: int, codebook_size: int, phonemes: bool = True, seed: int = 0) -> dict:
    """Utterances id -> (record, codes (3, F), phoneme ids (P,) or None); ids with dots, a slash, a long one."""
    rng = np.random.default_rng(seed)
    items = {}
    for i in range(n):
        utt_id = f"spk{i % 3}_utt.{i:03d}"
        if i == 5:
            utt_id = f"spk{i % 3}/utt.{i:03d}"
        if i == 6:
            utt_id += "_Grüße" * 20  # past the 100-byte name limit of ustar tar headers
        frames = int(rng.integers(1, 40))
        codes = rng.integers(0, codebook_size, (3, frames))
        codes[0, 0] = codebook_size - 1  # the largest code must survive the narrow dtype
        record = {"id": utt_id, "speaker": f"spk{i % 3}", "text": f"Text {i}.", "duration": frames / 75.0,
                  "num_samples": frames * 320, "extra": {"snr": float(i)}}  # fmt: skip
        ph = rng.integers(0, 100, int(rng.integers(1, 20))) if phonemes else None
        items[utt_id] = (record, codes, ph)
    return items


def identity(num_quantizers: int = 3, **changes) -> dict:
    return {"model_type": "language_codec", "config_hash": CONFIG_HASH, "weights_digest": WEIGHTS_DIGEST,
            "num_quantizers": num_quantizers, "language": "en-us", **changes}


def write_corpus(out, items, shard_size, codebook_size, rank=0, world_size=1, skip=()):
    """The CLI's writing loop: plan, skip finished shards, write or skip every planned id in order."""
    plans = plan_shards(list(items), shard_size, rank, world_size)
    done = completed_shards(out, plans, identity=identity())
    todo = [plan for plan in plans if plan.name not in done]
    with ShardWriter(out, todo, codebook_size, identity=identity()) as writer:
        for plan in todo:
            for utt_id in plan.ids:
                if utt_id in skip:
                    writer.skip(utt_id, f"/corpora/toy/{utt_id}.wav", "audio too short")
                else:
                    writer.write(*items[utt_id])
    return todo


def build(out, items, codebook_size, shard_size=4, skip=()):
    write_corpus(out, items, shard_size, codebook_size, skip=skip)
    return write_manifest(out, codec_info(codebook_size), CORPUS_INFO)


def test_codes_dtype():
    assert [codes_dtype(n) for n in (2, 256, 257, 1024, 46656, 65536, 65537, 70000)] == [
        np.uint8, np.uint8, np.uint16, np.uint16, np.uint16, np.uint16, np.uint32, np.uint32
    ]  # fmt: skip
    with pytest.raises(CorpusError, match="codebook_size"):
        codes_dtype(0)


@pytest.mark.parametrize(
    ("codebook_size", "dtype"), [(256, "uint8"), (1024, "uint16"), (46656, "uint16"), (70000, "uint32")]
)
def test_round_trip_through_both_readers(tmp_path, monkeypatch, codebook_size, dtype):
    phonemes = codebook_size != 256  # one corpus without phoneme ids
    items = make_corpus(11, codebook_size, phonemes=phonemes)
    skipped = sorted(items)[3]
    manifest = build(tmp_path, items, codebook_size, skip={skipped})
    written = {k: v for k, v in items.items() if k != skipped}

    assert manifest["codes_dtype"] == dtype and manifest["has_phonemes"] is phonemes
    assert manifest["counts"]["utterances"] == 10 and manifest["counts"]["skipped"] == 1
    assert manifest["counts"]["frames"] == sum(c.shape[1] for _, c, _ in written.values())
    assert [s["name"] for s in manifest["shards"]] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    assert read_manifest(tmp_path) == manifest
    assert json.loads((tmp_path / "skipped.jsonl").read_text()) == {
        "id": skipped, "path": f"/corpora/toy/{skipped}.wav", "reason": "audio too short"
    }  # fmt: skip
    with tarfile.open(tmp_path / "shard-000000.tar") as tar:
        member = tar.getmembers()[0]
        assert member.name == sample_key(sorted(items)[0]) + ".codes.npy" and "." not in member.name.split(".")[0]
        assert np.load(io.BytesIO(tar.extractfile(member).read())).dtype == np.dtype(dtype)

    seen = {}
    for sample in TokenShardDataset(tmp_path, codec=codec_info(codebook_size)):
        record, codes, ph = written[sample["id"]]
        assert sample["codes"].dtype == torch.long and torch.equal(sample["codes"], torch.from_numpy(codes))
        assert sample["record"] == {"normalized_text": "", "phonemes": "", "language": "", **record,
                                    "num_frames": codes.shape[1]}  # fmt: skip
        if phonemes:
            assert torch.equal(sample["phoneme_ids"], torch.from_numpy(ph))
        else:
            assert sample["phoneme_ids"] is None
        seen[sample["id"]] = True
    assert sorted(seen) == sorted(written)

    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    ds = datasets.load_dataset(
        "webdataset", data_files={"train": shard_paths(tmp_path)}, split="train", cache_dir=str(tmp_path / "hf")
    )
    columns = {"codes.npy", "json", "__key__", "__url__"} | ({"phonemes.npy"} if phonemes else set())
    assert set(ds.column_names) == columns and len(ds) == 10
    for row, arrays in zip(ds, ds.with_format("numpy")):
        record, codes, ph = written[row["json"]["id"]]
        assert row["__key__"] == sample_key(record["id"])
        assert np.array_equal(np.asarray(row["codes.npy"]), codes) and np.array_equal(arrays["codes.npy"], codes)
        assert row["json"]["text"] == record["text"] and row["json"]["extra"] == record["extra"]
        if phonemes:
            assert row["phonemes.npy"] == ph.tolist()


def test_tar_bytes_are_reproducible(tmp_path):
    items = make_corpus(9, 1024)
    first, second = build(tmp_path / "a", items, 1024), build(tmp_path / "b", items, 1024)
    assert first["shards"] == second["shards"]
    for shard in first["shards"]:
        assert (tmp_path / "a" / shard["name"]).read_bytes() == (tmp_path / "b" / shard["name"]).read_bytes()
    with tarfile.open(tmp_path / "a" / "shard-000000.tar") as tar:
        headers = {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in tar.getmembers()}
    assert headers == {(0, 0, 0, "", "", 0o444)}


def test_plan_shards_is_disjoint_covering_and_independent_of_world_size():
    ids = [f"utt{i:02d}" for i in reversed(range(23))]
    single = {p.name: p.ids for p in plan_shards(ids, 5)}
    assert list(single) == [f"shard-{i:06d}.tar" for i in range(5)]
    assert [i for name in sorted(single) for i in single[name]] == sorted(ids)
    for world_size in (2, 3, 7):
        per_rank = [plan_shards(ids, 5, rank, world_size) for rank in range(world_size)]
        names = [p.name for plans in per_rank for p in plans]
        assert len(names) == len(set(names)) and {p.name: p.ids for plans in per_rank for p in plans} == single
    with pytest.raises(CorpusError, match="tar key"):
        plan_shards(["a.b", "a_b"], 5)
    with pytest.raises(CorpusError, match="rank"):
        plan_shards(ids, 5, rank=2, world_size=2)


def test_two_ranks_write_the_same_shards_as_one(tmp_path):
    items = make_corpus(10, 1024)
    single = build(tmp_path / "one", items, 1024, shard_size=3)
    for rank in (1, 0):
        write_corpus(tmp_path / "two", items, 3, 1024, rank=rank, world_size=2)
    assert write_manifest(tmp_path / "two", codec_info(1024), CORPUS_INFO) == single


def test_resume_after_kill_gives_the_same_manifest(tmp_path):
    items = make_corpus(14, 1024)
    skip = {sorted(items)[1], sorted(items)[9]}
    reference = build(tmp_path / "ref", items, 1024, shard_size=4, skip=skip)

    out = tmp_path / "run"
    plans = plan_shards(list(items), 4)
    writer = ShardWriter(out, plans, 1024, identity=identity())
    for utt_id in [i for plan in plans[:2] for i in plan.ids] + [plans[2].ids[0]]:
        writer.skip(utt_id, f"/corpora/toy/{utt_id}.wav", "audio too short") if utt_id in skip else writer.write(
            *items[utt_id]
        )
    del writer  # killed: shard 2 is only a .tmp
    assert (out / "shard-000002.tar.tmp").exists()
    (out / "shard-000001.tar.json").unlink()  # killed between the rename and the sidecar

    assert set(completed_shards(out, plans)) == {"shard-000000.tar"}
    assert sorted(p.name for p in out.iterdir()) == ["shard-000000.tar", "shard-000000.tar.json"]
    redone = write_corpus(out, items, 4, 1024, skip=skip)
    assert [p.name for p in redone] == ["shard-000001.tar", "shard-000002.tar", "shard-000003.tar"]
    assert write_manifest(out, codec_info(1024), CORPUS_INFO) == reference
    assert (out / "skipped.jsonl").read_text() == (tmp_path / "ref" / "skipped.jsonl").read_text()
    assert write_corpus(out, items, 4, 1024, skip=skip) == []  # nothing left to do


def test_resume_refuses_other_plans_and_codecs_and_redoes_damaged_shards(tmp_path):
    items = make_corpus(8, 1024)
    build(tmp_path, items, 1024, shard_size=4)
    with pytest.raises(CorpusError, match="shard_size"):
        completed_shards(tmp_path, plan_shards(list(items), 3))
    with pytest.raises(CorpusError, match="config_hash: 'cafe0123' vs 'deadbeef'"):
        completed_shards(tmp_path, plan_shards(list(items), 4), identity=identity(config_hash="deadbeef"))
    shard = tmp_path / "shard-000001.tar"
    damaged = bytearray(shard.read_bytes())
    damaged[600] ^= 1
    shard.write_bytes(bytes(damaged))
    assert set(completed_shards(tmp_path, plan_shards(list(items), 4))) == {"shard-000000.tar"}
    with pytest.raises(CorpusError, match="1 of 2 shards unfinished"):
        write_manifest(tmp_path, codec_info(1024), CORPUS_INFO)


def test_writer_checks_order_and_codes(tmp_path):
    items = make_corpus(3, 256)
    plans = plan_shards(list(items), 10)
    first, second = sorted(items)[:2]
    writer = ShardWriter(tmp_path, plans, 256)
    with pytest.raises(CorpusError, match="expected utterance"):
        writer.write(*items[second])
    record, codes, ph = items[first]
    with pytest.raises(CorpusError, match=r"outside \[0, 256\)"):
        writer.write(record, codes + 1, ph)
    writer.write(record, torch.from_numpy(codes), ph)  # torch codes are fine too
    with pytest.raises(CorpusError, match="phoneme ids missing"):
        writer.write(items[second][0], items[second][1], None)
    with pytest.raises(CorpusError, match="closed before"):
        writer.close()
    assert list(tmp_path.iterdir()) == []


def test_codec_mismatch_is_refused_naming_the_field(tmp_path):
    build(tmp_path, make_corpus(4, 1024), 1024)

    class Codec:
        sampling_rate, frame_rate, codebook_size, num_quantizers = 24000, 75.0, 1024, 3
        weights_digest = WEIGHTS_DIGEST

        def config_hash(self):
            return CONFIG_HASH

    TokenShardDataset(tmp_path, codec=Codec())
    with pytest.raises(CorpusError, match=r"frame_rate: .* has 75.0, the codec has 50.0"):
        TokenShardDataset(tmp_path, codec={**codec_info(1024), "frame_rate": 50.0})
    Codec.config_hash = lambda self: "0ther"
    with pytest.raises(CorpusError, match=r"config_hash: .*'cafe0123'.*'0ther'"):
        TokenShardDataset(tmp_path, codec=Codec())
    with pytest.raises(CorpusError, match="manifest.json not found"):
        TokenShardDataset(tmp_path / "nowhere")


def test_collate_pads_exactly():
    samples = [
        {"id": "a", "codes": torch.tensor([[1, 2, 3], [4, 5, 6]]), "phoneme_ids": torch.tensor([7]), "record": {}},
        {"id": "b", "codes": torch.tensor([[8], [9]]), "phoneme_ids": torch.tensor([1, 2, 3, 4]), "record": {"x": 1}},
    ]
    batch = collate_codes(samples, pad_code=-1, pad_phoneme=99)
    assert torch.equal(batch["codes"], torch.tensor([[[1, 2, 3], [4, 5, 6]], [[8, -1, -1], [9, -1, -1]]]))
    assert batch["codes"].dtype == torch.long
    assert torch.equal(batch["lengths"], torch.tensor([3, 1]))
    assert torch.equal(batch["mask"], torch.tensor([[True, True, True], [True, False, False]]))
    assert torch.equal(batch["phoneme_ids"], torch.tensor([[7, 99, 99, 99], [1, 2, 3, 4]]))
    assert torch.equal(batch["phoneme_lengths"], torch.tensor([1, 4]))
    assert torch.equal(batch["phoneme_mask"], torch.tensor([[True, False, False, False], [True, True, True, True]]))
    assert batch["ids"] == ["a", "b"] and batch["records"] == [{}, {"x": 1}]
    no_phonemes = collate_codes([{**s, "phoneme_ids": None} for s in samples])
    assert no_phonemes["phoneme_ids"] is None and no_phonemes["phoneme_lengths"] is None
    assert no_phonemes["phoneme_mask"] is None


def test_bucketing_yields_every_sample_once_within_budget():
    rng = np.random.default_rng(3)
    samples = [{"id": f"u{i}", "codes": torch.zeros(2, int(rng.integers(1, 101)))} for i in range(300)]
    batches = list(bucket_batches(samples, max_frames_per_batch=400, num_buckets=4, warmup=50, seed=1))
    assert sorted(s["id"] for b in batches for s in b) == sorted(s["id"] for s in samples)
    assert all(len(b) * max(s["codes"].shape[-1] for s in b) <= 400 for b in batches)
    again = list(bucket_batches(samples, max_frames_per_batch=400, num_buckets=4, warmup=50, seed=1))
    assert [[s["id"] for s in b] for b in batches] == [[s["id"] for s in b] for b in again]
    with pytest.raises(CorpusError, match="max_frames"):
        list(bucket_batches(samples, max_frames_per_batch=50))


def test_shuffle_split_and_dataloader_workers_yield_each_sample_once(tmp_path, monkeypatch):
    items = make_corpus(21, 1024)
    build(tmp_path, items, 1024, shard_size=3)  # 7 shards
    plain = [s["id"] for s in TokenShardDataset(tmp_path)]
    assert plain == sorted(items)
    ds = TokenShardDataset(tmp_path, shuffle=True, seed=5, buffer_size=4)
    epoch0, epoch0_again = [s["id"] for s in ds], [s["id"] for s in ds]
    ds.set_epoch(1)
    assert epoch0 == epoch0_again != [s["id"] for s in ds] and sorted(epoch0) == plain
    assert [s["id"] for s in TokenShardDataset(tmp_path, max_frames=20)] == [
        i for i in plain if items[i][1].shape[1] <= 20
    ]  # fmt: skip

    per_rank = []
    for rank in range(3):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "3")
        per_rank += [s["id"] for s in ds]
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    assert sorted(per_rank) == plain

    loader = DataLoader(ds, batch_size=None, num_workers=2)
    assert sorted(s["id"] for s in loader) == plain
    batcher = DurationBucketBatcher(ds, max_frames_per_batch=120, num_buckets=3, warmup=5)
    batches = list(DataLoader(batcher, batch_size=None, num_workers=2, collate_fn=collate_codes))
    assert sorted(i for b in batches for i in b["ids"]) == plain
    assert all(b["codes"].shape[0] * b["codes"].shape[-1] <= 120 for b in batches)
