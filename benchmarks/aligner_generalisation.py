"""Does the joint aligner find phoneme timing in utterances it never saw? (MobileSpeech, issue 14)

    python benchmarks/aligner_generalisation.py --data TOKENS [--features codec codes] [--steps 800]

Trains `tts.alignment.AlignmentModule` alone (the forward-sum loss MobileSpeech trains it with, the
beta-binomial prior for the first `--prior-steps`) on the training utterances of token shards, holding out
`--valid` of them (the trainer's hash split), once per frame representation:
- `codec`: frames read through the codec's per-code vectors (`CodecTokenizer.code_vectors`, frozen), the
  default since this measurement;
- `codes`: a learned embedding per code, the earlier design.
Every `--every` steps it prints the forward-sum loss *without* the prior on 27 training utterances and on
the held-out ones, beside the same loss for a uniform likelihood: an aligner that learned phonemes ends
clearly below uniform on held-out utterances, one that memorised frames ends at or above it. `--plot`
draws the MAS paths of four held-out utterances for each representation.
"""

from __future__ import annotations

import argparse
import random
import time

import torch
from torch import nn

from tokenizer.utils.cli import run_cli
from tokenizer.utils.masking import length_mask
from tts.alignment import AlignmentModule, beta_binomial_prior, forward_sum_loss, hard_alignment, plot_alignments
from tts.codec import load_codec
from tts.data import TTSCorpus, pad


def frames_batch(utts, K):
    ph, pl = pad([u.phonemes.long() for u in utts])
    fl = torch.tensor([u.num_frames for u in utts])
    codes = torch.zeros(len(utts), K, int(fl.max()), dtype=torch.long)
    for i, u in enumerate(utts):
        codes[i, :, : u.num_frames] = u.codes.long()
    return ph, pl, codes, fl


def log_likelihood(model, utts, K, prior: bool):
    ph, pl, codes, fl = frames_batch(utts, K)
    pm, fm = length_mask(pl, ph.shape[1]), length_mask(fl, codes.shape[-1])
    log_prior = beta_binomial_prior(pl.tolist(), fl.tolist()) if prior else None
    return model(ph, pm, codes, fm, log_prior), pl, fl


@torch.no_grad()
def losses(model, utts, K, batch: int = 16) -> tuple[float, float]:
    """Mean forward-sum loss without the prior, and the same for a uniform likelihood."""
    model.eval()
    total = uniform = 0.0
    for i in range(0, len(utts), batch):
        chunk = utts[i: i + batch]
        ll, pl, fl = log_likelihood(model, chunk, K, prior=False)
        pm = length_mask(pl, ll.shape[1])
        flat = torch.zeros_like(ll).masked_fill(~pm[:, :, None], -1e4).log_softmax(1).masked_fill(~pm[:, :, None], 0)
        total += float(forward_sum_loss(ll, pl, fl)) * len(chunk)
        uniform += float(forward_sum_loss(flat, pl, fl)) * len(chunk)
    model.train()
    return total / len(utts), uniform / len(utts)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="token shard directory (with phonemes)")
    p.add_argument("--features", nargs="+", default=["codec", "codes"], choices=["codec", "codes"])
    p.add_argument("--valid", type=int, default=27, help="held-out utterances")
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--prior-steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--dim", type=int, default=64, help="aligner width (MobileSpeech tiny: 64)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--plot", default=None, help="PNG of held-out alignments")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    corpus = TTSCorpus.load([args.data], valid_utterances=args.valid)
    K, V = corpus.num_quantizers, corpus.codebook_size
    print(f"{len(corpus.train)} training / {len(corpus.valid)} held-out utterances, codes {K} x {V}")
    results, plots = {}, []
    for features in args.features:
        random.seed(0)
        torch.manual_seed(0)
        if features == "codec":
            table = load_codec(corpus.codec, where=args.data).code_vectors(K)
            model = AlignmentModule(len(corpus.vocab), K, V, args.dim, code_dim=table.shape[-1])
            model.set_code_vectors(table)
        else:
            model = AlignmentModule(len(corpus.vocab), K, V, args.dim)
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
        t0, seen = time.time(), corpus.train[: args.valid]
        for step in range(1, args.steps + 1):
            ll, pl, fl = log_likelihood(model, random.sample(corpus.train, args.batch), K, step <= args.prior_steps)
            loss = forward_sum_loss(ll, pl, fl)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if step % args.every == 0 or step == args.steps:
                (tr, tr_u), (va, va_u) = losses(model, seen, K), losses(model, corpus.valid, K)
                print(f"{features:5s} step {step:5d} ({time.time() - t0:4.0f} s): training {tr:.3f} (uniform "
                      f"{tr_u:.3f}), held-out {va:.3f} (uniform {va_u:.3f})", flush=True)
        results[features] = {"train": tr, "train_uniform": tr_u, "held_out": va, "held_out_uniform": va_u}
        if args.plot:
            model.eval()
            with torch.no_grad():
                ll, pl, fl = log_likelihood(model, corpus.valid[:4], K, prior=False)
                path = hard_alignment(ll, pl, fl)
            plots += [(ll[i, : pl[i], : fl[i]], path[i, : pl[i], : fl[i]], f"{features}: {u.id} (held out)")
                      for i, u in enumerate(corpus.valid[:4])]
    print("\nfeatures  held-out loss  uniform  held-out / uniform  training loss")
    for name, r in results.items():
        print(f"{name:8s}  {r['held_out']:13.3f}  {r['held_out_uniform']:7.3f}  "
              f"{r['held_out'] / r['held_out_uniform']:18.2f}  {r['train']:13.3f}")
    if plots:
        plot_alignments([x[0] for x in plots], [x[1] for x in plots], args.plot, titles=[x[2] for x in plots])
        print(f"alignments: {args.plot}")
    return results


if __name__ == "__main__":
    raise SystemExit(run_cli("aligner_generalisation.py", lambda: main() and 0))
