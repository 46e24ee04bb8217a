#!/usr/bin/env bash
# The synthetic benchmark, end to end: train every cell one after another (same seed, steps and data), evaluate
# it with the segmenter-feature protocol (every checkpoint of the $CURVES cells, the last one of the others),
# then write docs/results/synthetic.md.
#   bash gin/bench/run.sh                      # all cells (about 2 CPU hours on 2 cores; see README.md)
#   CELLS="baseline_spade__mspatch ccfpse__fpse" bash gin/bench/run.sh
# Finished cells (a summary.json) and existing evaluations are skipped, so the script can be re-run after a stop.
set -euo pipefail
cd "$(dirname "$0")/../.."
# One thread per process: on a shared 2-core machine, 2 OpenMP threads per process thrash (a step took 7-17 s
# instead of 0.9 s next to another busy process).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PY=${PYTHON:-python}
OUT=${OUT:-runs/bench}
REPORT=${REPORT:-docs/results}
IMAGES=${IMAGES:-500}
# CC-FPSE Table 2 order; NAMES are its column names
CELLS=${CELLS:-"baseline_spade__mspatch 1_cc_wo_fp__mspatch 2_cc_w_fp__mspatch 3_cc_wo_fp__fpse \
4_spade_w_fp__mspatch_se 5_spade_w_fp__fpse 6_cc_w_fp__mspatch_se ccfpse__fpse"}
NAMES=${NAMES:-"Baseline (1) (2) (3) (4) (5) (6) CC-FPSE"}
# cells evaluated at every checkpoint (metric curves); the others only at their last one (saves CPU time)
CURVES=${CURVES:-"baseline_spade__mspatch ccfpse__fpse"}

for cell in $CELLS; do
  run="$OUT/$cell"
  if [ ! -f "$run/summary.json" ]; then
    rm -rf "$run"
    $PY experiments/run.py --gin gin/bench/synthetic.gin --gin "gin/ablations/ccfpse_table2/$cell.gin" \
      --run_dir "$run"
  fi
  ckpts=("$run"/step_*)
  case " $CURVES " in *" $cell "*) ;; *) ckpts=("$run/$(cat "$run/latest")") ;; esac
  for ckpt in "${ckpts[@]}"; do
    step=${ckpt##*_}
    [ -f "$run/eval/val_step${step}_segmenter.json" ] || \
      $PY -m condgen eval "$ckpt" --features segmenter --num_images "$IMAGES"
  done
done

runs=()
for cell in $CELLS; do runs+=("$OUT/$cell"); done
# shellcheck disable=SC2086
$PY experiments/compare.py "${runs[@]}" --names $NAMES --out "$REPORT" --name synthetic --features segmenter \
  --title "Synthetic benchmark: SPADE vs CC-FPSE and the CC-FPSE Table 2 cells" --notes gin/bench/notes.md
