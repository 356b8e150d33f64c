#!/usr/bin/env bash
# The recipe search of issue 30: arms of the same config, same data and seed, each for MINUTES of training
# on one core (OMP_NUM_THREADS=1), planned over the long run's 24000 steps so the learning rate is what the
# long run would use. The ls3 arm needs runs/data/train16k_ls3: train16k plus two more symlinks (`<id>x2.flac`,
# `<id>x3.flac`) of each LibriSpeech file. Held-out curves afterwards: python benchmarks/codec_curve.py runs/v3_search/*
#   bash docs/reports/language_codec_v3/search.sh [MINUTES] [ARM ...]
set -euo pipefail
MINUTES=${1:-20}; shift || true
ARMS=${*:-"recon_lr5e-4_b8 recon_lr1e-3_b8 recon_lr5e-4_b16 gan_lr5e-4_b8 warmv2_lr5e-4_b8 ls3_lr5e-4_b8"}
CONFIG=configs/codec/language_codec_v3_16k.yaml
# the config warm-starts from the shipped codec (the search's outcome); the from-scratch arms switch that off
COMMON="--max_minutes=$MINUTES --export_every=200 --eval_every=100000 --save_every=200"
SCRATCH="--model.init_from=null"
for arm in $ARMS; do
    case $arm in
        recon_lr5e-4_b8)  extra="$SCRATCH" ;;
        recon_lr1e-3_b8)  extra="$SCRATCH --optim.lr=1e-3" ;;
        recon_lr5e-4_b16) extra="$SCRATCH --data.batch_size=16" ;;
        gan_lr5e-4_b8)    extra="$SCRATCH --disc_start_step=0" ;;
        warmv2_lr5e-4_b8) extra="--model.init_from=tokenizer/pretrained/language_codec" ;;
        # the same folder with every LibriSpeech file listed three times: read speech 27% -> 52% of the crops
        ls3_lr5e-4_b8)    extra="$SCRATCH --data.root=runs/data/train16k_ls3" ;;
        *) echo "unknown arm $arm" >&2; exit 2 ;;
    esac
    out=runs/v3_search/$arm
    [ -e "$out/final" ] && { echo "$arm: done already"; continue; }
    echo "== $arm $(date -u +%H:%M:%S)"
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 train-codec --config $CONFIG --out_dir=$out $COMMON $extra
done
