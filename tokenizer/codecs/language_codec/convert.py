"""Convert the authors' Language-Codec checkpoint to our `save_pretrained` format.

The official Lightning checkpoint keeps weights under `state_dict`:
- `feature_extractor.encodec.encoder.model.{i}.*`: EnCodec's SEANet encoder (legacy weight norm
  `weight_g` / `weight_v`), LSTM at `model.{i}.lstm.*`;
- `feature_extractor.encodec.quantizer.vq.layers.{k}._codebook.{embed,inited,cluster_size,embed_avg}`;
- `backbone.*` (Vocos: embed, AdaLayerNorm `norm.{scale,shift}`, `convnext.{i}`, `final_layer_norm`),
  `head.out` (dim -> n_fft + 2), and `head.istft.window`: the ISTFT's Hann window, a buffer that the
  authors' strict loader requires, so every release carries it. Ours computes that window, so the key
  is checked (periodic Hann of n_fft samples) and dropped.
Discriminators, the mel loss buffers and the unused SEANet decoder are dropped. The released model
always codes with all 8 quantizers and picks one of 4 AdaLayerNorm rows by a bandwidth id (0-3), so the
converted config has `quantizer_counts=[8]`, `adanorm_num_embeddings=4`; row 0 is used unless
`decode(..., bandwidth_id=i)` says otherwise.

Safety: `.ckpt`/`.pt`/`.bin` files are read with `torch.load(weights_only=True)` (tensors and plain
containers only, never arbitrary objects); `.safetensors` files are read directly.

CLI: `convert-language-codec CHECKPOINT OUT_DIR [--sampling-rate 24000]`.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch

from ...checkpoints import copy_weight_norm, load_state_dict, save_converted
from ...utils.cli import run_cli
from ...utils.errors import CodecError
from .configuration_language_codec import LanguageCodecConfig
from .modeling_language_codec import LanguageCodecModel


ENCODER = "feature_extractor.encodec.encoder.model."
QUANTIZER = "feature_extractor.encodec.quantizer.vq.layers."
DROPPED = ("multiperioddisc.", "multiresddisc.", "dac.", "dacdiscriminator.", "melspec_loss.",
           "feature_extractor.encodec.decoder.")
WINDOW = "head.istft.window"


def check_window(sd: dict[str, torch.Tensor], n_fft: int) -> None:
    """`head.istft.window`, when present, must be the periodic Hann window of `n_fft` samples that our
    ISTFT computes (`torch.hann_window(n_fft)`); anything else would decode differently."""
    if WINDOW not in sd:
        return
    window, expected = sd[WINDOW].float(), torch.hann_window(n_fft)
    if window.shape != expected.shape or not torch.allclose(window, expected, atol=1e-6):
        raise CodecError(f"{WINDOW} of shape {tuple(window.shape)} is not the periodic Hann window of n_fft={n_fft} "
                         "samples that this ISTFT uses: not supported")


def config_from_state_dict(sd: dict[str, torch.Tensor], sampling_rate: int = 24000) -> LanguageCodecConfig:
    """Architecture read off the tensor shapes."""
    idx = sorted({int(m.group(1)) for k in sd if (m := re.match(re.escape(ENCODER) + r"(\d+)\.", k))})
    downs = [i for i in idx if f"{ENCODER}{i}.conv.conv.weight_v" in sd and i not in (idx[0], idx[-1])]
    strides = [sd[f"{ENCODER}{i}.conv.conv.weight_v"].shape[-1] // 2 for i in downs]
    first = sd[f"{ENCODER}{idx[0]}.conv.conv.weight_v"]
    last = sd[f"{ENCODER}{idx[-1]}.conv.conv.weight_v"]
    res_hidden = sd[f"{ENCODER}{idx[1]}.block.1.conv.conv.weight_v"]
    lstm_layers = len([k for k in sd if k.startswith(ENCODER) and re.search(r"lstm\.weight_ih_l\d+$", k)])
    n_q = len({k[len(QUANTIZER):].split(".")[0] for k in sd if k.startswith(QUANTIZER)})
    embed = sd[f"{QUANTIZER}0._codebook.embed"]
    convnext = {int(k.split(".")[2]) for k in sd if k.startswith("backbone.convnext.")}
    hidden = sd["backbone.embed.weight"].shape[0]
    return LanguageCodecConfig(
        sampling_rate=sampling_rate, encoder_filters=first.shape[0], encoder_strides=strides,
        encoder_residual_layers=(downs[0] - idx[0] - 1) - 1, encoder_kernel_size=first.shape[-1],
        encoder_compress=first.shape[0] // res_hidden.shape[0], encoder_lstm_layers=lstm_layers,
        latent_dim=last.shape[0], num_quantizers=n_q, codebook_size=embed.shape[0], num_parallel_quantizers=3,
        quantizer_counts=[n_q], hidden_size=hidden, intermediate_size=sd["backbone.convnext.0.pwconv1.weight"].shape[0],
        num_hidden_layers=len(convnext), num_attention_layers=0,
        adanorm_num_embeddings=sd["backbone.norm.scale.weight"].shape[0], n_fft=sd["head.out.weight"].shape[0] - 2,
    )


def convert_state_dict(sd: dict[str, torch.Tensor], config: LanguageCodecConfig) -> dict[str, torch.Tensor]:
    """Official key layout -> our module names. Raises CodecError on keys it does not know."""
    out: dict[str, torch.Tensor] = {}
    i = 0
    copy_weight_norm(sd, f"{ENCODER}{i}.conv.conv.", "encoder.input_conv.conv", out)
    for b in range(len(config.encoder_strides)):
        for j in range(config.encoder_residual_layers):
            i += 1
            src, dst = f"{ENCODER}{i}.", f"encoder.blocks.{b}.residual.{j}"
            copy_weight_norm(sd, src + "block.1.conv.conv.", dst + ".conv1.conv", out)
            copy_weight_norm(sd, src + "block.3.conv.conv.", dst + ".conv2.conv", out)
            copy_weight_norm(sd, src + "shortcut.conv.conv.", dst + ".shortcut.conv", out)
        i += 2  # activation, then the strided conv
        copy_weight_norm(sd, f"{ENCODER}{i}.conv.conv.", f"encoder.blocks.{b}.downsample.conv", out)
    i += 1
    for k, v in sd.items():
        if k.startswith(f"{ENCODER}{i}.lstm."):
            out["encoder.lstm.lstm." + k[len(f"{ENCODER}{i}.lstm."):]] = v
    i += 2  # activation, then the output conv
    copy_weight_norm(sd, f"{ENCODER}{i}.conv.conv.", "encoder.output_conv.conv", out)
    for k, v in sd.items():
        if k.startswith(QUANTIZER):
            layer, _, name = k[len(QUANTIZER):].split(".", 2)
            out[f"quantizer.layers.{layer}.{name}"] = v
        elif k.startswith(("backbone.", "head.")) and k != WINDOW:
            out[k] = v
    check_window(sd, config.n_fft)
    used = len(out)
    known = sum(1 for k in sd if k.startswith((ENCODER, QUANTIZER, "backbone.", "head.")) and k != WINDOW)
    unknown = [k for k in sd if not k.startswith((ENCODER, QUANTIZER, "backbone.", "head.") + DROPPED)]
    if unknown or used != known:
        raise CodecError(f"unexpected keys in Language-Codec checkpoint: {unknown[:10]} (mapped {used} of {known})")
    return out


def convert_language_codec(checkpoint: str | Path, output_dir: str | Path, sampling_rate: int = 24000) -> Path:
    """Official checkpoint file -> `save_pretrained` directory loadable by `AutoCodecTokenizer`."""
    sd = load_state_dict(checkpoint)
    if not any(k.startswith(ENCODER) for k in sd):
        raise CodecError(f"{checkpoint} is not a Language-Codec checkpoint: no key starts with {ENCODER!r}")
    try:
        config = config_from_state_dict(sd, sampling_rate)
    except (KeyError, IndexError) as exc:  # a key the official layout always has is absent
        raise CodecError(f"{checkpoint} is not a complete Language-Codec checkpoint: cannot read the architecture "
                         f"({type(exc).__name__} {exc})") from exc
    model = LanguageCodecModel(config)
    ours = convert_state_dict(sd, config)
    return save_converted(model, ours, output_dir, checkpoint)


def main(argv: list[str] | None = None) -> int:
    return run_cli("convert-language-codec", _main, argv)


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="convert-language-codec", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="official .ckpt / .pt / .safetensors file")
    parser.add_argument("output_dir")
    parser.add_argument("--sampling-rate", type=int, default=24000)
    args = parser.parse_args(argv)
    out = convert_language_codec(args.checkpoint, args.output_dir, args.sampling_rate)
    print(f"wrote {out}/config.json and {out}/model.safetensors")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
