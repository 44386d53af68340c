#!/usr/bin/env bash
# Copy the few model files of the authors' repositories that benchmarks/official/*.py execute into an
# ignored folder (default .ref/), so they can travel to a machine without network access (for example
# the GPU machine of `run(..., carry=[".ref"])`, which copies at most 64 MiB of ignored paths).
#   benchmarks/stage_official.sh /path/UniFormer /path/UniFormerV2 /path/dualformer [.ref]
set -euo pipefail
UF=$1; UV2=$2; DF=$3; DEST=${4:-.ref}
copy() {  # copy(repo, dest_name, relative paths...)
  local repo=$1 name=$2; shift 2
  for rel in "$@"; do
    if [ -f "$repo/$rel" ]; then mkdir -p "$DEST/$name/$(dirname "$rel")"; cp "$repo/$rel" "$DEST/$name/$rel"; fi
  done
}
UF_FILES=$(python - <<'PY'
import sys
sys.path.insert(0, ".")
from benchmarks.official.uniformer_v1 import OFFICIAL_FILES
print(" ".join(OFFICIAL_FILES.values()))
PY
)
# shellcheck disable=SC2086
copy "$UF" uniformer $UF_FILES
copy "$UV2" uniformerv2 slowfast/models/uniformerv2_model.py
copy "$DF" dualformer mmaction/models/backbones/dualformer.py
du -sh "$DEST"/* | sed 's/^/staged /'
