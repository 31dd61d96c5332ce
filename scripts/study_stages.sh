# Sourced by the study drivers (studies_cpu.sh, study_fill.sh, study_gpu.sh): every stage's design in
# one place, so that a stage trained on the CPU and on a GPU trains the same runs. Expects $study
# (the STUDY_DIR); sets regulab, stage_args, stages, fillable, and pool and common for the CPU
# (study_gpu.sh sets its own), and defines listed and run_stage.
regulab=${REGULAB:-regulab}
# One pool for this device: every run pairs with the committed ones on one CPU, apart from the first
# study's GPU runs of the same settings (docs/study/runs).
pool="$study/runs-cpu"
# Two runs side by side, one thread each, on the two cores: a pair's two sides train at once.
# fp32 is pinned: `auto` would be bf16 on a CPU that has it, and the study may continue on either.
# The margin is half a point of accuracy (docs/results.md says why).
common=(--runs-dir "$pool" --jobs 2 --threads 1 --margin 0.005 --precision fp32)

# Each design is named after its folder in the CPU study (the first study's took size and l2, so the
# CPU's are size-cpu and l2-cpu); study_gpu.sh trains the same designs into folders of its own.
declare -A stage_args=(
  # Part 12: seed vs seed-noreg, 10 paired seeds, then rounds of 2 while undecided on test accuracy, to 16.
  [seed-question]="compare seed-noreg seed --seeds 10 --max-seeds 16 --seeds-per-round 2 --baseline seed-noreg"
  # Part 12, part (c): a third seed at every data size.
  [size-cpu]="sweep seed-noreg seed-all --grid train_fraction=0.1,0.25,0.5,1 --seeds 3 --baseline seed-noreg"
  # Part 12: the undecided rows of part (a) on one device, 3 seeds, then to 6 while undecided: on the
  # CPU, the two whose verdicts rest on cross-device pairs; on a GPU, every preset (minutes there).
  [presets-cpu]="compare seed-noreg seed-bn seed-wd --seeds 3 --max-seeds 6 --seeds-per-round 1 --baseline seed-noreg"
  [presets-all]="compare seed-noreg seed-dropout seed-augment seed-bn seed-wd seed-all seed --seeds 3 --max-seeds 6 --seeds-per-round 1 --baseline seed-noreg"
  # Part 14: the new presets against seed-noreg, 3 seeds (seed-noreg's runs are part 12's).
  [presets14]="compare seed-noreg seed-sam seed-trivial --seeds 3 --baseline seed-noreg"
  # The same presets' runs alone, for a GPU stream that must not wait on seed-noreg's.
  [presets14-runs]="compare seed-sam seed-trivial --seeds 3"
  # Part 14: what each regularizer does to the weights, on seeds whose runs recorded kernel norms
  # (regulab records them from part 14 on: part 12's later seeds do).
  [weights]="compare seed-noreg seed seed-wd --seeds 6 --baseline seed-noreg"
  # Part 14: label noise on 25% of the training split, 2 seeds (P = 0 is part (c)'s 25% runs, in this pool).
  [noise]="sweep seed-noreg seed-all --grid label_noise=0,0.2,0.4 --train-fraction 0.25 --seeds 2 --baseline label_noise=0"
  # Part 15: seed-all taken apart into its five factors against seed-noreg, on 25% of the training split
  # (part (c)'s setting), the resolution-V half fraction that holds seed-all, 3 seed blocks; part (c)'s
  # seed-all runs at 25% are three of its cells and its seed-noreg runs the out-of-fraction check.
  [factorial]="factorial seed-noreg seed-all --train-fraction 0.25 --seeds 3"
  # Part 12, optional: the L2 strengths, 3 seeds, then one seed a round to 6 while undecided.
  [l2-cpu]="sweep seed-noreg --grid l2=0,1e-4,3e-4,1e-3,3e-3,1e-2 --seeds 3 --max-seeds 6 --seeds-per-round 1 --baseline l2=0"
)
# The CPU's stages in the order they run (scripts/studies_cpu.sh), each into STUDY_DIR/STAGE. Part
# 12's required stages first, then part 14's study, then part 12's optional L2 strengths ("if time
# allows"): two studies at once on two cores would halve both.
stages=(seed-question size-cpu presets-cpu presets14 weights noise l2-cpu factorial)

# The stages whose runs no earlier stage trains, so that study_fill.sh may train them early on an
# idle core: the runs they share with earlier stages are finished long before (seed-noreg's and
# seed's first 10 seeds, part (c)'s runs at 25%). Not weights: presets-cpu trains seed-wd's seeds.
fillable=(presets14 noise l2-cpu)

# listed WORD LIST...: whether WORD is one of LIST (a stage among stages, fillable, the ones filled).
listed() { case " ${*:2} " in *" $1 "*) return 0 ;; esac; return 1; }

# Train one stage (finished runs are skipped, interrupted ones resumed): run_stage STAGE [OUT [OPTION...]].
run_stage() {
  # The arguments hold no spaces: split them into words on purpose.
  # shellcheck disable=SC2086
  "$regulab" ${stage_args[$1]} --out "${2:-$study/$1}" "${common[@]}" "${@:3}"
}
