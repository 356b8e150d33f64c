#!/usr/bin/env bash
# The small-scale reproduction of the Rate-Aware paper's central claim (issues 7 and 16): an RVQ codec
# (Language-Codec small) and the entropy-coded Rate-Aware codec trained with the same data, steps, batch,
# optimizer and distortion on CPU, two seeds (0, 1) per operating point, then evaluated over their rate
# ranges with evaluate-codec on the 20 held-out speakers (coded rates only: range-coded payloads).
# Report: docs/reports/rate_aware_vs_rvq (results.md, summary.json, rd_*.png). The two seeds of a point are
# listed as <point>#1 (seed 0) and #2 (seed 1); the plots and BD-rates use their mean rate and mean scores.
# Recipe and lambdas: rate_aware.yaml and tokenizer/codecs/rate_aware/configuration_rate_aware.py.
#
# Wall time measured for issue 16 on this 2-core machine, two lanes of one thread each: ~1.2-1.4 s/step, so
# 25 min per 1200-step run (Language-Codec and Rate-Aware alike); evaluate-codec with two threads ~2.3 s per
# utterance-system pair (14 systems x 20 held-out utterances, 265 s of audio: 11 min). The report in docs/ was
# made with LAMBDAS="0.3 1.0 4.0" NUM_QUANTIZERS="3 4 6 8" (8 runs: 100 min of training); the defaults below
# (12 runs, 6 Language-Codec operating points) take about 2 h 40 min.
# Finished runs (final/model.safetensors present) are skipped, so the script can be re-run after a stop.
#
#   bash docs/reports/rate_aware_vs_rvq/run.sh [PYTHON]
# Smoke test (a few minutes, writes nothing under docs/):
#   STEPS=20 LAMBDAS=0.3 SEEDS=0 MAX_UTTERANCES=2 RUNS=/tmp/rd_smoke OUT=/tmp/rd_smoke/report \
#       bash docs/reports/rate_aware_vs_rvq/run.sh
set -euo pipefail
PY=${1:-.venv/bin/python}
CFG=configs/codec/rd_comparison
RUNS=${RUNS:-runs/rd_comparison}
OUT=${OUT:-docs/reports/rate_aware_vs_rvq}
STEPS=${STEPS:-1200}
read -r -a LAMBDAS <<< "${LAMBDAS:-0.1 0.3 1.0 2.0 4.0}"   # below 0.8: lambda warm-up (rate_aware.yaml)
read -r -a SEEDS <<< "${SEEDS:-0 1}"
read -r -a KS <<< "${NUM_QUANTIZERS:-3 4 5 6 7 8}"   # Language-Codec operating points evaluated
LIBRISPEECH_MINI=${LIBRISPEECH_MINI:-/work/shared/data/librispeech-mini}
HOLDOUT=(8324 839 8419 8425 8465 8468 8580 8609 8629 8630 87 8747 8770 8797 8838 887 89 8975 909 911)
export OMP_NUM_THREADS=1

train() {  # config, out_dir, extra flags...; a finished run (its final/ export exists) is skipped
    local cfg=$1 out=$2
    shift 2
    if [ -f "$out/final/model.safetensors" ]; then echo "done: $out"; return; fi
    mkdir -p "$out"
    "$PY" -m training.codec.cli --config "$cfg" --steps="$STEPS" --out_dir="$out" "$@" > "$out.log" 2>&1 \
        || { echo "FAILED: $out (see $out.log)"; return 1; }
    echo "trained: $out"
}
lane_wait() { while [ "$(jobs -rp | wc -l)" -ge 2 ]; do sleep 5; done; }  # two lanes on 2 cores

CODECS_LC=() CODECS_RA=() PIDS=()
for seed in "${SEEDS[@]}"; do
    lane_wait
    train "$CFG/language_codec_small.yaml" "$RUNS/language_codec_small_s$seed" --seed="$seed" &
    PIDS+=($!)
    CODECS_LC+=("$RUNS/language_codec_small_s$seed/final")
done
for lam in "${LAMBDAS[@]}"; do
    for seed in "${SEEDS[@]}"; do
        lane_wait
        train "$CFG/rate_aware.yaml" "$RUNS/rate_aware_${lam}_s$seed" --lambda_rd="$lam" --seed="$seed" &
        PIDS+=($!)
        CODECS_RA+=("$RUNS/rate_aware_${lam}_s$seed/final")
    done
done
fail=0
for pid in "${PIDS[@]}"; do wait "$pid" || fail=1; done
[ "$fail" = 0 ] || { echo "a training run failed (see the .log next to its run directory): not evaluating"; exit 1; }

# Evaluation set: the 20 held-out speakers' LibriSpeech-mini utterances (265 s), never seen in training.
HELD=$RUNS/heldout
mkdir -p "$HELD"
for spk in "${HOLDOUT[@]}"; do
    ln -sf "$LIBRISPEECH_MINI/$spk"-*.flac "$HELD/"
done
export OMP_NUM_THREADS=2
"$PY" -m evaluation.evaluate_codec \
    --codec "${CODECS_LC[@]}" "${CODECS_RA[@]}" \
    --num-quantizers "${KS[@]}" --bd-anchor language-codec \
    --metrics pesq_wb visqol mel_distance stoi \
    --data "$HELD" --out "$OUT" --num-examples 2 ${MAX_UTTERANCES:+--max-utterances "$MAX_UTTERANCES"}
