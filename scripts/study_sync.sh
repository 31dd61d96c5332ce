#!/usr/bin/env bash
# Copy a study's small files from STUDY_DIR into docs/study/: each pool's finished runs (config,
# history, metrics and test predictions; never weights) and each part's plan (sweep.json); rebuild
# every part's report there, and docs/results.md and the README's findings from them
# (scripts/build_results.py), and commit those alone. A run that docs/study/runs already holds
# (the first study's CPU runs, copied into the CPU pool) is linked, not copied again.
# Usage: scripts/study_sync.sh STUDY_DIR [--every SECONDS]   (--every: repeat until stopped)
set -u
study=${1:?usage: scripts/study_sync.sh STUDY_DIR [--every SECONDS]}
every=${3:-0}
cd "$(dirname "$0")/.."
regulab=${REGULAB:-.venv/bin/regulab}
while :; do
  for pool in "$study"/runs*/; do
    name=$(basename "$pool")
    for run in "$pool"*/; do
      key=$(basename "$run")
      target="docs/study/$name/$key"
      [ -f "$run/metrics.json" ] && [ ! -e "$target" ] || continue
      mkdir -p "docs/study/$name"
      linked=""
      for copy in "runs/$key" gpu/cpu-crosscheck; do  # the first study's own files of this run, if any
        [ "$name" != runs ] && cmp -s "$run/metrics.json" "docs/study/$copy/metrics.json" \
          && cmp -s "$run/config.json" "docs/study/$copy/config.json" && linked="../$copy" && break
      done
      if [ -n "$linked" ]; then
        ln -s "$linked" "$target"
        continue
      fi
      mkdir -p "$target"
      for file in config.json config.toml history.json history.csv metrics.json test_predictions.npz; do
        [ -f "$run/$file" ] && cp "$run/$file" "$target/"
      done
    done
  done
  for plan in "$study"/*/sweep.json; do
    [ -f "$plan" ] || continue
    part=$(basename "$(dirname "$plan")")
    mkdir -p "docs/study/$part"
    cp "$plan" "docs/study/$part/"
    "$regulab" report "docs/study/$part" >/dev/null 2>&1 || true  # no finished run of that part yet
  done
  "${regulab%/regulab}/python" scripts/build_results.py >/dev/null || echo "$(date +%H:%M) the results page did not build"
  finished=$(ls "$study"/runs*/*/metrics.json 2>/dev/null | wc -l)
  git add docs/study docs/results.md README.md 2>/dev/null \
    && git commit -q -m "study: $finished runs in the pools" -- docs/study docs/results.md README.md >/dev/null 2>&1 \
    && echo "$(date +%H:%M) committed: $finished runs in the pools"  # nothing new: nothing to say
  [ "$every" -gt 0 ] || break
  sleep "$every"
done
