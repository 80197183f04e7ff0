#!/usr/bin/env bash
# A real English text corpus without a download: the fortune cookie files of
# Debian's `fortunes` package (quotations, jokes, poems, definitions; about
# 15,200 documents, 2.5 MB), installed with apt-get if missing, copied as
# plain text and tokenised by bytes with bla-data prepare.
#
#   scripts/prepare_text_corpus.sh [OUT]     # default OUT: ${BUILD_DIR:-build}/data/fortunes
#
# OUT/text/*.txt holds the text, OUT/index.json and OUT/{train,val}-*.bin the
# shards that configs/text_*.yaml read (data.path). Every fortune is one
# document (the files separate them with "%" lines); 2% of them, drawn with
# seed 0, are the validation split. ascii-art is left out: pictures, not prose.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
out=${1:-$build_dir/data/fortunes}
source_dir=/usr/share/games/fortunes

if [ ! -f "$source_dir/cookie" ]; then
  echo "prepare_text_corpus: installing the Debian package fortunes"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends fortunes
fi
[ -x "$build_dir/src/bla-data" ] || BUILD_DIR=$build_dir scripts/build.sh bla-data

rm -rf "$out/text"
mkdir -p "$out/text"
for file in "$source_dir"/*; do
  name=$(basename "$file")
  # Fortune files only: not the .dat offset tables, the .u8 links or ascii-art.
  case "$name" in *.dat | *.u8 | ascii-art) continue ;; esac
  [ -f "$file" ] && cp "$file" "$out/text/$name.txt"
done

"$build_dir/src/bla-data" prepare --input "$out"/text/*.txt --out "$out" --tokenizer byte \
  --separator % --val-fraction 0.02 --seed 0
