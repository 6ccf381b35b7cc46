#!/usr/bin/env bash
# Rebuilds models/defect-classifier (model.onnx + model.json with its card) from nothing but this
# repository: generates synthetic machined-surface images with the fixture generator (fixed seeds,
# in a temporary folder that is deleted afterwards), trains a small CNN with Debian's PyTorch,
# exports it to ONNX, and measures it on the held-out test set through onnxruntime-node with
# visq's own preprocessing and classification code.
#
#   bash tools/train-defect-classifier/build.sh
#
# Environment: PYTHON (default /usr/bin/python3, the interpreter Debian's python3-torch belongs to),
# OUT (default models/defect-classifier), KEEP_WORK=1 keeps the generated images and tensors.
# Settings (seeds, counts, sizes, epochs) are in config.json beside this script.
set -euo pipefail
started_ms=$(($(date +%s%N) / 1000000))
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
PYTHON="${PYTHON:-/usr/bin/python3}"
OUT="${OUT:-models/defect-classifier}"
log() { printf '\n== %s\n' "$*" >&2; }

# 1. PyTorch and onnx from Debian (no PyPI needed).
if ! "$PYTHON" -c 'import torch, onnx' 2>/dev/null; then
  log "installing python3-torch python3-onnx"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-torch python3-onnx python3-numpy
  PYTHON=/usr/bin/python3
fi

# 2. Node dependencies (the fixture generator runs from its TypeScript with tsx).
[ -d node_modules ] || { log "npm ci"; npm ci; }

work="$(mktemp -d "${TMPDIR:-/tmp}/visq-defect-classifier-XXXXXX")"
if [ "${KEEP_WORK:-0}" = 1 ]; then trap 'echo "work folder kept: $work" >&2' EXIT; else trap 'rm -rf "$work"' EXIT; fi

# 3. Training, validation and held-out test images. Each set is generated one label at a time,
#    as many generators at once as there are cores: every image's seed depends only on the set's seed,
#    its label and its index, so these are the same bytes as one `generate.js --good N --bad N` per set
#    (the commands the model card names).
log "generating images in $work"
node -e '
  const c = require(process.argv[1]);
  for (const [set, s] of Object.entries(c.sets))
    for (const label of c.labels) {
      const which = label === "good" ? `--good ${s.perClass} --bad 0` : `--good 0 --bad ${s.perClass} --defects ${label}`;
      console.log(`--out "${process.argv[2]}/${set}" --part ${c.part} ${which} --seed ${s.seed} --width ${c.imageSize} --height ${c.imageSize} --quiet`);
    }' "$here/config.json" "$work" |
  xargs -L 1 -P "$(nproc)" node --import tsx tools/fixtures/generate.ts

# 4. The pipeline's preprocessing → tensors; 5. training and ONNX export; 6. held-out evaluation.
log "preprocessing (src/inference/preprocess.ts)"
npx --no-install tsx "$here/prepare.ts" --work "$work"
log "training ($PYTHON, $("$PYTHON" -c 'import torch; print("PyTorch", torch.__version__)'))"
"$PYTHON" "$here/train.py" --work "$work"
log "evaluating the exported ONNX through onnxruntime-node"
BUILD_STARTED_MS="$started_ms" npx --no-install tsx "$here/evaluate.ts" --work "$work" --out "$OUT"
