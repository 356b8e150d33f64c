"""Codec identity: a decoder retrained on frozen tokens keeps the tokens' identity (tokenizer.identity), and
every place that compares records (shard reader, TTS corpora, TTS model vs codec) accepts it, while another
encoder is still refused naming the field."""

import pytest
import torch

from data_prep.dataset import check_codec
from data_prep.errors import CorpusError
from tokenizer import AutoCodecConfig, AutoCodecTokenizer
from tokenizer.identity import tokens_mismatch
from tts.codec import load_codec
from tts.data import check_codec_identity
from tts.errors import TTSError


def _tiny(seed=0):
    return AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("language-codec", preset="tiny"), seed=seed)


def _retrained_decoder(tok):
    """A copy of `tok` whose decoder moved (as train-codec with model.freeze=[encoder, quantizer] leaves it)."""
    new = _tiny()
    new.model.load_state_dict(tok.model.state_dict())
    with torch.no_grad():
        for p in new.model.backbone.parameters():
            p.add_(0.01)
    new.config.same_tokens_as = [tok.weights_digest]
    return new


def test_tokens_digest_covers_encoder_and_quantizer_only():
    a = _tiny()
    before = (a.weights_digest, a.tokens_digest)
    with torch.no_grad():
        next(a.model.head.parameters()).add_(1.0)
    assert a.weights_digest != before[0] and a.tokens_digest == before[1]
    with torch.no_grad():
        next(a.model.encoder.parameters()).add_(1.0)
    assert a.tokens_digest != before[1]
    b = _tiny()
    with torch.no_grad():
        b.model.quantizer.layers[0].embed.add_(1.0)  # a codebook (a buffer) is part of what makes the tokens
    assert b.tokens_digest != before[1]
    assert a.config_hash == _tiny().config_hash
    info = a.codec_info()
    assert info["tokens_digest"] == a.tokens_digest and info["same_tokens_as"] == []


def test_tokens_mismatch_rules():
    base = {"model_type": "language_codec", "config_hash": "c", "weights_digest": "w1", "tokens_digest": "t"}
    assert tokens_mismatch(base, dict(base)) is None
    assert tokens_mismatch(base, {**base, "weights_digest": "w2"}) is None                      # other decoder
    assert tokens_mismatch(base, {**base, "weights_digest": "w2", "tokens_digest": "u"}) == "tokens_digest"
    assert tokens_mismatch(base, {**base, "config_hash": "d"}) == "config_hash"
    assert tokens_mismatch(base, {**base, "model_type": "stable_codec"}) == "model_type"
    old = {"model_type": "language_codec", "config_hash": "c", "weights_digest": "w1"}  # before tokens digests
    new = {**base, "weights_digest": "w2", "same_tokens_as": ["w1"]}
    assert tokens_mismatch(old, new) is None and tokens_mismatch(new, old) is None
    assert tokens_mismatch(old, {**new, "same_tokens_as": []}) == "weights_digest"


def test_a_retrained_decoder_is_accepted_where_records_are_compared(tmp_path):
    start = _tiny()
    start.save_pretrained(tmp_path / "start")
    new = _retrained_decoder(start)
    new.save_pretrained(tmp_path / "new")
    loaded = AutoCodecTokenizer.from_pretrained(tmp_path / "new")
    assert loaded.config.same_tokens_as == [start.weights_digest] and loaded.config_hash == start.config_hash
    assert loaded.tokens_digest == start.tokens_digest != loaded.weights_digest

    # records written before tokens digests existed: only the weights digest
    old_record = {**start.codec_info(4), "name": "language-codec"}
    for key in ("tokens_digest", "same_tokens_as"):
        old_record.pop(key)
    new_record = {**loaded.codec_info(4), "name": "language-codec"}
    for record in (old_record, start.codec_info(4)):
        assert load_codec(record, str(tmp_path / "new")).weights_digest == loaded.weights_digest   # TTS model
        check_codec({"codec": record}, loaded)                                                       # shards
        check_codec_identity(record, new_record, "a", "b")                                           # corpora

    other = _tiny(seed=1)  # another encoder: refused, naming the field
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(TTSError, match="codec mismatch in tokens_digest: the model has"):
        load_codec(start.codec_info(4), str(tmp_path / "other"))
    with pytest.raises(TTSError, match="codec mismatch in weights_digest: the model has"):
        load_codec(old_record, str(tmp_path / "other"))
    with pytest.raises(CorpusError, match="codec mismatch in tokens_digest"):
        check_codec({"codec": start.codec_info(4)}, other)
    with pytest.raises(TTSError, match="codec mismatch in weights_digest"):
        check_codec_identity(old_record, other.codec_info(4), "a", "b")


def test_from_record_loads_reapplies_and_checks_with_the_one_record_check(tmp_path):
    """`AutoCodecTokenizer.from_record`: the recorded path, else the recorded name; the record's post-hoc FSQ
    setting re-applied; another codec, another shape of tokens or an unsupported K refused naming the field."""
    from tokenizer import CodecError
    from tokenizer.identity import check_same_tokens

    start = _tiny()
    start.save_pretrained(tmp_path / "start")
    record = {**start.codec_info(4), "name_or_path": str(tmp_path / "gone"), "name": str(tmp_path / "start")}
    assert AutoCodecTokenizer.from_record(record).weights_digest == start.weights_digest  # path gone: the name
    with pytest.raises(CodecError, match="cannot load the codec .*gone.* or .*gone-too"):
        AutoCodecTokenizer.from_record({**record, "name": str(tmp_path / "gone-too")})
    with pytest.raises(CodecError, match="codec mismatch in codebook_size"):
        AutoCodecTokenizer.from_record({**record, "codebook_size": 7}, tmp_path / "start")
    with pytest.raises(CodecError, match="cannot make 99 codes per frame"):
        AutoCodecTokenizer.from_record({**record, "num_quantizers": 99}, tmp_path / "start")
    other = _tiny(seed=1)
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(CodecError, match="codec mismatch in tokens_digest"):
        AutoCodecTokenizer.from_record(record, tmp_path / "other")
    with pytest.raises(CodecError, match="a records no codec weights_digest"):
        check_same_tokens({**record, "weights_digest": None}, record, "a", "b")

    fsq = AutoCodecTokenizer.from_config(AutoCodecConfig.for_model("stable-codec", preset="tiny"), seed=0)
    fsq.save_pretrained(tmp_path / "fsq")
    assert fsq.supports_post_hoc_quantization and not start.supports_post_hoc_quantization
    levels = 3 if fsq.levels != 3 else 5
    fsq.set_quantization(levels=levels, stages=2)
    loaded = AutoCodecTokenizer.from_record(fsq.codec_info(), tmp_path / "fsq")  # saved before the change
    assert (loaded.levels, loaded.stages) == (levels, 2) and loaded.codebook_size == fsq.codebook_size
