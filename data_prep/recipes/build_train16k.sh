#!/usr/bin/env bash
# Builds the codec training folder that configs/codec/*.yaml name as data.root (default /work/data/train16k):
# LibriSpeech-mini (251 speakers, one utterance each, 52 min; the configs hold out the last 20 speaker ids)
# plus the Debian Asterisk prompt voices (en, es, fr, it, ru; about 2 h; G.722 decoded to 16 kHz mono),
# in one flat folder named `<speaker>-<utterance>.<ext>` so `speaker_from_filename: true` groups them
# (Asterisk voices become speakers such as `aenUSfAllison`). A maintainer tool: needs apt-get, dpkg-deb and
# ffmpeg (`apt-get install -y ffmpeg`); never run at install or test time.
#   bash data_prep/recipes/build_train16k.sh [OUT] [LIBRISPEECH_MINI]
# Licences: LibriSpeech CC BY 4.0; Asterisk core sounds CC BY-SA 3.0 (see tokenizer/pretrained/language_codec).
set -euo pipefail
OUT=${1:-/work/data/train16k}
LIBRISPEECH_MINI=${2:-/work/shared/data/librispeech-mini}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

mkdir -p "$OUT"
for f in "$LIBRISPEECH_MINI"/*.flac; do
    ln -sf "$(readlink -f "$f")" "$OUT/$(basename "$f")"
done

(cd "$WORK" && apt-get download asterisk-core-sounds-{en,es,fr,it,ru}-g722 >/dev/null)
for deb in "$WORK"/*.deb; do dpkg-deb -x "$deb" "$WORK/root"; done
mkdir -p "$OUT/../asterisk16k"
AST=$(readlink -f "$OUT/../asterisk16k")
n=0
for voice_dir in "$WORK"/root/usr/share/asterisk/sounds/*/; do
    voice=$(basename "$voice_dir")                       # e.g. en_US_f_Allison
    speaker="a$(echo "$voice" | tr -d '_')"              # e.g. aenUSfAllison
    while IFS= read -r -d '' g722; do
        rel=${g722#"$voice_dir"}
        utt=$(echo "${rel%.g722}" | tr '/' '_' | tr -c 'A-Za-z0-9_\n' '_')
        wav="$AST/$speaker-$utt.wav"
        if [ ! -s "$wav" ]; then
            ffmpeg -nostdin -loglevel error -f g722 -i "$g722" -ar 16000 -ac 1 -c:a pcm_s16le "$wav" || true
        fi
        [ -s "$wav" ] && ln -sf "$wav" "$OUT/$speaker-$utt.wav"
        n=$((n + 1))
    done < <(find "$voice_dir" -name '*.g722' -print0)
done
echo "$OUT: $(find "$OUT" -maxdepth 1 | wc -l) files ($n Asterisk prompts decoded into $AST)"
