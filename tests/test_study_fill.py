"""scripts/study_fill.sh, against a stand-in for regulab: it fills a core only while the study
trains one run, only with a stage it may fill that is at least two stages on, and stops the moment
the study needs the core again, so the two never train one run at once."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"

# A driver stage keeps as many trainings (children named like regulab's) as CTL/n says, while CTL/run
# exists and CTL/end-STAGE does not; a fill records its start and end in CTL/events and trains for
# FILL_SECONDS.
STAND_IN = r"""#!/usr/bin/env bash
out=""; prev=""; for a in "$@"; do [ "$prev" = "--out" ] && out=$a; prev=$a; done
case "$out" in
  */.fill/*) echo "start $(basename "$out")" >> "$CTL/events"
             trap 'echo "stop $(basename "$out")" >> "$CTL/events"; kill $child; exit 130' TERM
             bash -c "exec -a 'python3 -m regulab train' sleep $FILL_SECONDS" & child=$!
             wait $child; echo "end $(basename "$out")" >> "$CTL/events"; exit 0 ;;
esac
kids=()
trap 'kill "${kids[@]}" 2>/dev/null; exit 0' TERM
while [ -f "$CTL/run" ] && [ ! -f "$CTL/end-$(basename "$out")" ]; do
  n=$(cat "$CTL/n")
  while [ ${#kids[@]} -lt "$n" ]; do bash -c "exec -a 'python3 -m regulab train' sleep 600" & kids+=($!); done
  while [ ${#kids[@]} -gt "$n" ]; do kill "${kids[-1]}"; unset 'kids[-1]'; done
  sleep 0.1
done
kill "${kids[@]}" 2>/dev/null; exit 0
"""

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (shutil.which("bash") and shutil.which("pgrep")),
                                                   reason="needs bash and pgrep (procps)")]


@pytest.fixture
def study(tmp_path):
    regulab = tmp_path / "bin" / "regulab"
    regulab.parent.mkdir()
    regulab.write_text(STAND_IN)
    regulab.chmod(0o755)
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    env = {**os.environ, "REGULAB": str(regulab), "CTL": str(ctl), "FILL_POLL": "0.3", "FILL_SECONDS": "600"}
    started = []

    def stage(name: str, trainings: int) -> None:
        (ctl / "run").touch()
        (ctl / "n").write_text(str(trainings))
        started.append(subprocess.Popen(["bash", "-c", f'study={tmp_path}/s; . "{SCRIPTS}/study_stages.sh"; '
                                         f"run_stage {name}"], env=env))

    def fill(**extra) -> subprocess.Popen:
        started.append(subprocess.Popen([str(SCRIPTS / "study_fill.sh"), f"{tmp_path}/s"], env={**env, **extra},
                                        stdout=subprocess.PIPE, text=True))
        return started[-1]

    yield stage, fill, ctl
    (ctl / "run").unlink(missing_ok=True)
    for process in started:
        process.terminate()
        process.wait(timeout=10)


def events(ctl: Path, count: int, timeout: float = 15) -> list[str]:
    """The fill's events, once there are at least `count` of them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = (ctl / "events").read_text().split() if (ctl / "events").exists() else []
        if len(lines) >= 2 * count:
            return [" ".join(pair) for pair in zip(lines[::2], lines[1::2])]
        time.sleep(0.1)
    pytest.fail(f"waited {timeout} s for {count} events of the fill; {ctl / 'events'} holds {lines}")


def test_it_fills_only_while_the_study_trains_one_run_and_stops_when_it_trains_two(study):
    stage, fill, ctl = study
    stage("presets-cpu", 2)
    fill()
    time.sleep(2)  # several looks at two trainings
    assert not (ctl / "events").exists()
    (ctl / "n").write_text("1")
    # presets14 is one stage on and weights shares seed-wd's runs with presets-cpu: neither is filled.
    assert events(ctl, 1) == ["start noise"]
    (ctl / "n").write_text("2")
    assert events(ctl, 2) == ["start noise", "stop noise"]


def test_it_moves_on_when_a_fill_ends_and_ends_with_the_study(study):
    stage, fill, ctl = study
    stage("presets14", 1)
    filler = fill(FILL_SECONDS="1")
    assert events(ctl, 4) == ["start noise", "end noise", "start l2-cpu", "end l2-cpu"]
    (ctl / "run").unlink()  # the study ends
    out, _ = filler.communicate(timeout=15)
    assert filler.returncode == 0 and out.rstrip().endswith("the study has ended")


def test_a_fill_stops_when_the_study_comes_within_one_stage_of_it(study):
    stage, fill, ctl = study
    stage("presets14", 1)
    fill()
    assert events(ctl, 1) == ["start noise"]
    stage("weights", 1)  # the next stage starts before the last one's process is gone
    (ctl / "end-presets14").touch()
    assert events(ctl, 3) == ["start noise", "stop noise", "start l2-cpu"]
