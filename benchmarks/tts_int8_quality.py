"""What int8 dynamic quantization costs a trained VALL-E: WER and token agreement of the float model and its
int8 copy on the same items, beside their generation speed (issue 28, deliverable 4).

    python benchmarks/tts_int8_quality.py --model runs/e2e_valle/run/final --data runs/e2e_tokens [--threads 1]

Every utterance of `--data`, continuation mode from its first `--prompt-seconds` with the whole transcript,
greedy decoding (`synthesize`'s default), as `tts_end_to_end.py` scores it. The int8 copy has every nn.Linear
of the model (AR and NAR) dynamically quantized (`torch.ao.quantization.quantize_dynamic`: int8 weights,
activations quantized per batch); embeddings and norms stay float. Prints and writes (`--json`) the WER of
each against the codec resynthesis's, the share of generated tokens equal to the float model's per level,
the length ratio and the generation RTF (this machine, `--threads`).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from tts_end_to_end import continuation_inputs, same_frame
from tts_synthesis_speed import quantized


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--prompt-seconds", type=float, default=1.5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from evaluation.asr import get_asr, wer
    from tts.data import TTSCorpus
    from tts.generation import GenerationConfig
    from tts.synthesis import Synthesizer

    synth = Synthesizer.from_pretrained(args.model)
    model, codec = synth.model.eval(), synth.codec
    corpus = TTSCorpus.load([args.data], valid_utterances=0)
    n_prompt = round(args.prompt_seconds * corpus.frame_rate)
    utts = sorted((u for u in corpus.train if u.num_frames > n_prompt), key=lambda u: u.id)
    phonemes, prompts, truths, rows = continuation_inputs(utts, n_prompt)
    int8 = quantized(model).eval()
    asr, texts, sr = get_asr("whisper"), [r["text"] for r in rows], codec.sampling_rate
    result = {"model": args.model, "utterances": len(utts), "threads": args.threads, "asr": asr.name,
              "wer_codec_resynthesis": 100 * wer(texts, [asr.transcribe(codec.batch_decode(u.codes.long()[None])[0],
                                                                        sr) for u in utts])}
    outputs = {}
    for name, m in (("float32", model), ("int8", int8)):
        t0 = time.perf_counter()
        codes = [m.generate([ph], [pr], [len(ph)], GenerationConfig())[0] for ph, pr in zip(phonemes, prompts)]
        seconds = time.perf_counter() - t0
        outputs[name] = codes
        wavs = [codec.batch_decode(torch.cat([pr, c], -1)[None])[0] for pr, c in zip(prompts, codes)]
        frames = sum(c.shape[-1] for c in codes)
        result[name] = {"rtf": seconds / (frames / corpus.frame_rate),
                        "wer": 100 * wer(texts, [asr.transcribe(a, sr) for a in wavs]),
                        "length_ratio": float(np.mean([c.shape[-1] / t.shape[-1] for c, t in zip(codes, truths)]))}
    agree = [same_frame(a, b) for a, b in zip(outputs["int8"], outputs["float32"])]
    result["int8"]["same_tokens_as_float32"] = np.mean(agree, axis=0).round(4).tolist()
    result["int8"]["speedup"] = result["float32"]["rtf"] / result["int8"]["rtf"]
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
