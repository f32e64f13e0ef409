#!/usr/bin/env bash
# Rebuilds the invoice fonts in this folder from Debian's fonts-dejavu-core: DejaVu Sans and
# DejaVu Sans Bold cut down to the scripts an invoice prints (Latin with its extensions, Greek,
# Cyrillic, punctuation, currency symbols with the baht's, letter-like symbols). WeasyPrint
# subsets the font it embeds in every PDF; from this cut it does so in half the time it took
# from the whole 6,000-glyph font (README, "Speed"). Layout features are kept, so text is shaped
# as with the whole font; hinting is dropped, as WeasyPrint drops it when embedding. Anything
# else falls back to the system's DejaVu Sans (templates/invoice.css).
#   usage: templates/fonts/subset.sh   (from the repository, after `make .venv/.installed`)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source_dir=/usr/share/fonts/truetype/dejavu
unicodes="U+0020-007E,U+00A0-024F,U+0300-036F,U+0370-03FF,U+0400-04FF,U+0E3F,U+1E00-1EFF,U+2000-206F,U+20A0-20CF,U+2100-214F,U+2190-2193,U+2212,U+2215,U+FFFD"
for face in DejaVuSans DejaVuSans-Bold; do
  "$here/../../.venv/bin/pyftsubset" "$source_dir/$face.ttf" --unicodes="$unicodes" \
    --layout-features='*' --no-hinting --drop-tables+=FFTM --output-file="$here/$face-invoice.ttf"
done
cp /usr/share/doc/fonts-dejavu-core/copyright "$here/LICENSE"
