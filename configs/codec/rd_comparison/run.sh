#!/usr/bin/env bash
# The small-scale reproduction of the Rate-Aware paper's central claim (issue 7): an RVQ codec
# (Language-Codec small) and the entropy-coded Rate-Aware codec trained with the same data, steps, batch,
# optimizer and distortion on CPU, then evaluated over their rate ranges with evaluate-codec.
# Report: docs/reports/rate_aware_vs_rvq (results.md, summary.json, rd_*.png).
# Training data: data.root in the YAML files (built as in tokenizer/pretrained/language_codec/README.md).
# Two runs at a time with one thread each (2 CPU cores): about 20 min per model.
#   bash configs/codec/rd_comparison/run.sh [PYTHON]
set -euo pipefail
PY=${1:-.venv/bin/python}
CFG=configs/codec/rd_comparison
RUNS=runs/rd_comparison
LAMBDAS=(0.05 0.2 0.8 3.0)
LIBRISPEECH_MINI=${LIBRISPEECH_MINI:-/work/shared/data/librispeech-mini}
export OMP_NUM_THREADS=1

train() { "$PY" -m training.codec.cli --config "$@"; }
train "$CFG/language_codec_small.yaml" &
for lam in "${LAMBDAS[@]}"; do
    # two lanes: wait for a free one
    while [ "$(jobs -rp | wc -l)" -ge 2 ]; do sleep 5; done
    train "$CFG/rate_aware.yaml" --model.overrides.rd_lambda="$lam" --out_dir="$RUNS/rate_aware_$lam" &
done
wait

# Evaluation set: the 20 held-out speakers' LibriSpeech-mini utterances (265 s), never seen in training.
HELDOUT=$RUNS/heldout
mkdir -p "$HELDOUT"
for spk in 8324 839 8419 8425 8465 8468 8580 8609 8629 8630 87 8747 8770 8797 8838 887 89 8975 909 911; do
    ln -sf "$LIBRISPEECH_MINI/$spk"-*.flac "$HELDOUT/"
done
export OMP_NUM_THREADS=2
"$PY" -m evaluation.evaluate_codec \
    --codec "$RUNS/language_codec_small/final" $(for lam in "${LAMBDAS[@]}"; do echo "$RUNS/rate_aware_$lam/final"; done) \
    --num-quantizers 3 4 5 6 7 8 --bd-anchor language-codec \
    --metrics pesq_wb visqol mel_distance stoi \
    --data "$HELDOUT" --out docs/reports/rate_aware_vs_rvq --num-examples 2
