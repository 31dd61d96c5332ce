#!/usr/bin/env bash
# Copy the study's small files (plans, and each finished run's config, history and metrics; never
# weights) from STUDY_DIR into docs/study/, rebuild every report there, and commit docs/study/ alone.
# Usage: scripts/study_sync.sh STUDY_DIR [--every SECONDS]   (--every: repeat until stopped)
set -u
study=${1:?usage: scripts/study_sync.sh STUDY_DIR [--every SECONDS]}
every=${3:-0}
cd "$(dirname "$0")/.."
regulab=${REGULAB:-.venv/bin/regulab}
while :; do
  for run in "$study"/runs/*/; do
    key=$(basename "$run")
    [ -f "$run/metrics.json" ] && [ ! -f "docs/study/runs/$key/metrics.json" ] || continue
    mkdir -p "docs/study/runs/$key"
    cp "$run"/{config.json,config.toml,history.json,history.csv,metrics.json} "docs/study/runs/$key/"
  done
  for part in size presets l2; do
    [ -f "$study/$part/sweep.json" ] || continue
    mkdir -p "docs/study/$part"
    cp "$study/$part/sweep.json" "docs/study/$part/"
    "$regulab" report "docs/study/$part" >/dev/null 2>&1 || true  # no finished run of that part yet
  done
  finished=$(ls -d docs/study/runs/*/ 2>/dev/null | wc -l)
  git add docs/study 2>/dev/null && git commit -q -m "study: $finished runs finished" -- docs/study >/dev/null 2>&1 \
    && echo "$(date +%H:%M) committed: $finished runs finished"  # nothing new: nothing to say
  [ "$every" -gt 0 ] || break
  sleep "$every"
done
