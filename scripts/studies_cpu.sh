#!/usr/bin/env bash
# Every study still to train on the CPU, in the order they run: two studies at once on two cores
# would halve both. Part 12's required stages, then part 14's study, then part 12's optional L2
# strengths. Each stage skips finished runs and resumes interrupted ones: run it again to continue.
# Usage: scripts/studies_cpu.sh STUDY_DIR   (regulab on PATH, or REGULAB=/path/to/regulab)
set -eu
study=${1:?usage: scripts/studies_cpu.sh STUDY_DIR}
here=$(cd "$(dirname "$0")" && pwd)
"$here/study_cpu.sh" "$study"
"$here/study_part14.sh" "$study"
"$here/study_l2.sh" "$study"
