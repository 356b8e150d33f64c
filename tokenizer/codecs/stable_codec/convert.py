"""Convert the official Stable Codec release (stable-codec 0.1.2 on stable-audio-tools 0.0.17) to our
`save_pretrained` format.

Input: a directory like the Hugging Face repo `stabilityai/stable-codec-speech-16k`: `model_config.json`
(stable-audio-tools autoencoder config: `sample_rate`; `pretransform` `patched` with `patch_size`;
`encoder` / `decoder` of type `taae` with `channels`, `c_mults`, `strides`, `latent_dim`,
`transformer_depths`, `sliding_window`; `bottleneck` `dithered_fsq` with `dim`, `levels`) and
`model.safetensors` (or a Lightning `.ckpt`, whose keys carry an `autoencoder.` prefix).

Official layout (stable-audio-tools `TAAEEncoder` / `TAAEDecoder`):
- `encoder.layers.0` WN conv patches -> width (k 7); `encoder.layers.{b}` (b = 1..n) a block whose
  `layers.1` is the strided WN conv (k 2s, absent for stride 1) and `layers.2.{i}` its transformer
  blocks; `encoder.layers.{n+2}` WN conv to the latent (k 3).
- `decoder.layers.0` WN conv latent -> width (k 3); `decoder.layers.{b}`: transformers at `layers.0.{i}`,
  WN transposed conv at `layers.2`; `decoder.layers.{n+2}` WN conv to patches (k 7, no bias).
- transformer block: `pre_norm.{gamma,beta}`, `self_attn.to_qkv.weight`, `self_attn.to_out.weight`,
  `self_attn.{q,k}_norm.{weight,bias}`, `self_attn_scale.scale`, `ff_norm.{gamma,beta}`,
  `ff.ff.0.proj.{weight,bias}`, `ff.ff.2.{weight,bias}`, `ff_scale.scale`, `rope.inv_freq` (checked
  against ours, not stored: we compute it).

Differences from the official code, on purpose: the sliding window is always applied (their CPU path
without FlashAttention silently attends to the whole sequence, so both agree only while no stage is
longer than the window), and training-mode FSQ tokens are rounded (theirs are cast without rounding).
The training level set is not in the release's config: we record the paper's {17, 9, 5}
(`--train-levels`), which is what allows the post-hoc presets down to 5 levels.

Safety: `.ckpt`/`.pt` files are read with `torch.load(weights_only=True)`; `.safetensors` directly.

CLI: `convert-stable-codec OFFICIAL_DIR OUT_DIR [--train-levels 17,9,5] [--quantization 2x15625_700bps]`.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch

from ...checkpoints import copy_weight_norm, load_state_dict, save_converted
from ...utils.cli import run_cli
from ...utils.errors import CodecError
from .configuration_stable_codec import QUANTIZATION_PRESETS, StableCodecConfig
from .modeling_stable_codec import StableCodecModel


_BLOCK = {
    "pre_norm.gamma": "pre_norm.weight", "pre_norm.beta": "pre_norm.bias",
    "self_attn.to_qkv.weight": "attn.to_qkv.weight", "self_attn.to_out.weight": "attn.to_out.weight",
    "self_attn.q_norm.weight": "attn.q_norm.weight", "self_attn.q_norm.bias": "attn.q_norm.bias",
    "self_attn.k_norm.weight": "attn.k_norm.weight", "self_attn.k_norm.bias": "attn.k_norm.bias",
    "self_attn_scale.scale": "attn_scale.scale", "ff_norm.gamma": "ff_norm.weight", "ff_norm.beta": "ff_norm.bias",
    "ff.ff.0.proj.weight": "ff.proj.weight", "ff.ff.0.proj.bias": "ff.proj.bias",
    "ff.ff.2.weight": "ff.out.weight", "ff.ff.2.bias": "ff.out.bias", "ff_scale.scale": "ff_scale.scale",
}
# architecture options of the official TAAE we do not implement, with the value the release uses
_UNSUPPORTED = {"use_snake": False, "conformer": False, "use_dilated_conv": False, "layer_scale": True}


def _find(cfg: dict, key: str):
    """`key` at the top level of the official config or under `model`."""
    for where in (cfg.get("model", {}), cfg):
        if key in where:
            return where[key]
    raise CodecError(f"official model_config.json has no {key!r}")


def config_from_official(cfg: dict, train_levels=(17, 9, 5)) -> StableCodecConfig:
    """Our config from the official `model_config.json` dict."""
    enc, dec = _find(cfg, "encoder"), _find(cfg, "decoder")
    bott, pre = _find(cfg, "bottleneck"), _find(cfg, "pretransform")
    for name, part, want in (("encoder", enc, "taae"), ("decoder", dec, "taae"), ("bottleneck", bott, "dithered_fsq"),
                             ("pretransform", pre, "patched")):
        if part.get("type") != want:
            raise CodecError(f"official {name} type {part.get('type')!r} is not supported (expected {want!r})")
    e, d, b, p = enc["config"], dec["config"], bott["config"], pre["config"]
    for key in ("channels", "c_mults", "strides", "latent_dim", "transformer_depths", "sliding_window"):
        if e.get(key) != d.get(key):
            raise CodecError(f"encoder and decoder differ in {key}: {e.get(key)} vs {d.get(key)}; not supported")
    for key, want in _UNSUPPORTED.items():
        if e.get(key, want) != want or d.get(key, want) != want:
            raise CodecError(f"official TAAE option {key}={e.get(key)} is not supported (only {want})")
    if p.get("channels", 1) != 1 or b.get("num_codebooks", 1) != 1:
        raise CodecError(f"only mono, single-codebook models are supported (pretransform {p}, bottleneck {b})")
    levels = b["levels"]
    if isinstance(levels, list):
        if len(set(levels)) != 1:
            raise CodecError(f"per-dimension FSQ levels {levels} are not supported")
        levels = levels[0]
    if b.get("dim", e["latent_dim"]) != e["latent_dim"]:
        raise CodecError(f"bottleneck dim {b['dim']} differs from the encoder latent_dim {e['latent_dim']}")
    train_levels = sorted({int(levels), *map(int, train_levels)}, reverse=True)
    return StableCodecConfig(
        sampling_rate=int(_find(cfg, "sample_rate")), patch_size=int(p["patch_size"]),
        hidden_sizes=[int(c) * int(e["channels"]) for c in e["c_mults"]], strides=list(e["strides"]),
        depths=list(e["transformer_depths"]), head_dim=128,
        sliding_window=list(e.get("sliding_window", [63, 64])), latent_dim=int(e["latent_dim"]),
        train_levels=train_levels, quantizer_levels=int(levels), num_quantizers=1,
    )


def _strip_prefix(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Unwrap a Lightning training checkpoint: keep `autoencoder.*` (dropping discriminators, EMA...)."""
    if any(k.startswith("autoencoder.") for k in sd):
        return {k[len("autoencoder."):]: v for k, v in sd.items() if k.startswith("autoencoder.")}
    return sd


