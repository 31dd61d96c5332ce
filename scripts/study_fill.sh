#!/usr/bin/env bash
# Fill the core a CPU study leaves idle. studies_cpu.sh trains two runs at a time, but a stage can
# end on one (an odd count, SAM's runs of twice the length, an adaptive round for one undecided
# group), and then a core waits, up to an hour. This watches the study and, while it trains one run,
# trains a later stage's runs on the other core (one of study_stages.sh's `fillable`, at least two
# stages on): the same stage command and options (so the same runs, in the same pool), one at a
# time, into STUDY_DIR/.fill/STAGE. It stops that training (SIGTERM: the run keeps its finished
# epochs) as soon as the study trains two runs again or comes within one stage of the stage being
# filled, so the two never train one run at once; the study's own stage then finds those runs
# finished, or resumes them. It ends when no stage of the study has run for 15 looks in a row.
# Usage: scripts/study_fill.sh STUDY_DIR   (beside studies_cpu.sh STUDY_DIR, with the same REGULAB)
set -u
study=${1:?usage: scripts/study_fill.sh STUDY_DIR}
. "$(dirname "$0")/study_stages.sh"
poll=${FILL_POLL:-20}  # seconds between looks at the study
set -m  # each fill in its own process group, stopped as one

position() { local i; for i in "${!stages[@]}"; do [ "${stages[$i]}" = "$1" ] && echo "$i"; done; }

# "STAGE TRAININGS" of the study's running stage; nothing between stages or once it has ended.
study_now() {
  local pid args stage
  while read -r pid args; do
    case "$args" in *" --out $study/.fill/"*) continue ;; esac
    for stage in "${stages[@]}"; do
      case "$args" in *" --out $study/$stage "*)
        echo "$stage $(pgrep -c -P "$pid" -f 'regulab train')"; return ;; esac
    done
  done < <(pgrep -af "regulab (compare|sweep) .*--runs-dir $pool")
}

say() { echo "$(date +%H:%M:%S) $*"; }
fill_pid="" filling="" filled=() alone=0 absent=0
stop_fill() {
  [ -n "$fill_pid" ] || return 0
  kill -TERM -- "-$fill_pid" 2>/dev/null
  wait "$fill_pid" 2>/dev/null
  say "stopped $filling ($1)"
  fill_pid=""
}
trap 'stop_fill "the fill was asked to stop"; exit 0' TERM INT
while :; do
  read -r stage trainings <<<"$(study_now)"
  if [ -n "$fill_pid" ] && ! kill -0 "$fill_pid" 2>/dev/null; then  # the fill ended by itself
    wait "$fill_pid"; status=$?
    say "$filling: ended with status $status"  # a failure shows again when the study reaches the stage
    filled+=("$filling"); fill_pid=""
  fi
  if [ -z "$stage" ]; then
    stop_fill "the study is between stages"
    absent=$((absent + 1)); [ "$absent" -lt 15 ] || { say "the study has ended"; exit 0; }
    sleep "$poll"; continue
  fi
  absent=0
  here=$(position "$stage")
  if [ -n "$fill_pid" ] && { [ "$trainings" -ge 2 ] || [ "$(position "$filling")" -lt $((here + 2)) ]; }; then
    stop_fill "the study trains $trainings at $stage"
  fi
  alone=$(( trainings == 1 ? alone + 1 : 0 ))
  if [ -z "$fill_pid" ] && [ "$alone" -ge 2 ]; then  # one run for two looks in a row: not a run's hand-over
    for later in "${stages[@]:$((here + 2))}"; do
      listed "$later" "${fillable[@]}" && ! listed "$later" "${filled[@]}" || continue
      filling=$later
      say "the study trains one run at $stage: filling $later"
      mkdir -p "$study/.fill"
      run_stage "$later" "$study/.fill/$later" --jobs 1 >> "$study/.fill/$later.log" 2>&1 &
      fill_pid=$!
      break
    done
  fi
  sleep "$poll"
done
