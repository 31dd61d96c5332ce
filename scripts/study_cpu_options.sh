# Sourced by the CPU study drivers (study_cpu.sh, study_part14.sh, study_l2.sh): what every stage
# shares, in one place. Expects $study (the STUDY_DIR); sets regulab, pool and common.
regulab=${REGULAB:-regulab}
# One pool for this device: every run pairs with the committed ones on one CPU, apart from the first
# study's GPU runs of the same settings (docs/study/runs).
pool="$study/runs-cpu"
# Two runs side by side, one thread each, on the two cores: a pair's two sides train at once.
# fp32 is pinned: `auto` would be bf16 on a CPU that has it, and the study may continue on either.
# The margin is half a point of accuracy (docs/results.md says why).
common=(--runs-dir "$pool" --jobs 2 --threads 1 --margin 0.005 --precision fp32)