def convert_state_dict(sd: dict[str, torch.Tensor], config: StableCodecConfig) -> dict[str, torch.Tensor]:
    """Official key layout -> our module names. Raises CodecError on keys it does not know."""
    n = len(config.strides)
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()

    def conv(src: str, dst: str) -> None:
        used.update(copy_weight_norm(sd, src, f"{dst}.conv", out))

    def blocks(src: str, dst: str) -> None:
        idx = sorted({int(m.group(1)) for k in sd if (m := re.match(re.escape(src) + r"(\d+)\.", k))})
        for ours, theirs in enumerate(idx):
            for name, mapped in _BLOCK.items():
                key = f"{src}{theirs}.{name}"
                if key not in sd:
                    raise CodecError(f"official checkpoint lacks {key}")
                out[f"{dst}.{ours}.{mapped}"] = sd[key]
                used.add(key)
            rope = f"{src}{theirs}.rope.inv_freq"
            if rope in sd:
                head = min(config.head_dim, sd[f"{src}{theirs}.self_attn.to_out.weight"].shape[0])
                dim = head // 2
                expected = 1.0 / (config.rope_base ** (torch.arange(0, dim, 2).float() / dim))
                if sd[rope].shape != expected.shape or not torch.allclose(sd[rope].float(), expected):
                    raise CodecError(f"{rope} is not the standard RoPE of {dim} dims: not supported")
                used.add(rope)

    conv("encoder.layers.0.", "encoder.input_conv")
    for b in range(n):
        conv(f"encoder.layers.{b + 1}.layers.1.", f"encoder.downsample.{b}")
        blocks(f"encoder.layers.{b + 1}.layers.2.", f"encoder.blocks.{b}.blocks")
    conv(f"encoder.layers.{n + 2}.", "encoder.output_conv")
    conv("decoder.layers.0.", "decoder.input_conv")
    for j in range(n):
        blocks(f"decoder.layers.{j + 1}.layers.0.", f"decoder.blocks.{j}.blocks")
        conv(f"decoder.layers.{j + 1}.layers.2.", f"decoder.upsample.{j}")
    conv(f"decoder.layers.{n + 2}.", "decoder.output_conv")
    unknown = sorted(set(sd) - used)
    if unknown:
        raise CodecError(f"unexpected keys in the official Stable Codec checkpoint: {unknown[:10]}")
    return out


