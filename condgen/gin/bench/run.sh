#!/usr/bin/env bash
# The synthetic benchmark, end to end: train every cell one after another (same seed, steps and data), evaluate
# it with the segmenter-feature protocol (every checkpoint of the $CURVES cells, the last one of the others),
# then write docs/results/synthetic.md.
#   bash gin/bench/run.sh                      # all cells (about 2 CPU hours on 2 cores; see README.md)
#   CELLS="baseline_spade__mspatch ccfpse__fpse" bash gin/bench/run.sh
#   bash gin/bench/run.sh oasis                # the OASIS section: OASIS, two crossed cells, SPADE with its VAE
# A cell is a Table 2 name (gin/ablations/ccfpse_table2/<cell>.gin) or a mixin path under gin/ (oasis/... or
# bench/...); its run directory is runs/bench/<file name>.
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
NAME=${NAME:-synthetic}
TITLE=${TITLE:-"Synthetic benchmark: SPADE vs CC-FPSE and the CC-FPSE Table 2 cells"}
NOTES=${NOTES:-gin/bench/notes.md}
DIVERSITY=${DIVERSITY:-0}                   # label maps for the diversity column (multi-modal cells)
# diversity in the landscape segmenter's feature space (seg_diversity, not LPIPS: the ImageNet AlexNet that
# LPIPS needs is meaningless on these images and absent offline); 'alexnet' for LPIPS
DIVERSITY_FEATURES=${DIVERSITY_FEATURES:-segmenter}
if [ "${1:-}" = oasis ]; then
  CELLS="baseline_spade__mspatch bench/spade_vae ablations/oasis/oasis \
ablations/oasis/spade_g__oasis_d ablations/oasis/oasis_g__mspatch_d"
  NAMES="Baseline SPADE+VAE OASIS SPADE-G+OASIS-D OASIS-G+MsPatch-D"
  CURVES="" NAME=synthetic_oasis NOTES=gin/bench/notes_oasis.md DIVERSITY=100
  TITLE="Synthetic benchmark: OASIS next to SPADE, and two crossed cells"
fi
# precision / recall (k=3) and density / coverage (k=5) in the segmenter's feature space ('' to leave them out)
KNN=${KNN-"--metrics precision_recall density_coverage --knn_features segmenter"}
TRAIN_ONLY=${TRAIN_ONLY:-0}                 # 1: train the cells, evaluate nothing
# cells evaluated at every checkpoint (metric curves); the others only at their last one (saves CPU time)
CURVES=${CURVES-"baseline_spade__mspatch ccfpse__fpse"}

mixin() { case "$1" in */*) echo "gin/$1.gin" ;; *) echo "gin/ablations/ccfpse_table2/$1.gin" ;; esac; }

for cell in $CELLS; do
  run="$OUT/$(basename "$cell")"
  if [ ! -f "$run/summary.json" ]; then
    rm -rf "$run"
    $PY experiments/run.py --gin gin/bench/synthetic.gin --gin "$(mixin "$cell")" --run_dir "$run"
  fi
  [ "$TRAIN_ONLY" = 1 ] && continue
  ckpts=("$run"/step_*)
  case " $CURVES " in *" $cell "*) ;; *) ckpts=("$run/$(cat "$run/latest")") ;; esac
  for ckpt in "${ckpts[@]}"; do
    step=${ckpt##*_}
    [ -f "$run/eval/val_step${step}_segmenter.json" ] || \
      $PY -m condgen eval "$ckpt" --features segmenter --num_images "$IMAGES" --diversity_maps "$DIVERSITY" \
        --diversity_features "$DIVERSITY_FEATURES" $KNN
  done
done

[ "$TRAIN_ONLY" = 1 ] && exit 0
runs=()
for cell in $CELLS; do runs+=("$OUT/$(basename "$cell")"); done
# shellcheck disable=SC2086
$PY experiments/compare.py "${runs[@]}" --names $NAMES --out "$REPORT" --name "$NAME" --features segmenter \
  --title "$TITLE" --notes "$NOTES"