def _checkpoint_file(directory: Path) -> Path:
    for name in ("model.safetensors", "model.ckpt"):
        if (directory / name).is_file():
            return directory / name
    found = sorted(directory.glob("*.safetensors")) + sorted(directory.glob("*.ckpt"))
    if not found:
        raise CodecError(f"no model.safetensors or .ckpt file in {directory}")
    return found[0]


def convert_stable_codec(official_dir: str | Path, output_dir: str | Path, train_levels=(17, 9, 5),
                         quantization: str | None = None) -> Path:
    """Official release directory (`model_config.json` + weights) -> `save_pretrained` directory loadable by
    `AutoCodecTokenizer`. `quantization`: an optional post-hoc preset ("2x15625_700bps", ...) saved as the
    default token configuration; otherwise tokens use the trained 17-level bottleneck, one stage."""
    official_dir = Path(official_dir)
    if not official_dir.is_dir():
        raise CodecError(f"official Stable Codec directory not found: {official_dir}")
    try:
        cfg = json.loads((official_dir / "model_config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CodecError(f"cannot read {official_dir / 'model_config.json'}: {exc}") from exc
    try:
        config = config_from_official(cfg, train_levels)
    except (KeyError, TypeError, AttributeError) as exc:  # a field of the official schema is absent or mistyped
        raise CodecError(f"{official_dir / 'model_config.json'} is not a stable-audio-tools TAAE config: "
                         f"{type(exc).__name__} {exc}") from exc
    if quantization is not None:
        config.set_quantization(preset=quantization)
    sd = _strip_prefix(load_state_dict(_checkpoint_file(official_dir)))
    ours = convert_state_dict(sd, config)
    model = StableCodecModel(config)
    return save_converted(model, ours, output_dir, official_dir)


def main(argv: list[str] | None = None) -> int:
    return run_cli("convert-stable-codec", _main, argv)


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="convert-stable-codec", description=__doc__.split("\n\n")[0])
    parser.add_argument("official_dir", help="directory with model_config.json and model.safetensors (or .ckpt)")
    parser.add_argument("output_dir")
    parser.add_argument("--train-levels", default="17,9,5",
                        help="FSQ level counts the model was trained with (paper: 17,9,5)")
    parser.add_argument("--quantization", choices=sorted(QUANTIZATION_PRESETS),
                        help="post-hoc FSQ preset saved as the token default (default: trained 17 levels, 1 stage)")
    args = parser.parse_args(argv)
    try:
        levels = [int(v) for v in args.train_levels.split(",")]
    except ValueError:
        raise CodecError(f"--train-levels must be comma-separated integers, got {args.train_levels!r}") from None
    out = convert_stable_codec(args.official_dir, args.output_dir, levels, args.quantization)
    config = StableCodecConfig.from_pretrained(str(out))
    print(f"wrote {out}/config.json and {out}/model.safetensors: {config.frame_rate:g} Hz, "
          f"{config.num_quantizers} x {config.codebook_size} codes, {config.bitrate:g} bps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
