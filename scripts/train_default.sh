#!/usr/bin/env bash
# The default model on one GPU: train the masked-diffusion model and its AR FIM peer at the largest size the
# bundle holds (~46M parameters, ~88 MiB of bf16 weights), bundle the diffusion model, benchmark both on MBPP
# infilling (scripts/bench_infill.py) and write the model card. Rehearsed at toy size on the CPU by
# tests/test_train_recipe.py, which runs these same phases.
#
# A lent GPU machine (the `device` tool) runs one command for at most 10 minutes, 30 minutes in all with its
# start-up, reaches no network, takes at most 64 MiB of files along (the working tree plus `carry`) and gives
# back at most 8 files of 16 MiB (64 MiB) per call. So the work runs as one background pipeline (setsid: it
# outlives the call that started it) and the calls only start, watch and collect it:
#
#   here, once:  bash scripts/train_default.sh prepare
#                  checks the corpus archive (python -m training.archive build --out runs/corpus-archive),
#                  copies the MBPP files to runs/mbpp, downloads the wheels the GPU image lacks (tree-sitter
#                  and its grammars, transformers at our pin) into .whl, and checks the carry size
#   device:      run(command="bash scripts/train_default.sh start",
#                    carry=["runs/corpus-archive", "runs/mbpp", ".whl"], timeout_s=600)
#                  merges the archive with the machine's own permissive Python, trains the shared
#                  tokenizer, calibrates the step rate, trains both models at once for TRAIN_MINUTES,
#                  bundles, benchmarks, writes the card; the call watches ~9 minutes
#   device:      run(command="bash scripts/train_default.sh collect 1", timeout_s=600)
#                  waits for the pipeline to finish (at most ~9 more minutes), returns part 1
#                  (small.tar.gz with the card, reports and logs, plus the first weight shards)
#   device:      run(command="bash scripts/train_default.sh collect 2", timeout_s=600)
#                  returns the remaining shards (the plan says how many parts: `collect 3` if it says 3)
#   here, after: bash scripts/train_default.sh install DIR_OF_PART_1 DIR_OF_PART_2
#                  (the files_at folders of those calls): verifies every sha256, installs the bundle in
#                  infill/default_model and prints the benchmark for BENCHMARKS.md
#
# Make each device call right after the previous one returns: the machine is given back 30 s after a call,
# and a fresh machine has nothing of the pipeline (then `collect` says so and `start` begins again). If
# `collect 1` ends with "not finished yet", call it again. Commit the new bundle only after the last device
# call: every call carries the tracked files, and a 90 MiB model leaves no room under the 64 MiB limit.
#
# Settings are environment variables (defaults below are the GPU run's). RECIPE=ar-init (the default, chosen
# by the equal-compute comparison in BENCHMARKS.md) trains the AR peer, starts the diffusion model from its
# weights (`infill train --from-ar`) and adapts it with the masked objective; RECIPE=scratch trains both
# models from scratch side by side.
set -Eeuo pipefail
cd "$(dirname "$0")/.."

RECIPE=${RECIPE:-ar-init}                 # ar-init | scratch
AR_SHARE=${AR_SHARE:-0.4}                 # ar-init: share of TRAIN_MINUTES for the AR peer
RUN=${RUN:-runs/gpu}
ARCHIVE=${ARCHIVE:-runs/corpus-archive}
BENCH_DIR=${BENCH_DIR:-runs/mbpp}
SHARED_BENCH=${SHARED_BENCH:-../shared/bench}
WHEELS=${WHEELS:-.whl}
SITE=${SITE:-/tmp/infill-site}
PYTHON=${PYTHON:-python3}
OUT=${OUT:-$RUN/out}
INSTALL_DEST=${INSTALL_DEST:-infill/default_model}
# Model: vocabulary x hidden stays under one 15 MiB shard; 8 layers of 640 = 46.3M parameters (ModernBERT).
VOCAB=${VOCAB:-8192} HIDDEN=${HIDDEN:-640} LAYERS=${LAYERS:-8} HEADS=${HEADS:-10} FFN=${FFN:-1792}
SEQ_LEN=${SEQ_LEN:-512} BATCH=${BATCH:-128} LR=${LR:-1e-3} WARMUP=${WARMUP:-200}
TRAIN_MINUTES=${TRAIN_MINUTES:-8}         # wall time of the two concurrent training runs
STEPS=${STEPS:-auto}                      # steps per model; auto: from a calibration run of both models
CALIBRATE_STEPS=${CALIBRATE_STEPS:-40}
# Extra options for the diffusion model's objective, e.g. "--length-states --edit-noise 0.1" (DreamOn's length
# states: the model decides how long a fill is by expand/delete; edit noise: plausible wrong tokens to undo, for
# edit mode). Off by default: on the CPU the bundle continued with both lost 0.208 of MBPP edit similarity
# (BENCHMARKS.md, "Length states and edit noise"); turn them on for a run that is compared before it is bundled.
DIFFUSION_ARGS=${DIFFUSION_ARGS:-}
MAX_CORPUS_CHARS=${MAX_CORPUS_CHARS:-4000000000}
MAX_CHARS_PER_DISTRIBUTION=${MAX_CHARS_PER_DISTRIBUTION:-8000000}
DATA_WORKERS=${DATA_WORKERS:-6}           # per training process; two run at once on the 16 cores
MERGE_WORKERS=${MERGE_WORKERS:-16}
EVAL_SPANS=${EVAL_SPANS:-64}              # held-out gaps each model is scored on at the end
EXTRA_TRAIN_ARGS=${EXTRA_TRAIN_ARGS:-}    # last on the trainer's command line: they override the above
BENCH_SINGLE=${BENCH_SINGLE:-500} BENCH_MULTI=${BENCH_MULTI:-250}
BENCH_BATCH=${BENCH_BATCH:-32} BENCH_WORKERS=${BENCH_WORKERS:-12}
WAIT_S=${WAIT_S:-540}                     # how long start/collect watch before returning
CARRY_LIMIT_MIB=${CARRY_LIMIT_MIB:-62}
export TQDM_MININTERVAL=${TQDM_MININTERVAL:-30} PYTHONUNBUFFERED=1

SCRIPT=$PWD/scripts/train_default.sh
case "$RECIPE" in scratch | ar-init) ;; *) echo "train_default: error: RECIPE must be scratch or ar-init" >&2; exit 2 ;; esac

die() { echo "train_default: error: $*" >&2; exit 2; }
log() { echo "[$(date -u +%H:%M:%S)] $*"; }
state() { echo "$RUN/state"; }

repo_path() { export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"; }

device_python_path() {
    # Carried wheels (Python 3.12, installed once per machine) come first: they replace the image's older
    # versions. Here, where the wheels were downloaded, they are never installed.
    if compgen -G "$WHEELS/*.whl" > /dev/null; then
        if [ ! -f "$SITE/.installed" ]; then
            "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
                --target "$SITE" "$WHEELS"/*.whl
            touch "$SITE/.installed"
        fi
        export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
    else
        export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
    fi
}

# --- here, before the device calls ------------------------------------------------------------------------
prepare() {
    repo_path
    [ -f "$ARCHIVE/manifest.json" ] || die "no corpus archive in $ARCHIVE: python -m training.archive build --out $ARCHIVE"
    "$PYTHON" -m training.archive show "$ARCHIVE"
    mkdir -p "$BENCH_DIR"
    cp "$SHARED_BENCH"/MBPP-*.jsonl.gz "$BENCH_DIR"/ || die "no MBPP files in $SHARED_BENCH"
    mkdir -p "$WHEELS"
    # The pins of pyproject.toml that the GPU image lacks or has at another version (Python 3.12 there).
    local pins
    pins=$(sed -n 's/^ *"\(\(tree-sitter[a-z-]*\|transformers\)==[^"]*\)",$/\1/p' pyproject.toml)
    [ -n "$pins" ] || die "no tree-sitter/transformers pins found in pyproject.toml"
    # shellcheck disable=SC2086
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 -d "$WHEELS" $pins
    "$PYTHON" - "$CARRY_LIMIT_MIB" "$ARCHIVE" "$BENCH_DIR" "$WHEELS" <<'EOF'
import subprocess, sys
from pathlib import Path
limit, *carried = sys.argv[1:]
listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                        capture_output=True, check=True).stdout.split(b"\0")
tree = sum(Path(p.decode()).stat().st_size for p in listed if p and Path(p.decode()).is_file())
extra = {c: sum(f.stat().st_size for f in Path(c).rglob("*") if f.is_file()) for c in carried}
total = tree + sum(extra.values())
print(f"carry: working tree {tree / 2**20:.1f} MiB + " + " + ".join(f"{c} {b / 2**20:.1f} MiB" for c, b in extra.items())
      + f" = {total / 2**20:.1f} MiB (limit 64)")
sys.exit(0 if total <= float(limit) * 2**20 else "train_default: error: too much to carry: shrink the archive")
EOF
    echo "next: the device calls listed at the top of scripts/train_default.sh"
}

# --- on the GPU machine ---------------------------------------------------------------------------------
running() { [ -f "$(state)/pid" ] && kill -0 "$(cat "$(state)/pid")" 2> /dev/null; }

start() {
    mkdir -p "$RUN"
    if [ -f "$(state)/done" ]; then
        log "the pipeline already finished on this machine: call collect 1"
    elif running; then
        log "the pipeline is already running"
    else
        rm -rf "$(state)" && mkdir -p "$(state)"
        setsid nohup bash "$SCRIPT" pipeline > "$RUN/pipeline.log" 2>&1 < /dev/null &
        echo $! > "$(state)/pid"
        log "pipeline started (pid $(cat "$(state)/pid")), log: $RUN/pipeline.log"
    fi
    follow "$WAIT_S"
}

# Follow the pipeline for at most $1 seconds: 0 when done or still running, 1 when it failed.
follow() {
    local limit=$1 waited=0
    while true; do
        if [ -f "$(state)/done" ]; then
            log "pipeline done"; cat "$RUN/report/timings.tsv"; return 0
        fi
        if [ -f "$(state)/failed" ] || ! running; then
            tail -n 40 "$RUN/pipeline.log"
            log "pipeline failed: $(cat "$(state)/failed" 2> /dev/null || echo 'it stopped without a word')"
            return 1
        fi
        if [ "$waited" -ge "$limit" ]; then
            log "still running after ${waited}s: $(tail -n 1 "$RUN/pipeline.log")"; return 0
        fi
        if [ $((waited % 60)) -eq 0 ]; then log "$(tail -n 1 "$RUN/pipeline.log")"; fi
        sleep 5; waited=$((waited + 5))
    done
}

collect() {
    local part=${1:?collect needs a part number}
    [ -d "$(state)" ] || { echo "train_default: error: nothing ran on this machine (a fresh one?): call start" >&2; exit 3; }
    follow "$WAIT_S" || exit 1
    [ -f "$(state)/done" ] || die "not finished yet: call collect $part again"
    PYTHONPATH="$PWD" "$PYTHON" -m training.transfer part "$part" --plan "$RUN/plan" --out "$OUT"
}

# Run one pipeline step, timed into report/timings.tsv.
step() {
    local name=$1 began
    shift
    echo "$name" > "$(state)/step"
    began=$(date +%s)
    log "step $name"
    "$@"
    printf '%s\t%s s\n' "$name" "$(($(date +%s) - began))" >> "$RUN/report/timings.tsv"
}

train_cmd() {  # $1 out dir, $2 objective, then extra trainer options
    local out=$1 objective=$2 objective_args=""
    shift 2
    if [ "$objective" = diffusion ]; then objective_args=$DIFFUSION_ARGS; fi
    # shellcheck disable=SC2086
    "$PYTHON" -m infill_cli.main train --corpus-archive "$RUN/corpus" --out "$out" --objective "$objective" \
        --vocab-size "$VOCAB" --hidden-size "$HIDDEN" --num-layers "$LAYERS" --num-heads "$HEADS" \
        --intermediate-size "$FFN" --seq-len "$SEQ_LEN" --max-positions "$SEQ_LEN" --batch-size "$BATCH" \
        --lr "$LR" --warmup-steps "$WARMUP" --max-corpus-chars "$MAX_CORPUS_CHARS" \
        --data-workers "$DATA_WORKERS" --keep-checkpoints 1 --eval-every 1000000000 --resume $objective_args "$@" $EXTRA_TRAIN_ARGS
}

# Steps that fit TRAIN_MINUTES (times $1, the share of it) at the rate a calibration run's log shows.
steps_for() {
    "$PYTHON" - "$1/train_log.jsonl" "$TRAIN_MINUTES" "${2:-1}" <<'EOF'
import json, sys
log, minutes, share = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
rows = [r for r in map(json.loads, open(log)) if "loss" in r]
first = rows[min(9, len(rows) - 2)]  # after the first steps: compilation and warm-up are not the rate
rate = (rows[-1]["step"] - first["step"]) / max(1e-6, rows[-1]["elapsed_s"] - first["elapsed_s"])
print(max(20, int(rate * minutes * share * 60 * 0.92)))  # 8% for checkpoints and the final evaluation
EOF
}

calibrate() {  # both models at once, as they will train; sets STEPS_DIFFUSION, STEPS_AR
    local dir=$RUN/calibrate quick=(--from-scratch --tokenizer "$RUN/tokenizer" --max-steps "$CALIBRATE_STEPS"
        --max-corpus-chars 20000000 --eval-spans 0 --eval-batches 1 --save-every 1000000000)
    rm -rf "$dir"
    train_cmd "$dir/diffusion" diffusion "${quick[@]}" > "$RUN/report/calibrate_diffusion.log" 2>&1 &
    local pid=$!
    train_cmd "$dir/ar-peer" ar-fim "${quick[@]}" > "$RUN/report/calibrate_ar.log" 2>&1
    wait "$pid"
    STEPS_DIFFUSION=$(steps_for "$dir/diffusion") STEPS_AR=$(steps_for "$dir/ar-peer")
    log "calibrated: $STEPS_DIFFUSION diffusion steps, $STEPS_AR AR steps in $TRAIN_MINUTES minutes"
}

train_scratch() {
    STEPS_DIFFUSION=$STEPS STEPS_AR=$STEPS
    if [ "$STEPS" = auto ]; then calibrate; fi
    local limit
    limit=$(awk "BEGIN {print $TRAIN_MINUTES * 1.15 + 0.5}")  # a stop that only a bad calibration reaches
    train_cmd "$RUN/diffusion" diffusion --from-scratch --tokenizer "$RUN/tokenizer" --max-steps "$STEPS_DIFFUSION" \
        --save-every $((STEPS_DIFFUSION / 2 + 1)) --minutes "$limit" --eval-spans "$EVAL_SPANS" --eval-batches 8 \
        > "$RUN/report/train_diffusion.log" 2>&1 &
    local pid=$!
    train_cmd "$RUN/ar-peer" ar-fim --from-scratch --tokenizer "$RUN/tokenizer" --max-steps "$STEPS_AR" \
        --save-every $((STEPS_AR / 2 + 1)) --minutes "$limit" --eval-spans "$EVAL_SPANS" --eval-batches 8 \
        > "$RUN/report/train_ar.log" 2>&1
    wait "$pid"
}

train_ar_init() {
    local ar_steps=$STEPS diffusion_steps=$STEPS limit
    limit=$(awk "BEGIN {print $TRAIN_MINUTES * 1.15 + 0.5}")
    if [ "$STEPS" = auto ]; then
        train_cmd "$RUN/calibrate/ar-peer" ar-fim --from-scratch --tokenizer "$RUN/tokenizer" --max-steps "$CALIBRATE_STEPS" \
            --max-corpus-chars 20000000 --eval-spans 0 --eval-batches 1 --save-every 1000000000 \
            > "$RUN/report/calibrate_ar.log" 2>&1
        ar_steps=$(steps_for "$RUN/calibrate/ar-peer" "$AR_SHARE")
        diffusion_steps=$(steps_for "$RUN/calibrate/ar-peer" "$(awk "BEGIN {print 1 - $AR_SHARE}")")
        log "calibrated: $diffusion_steps diffusion steps, $ar_steps AR steps in $TRAIN_MINUTES minutes (AR share $AR_SHARE)"
    fi
    train_cmd "$RUN/ar-peer" ar-fim --from-scratch --tokenizer "$RUN/tokenizer" --max-steps "$ar_steps" \
        --save-every $((ar_steps / 2 + 1)) \
        --minutes "$limit" --eval-spans "$EVAL_SPANS" --eval-batches 8 > "$RUN/report/train_ar.log" 2>&1
    train_cmd "$RUN/diffusion" diffusion --from-ar "$RUN/ar-peer" --max-steps "$diffusion_steps" \
        --save-every $((diffusion_steps / 2 + 1)) --minutes "$limit" --eval-spans "$EVAL_SPANS" --eval-batches 8 \
        > "$RUN/report/train_diffusion.log" 2>&1
}

environment() {
    {
        date -u
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2> /dev/null || echo "no nvidia-smi"
        "$PYTHON" -c 'import sys; from importlib.metadata import version as v
print("python", sys.version.split()[0], "torch", v("torch"), "transformers", v("transformers"))'
        echo "recipe $RECIPE: vocab $VOCAB hidden $HIDDEN layers $LAYERS heads $HEADS ffn $FFN seq $SEQ_LEN batch $BATCH lr $LR train ${TRAIN_MINUTES} min"
    } > "$RUN/report/environment.txt"
}

merge_corpus() {
    "$PYTHON" -m training.archive merge --archive "$ARCHIVE" --installed --stdlib --out "$RUN/corpus" \
        --max-chars-per-distribution "$MAX_CHARS_PER_DISTRIBUTION" --workers "$MERGE_WORKERS" \
        | tee "$RUN/report/corpus.txt"
}

bench() {
    "$PYTHON" scripts/bench_infill.py --model "$RUN/bundle" --ar-model "$RUN/ar-peer" --bench-dir "$BENCH_DIR" \
        --single "$BENCH_SINGLE" --multi "$BENCH_MULTI" --batch-size "$BENCH_BATCH" --workers "$BENCH_WORKERS" \
        --out "$RUN/report/bench_infill.md" --json "$RUN/report/bench_infill.json" > /dev/null
    printf '\n## MBPP infilling against the AR FIM peer (measured where it was trained)\n\n' >> "$RUN/bundle/README.md"
    sed 1d "$RUN/report/bench_infill.md" >> "$RUN/bundle/README.md"
}

report() {
    local name
    for name in README.md eval.json training_config.json train_log.jsonl config.json; do
        [ -f "$RUN/ar-peer/$name" ] && cp "$RUN/ar-peer/$name" "$RUN/report/ar-peer.$name"
    done
    cp "$RUN/diffusion/train_log.jsonl" "$RUN/report/diffusion.train_log.jsonl"
    cp "$RUN/diffusion/training_manifest.json" "$RUN/report/diffusion.training_manifest.json"
    cp "$RUN/corpus/manifest.json" "$RUN/report/corpus.manifest.json"
    cp "$RUN/pipeline.log" "$RUN/report/pipeline.log"
    # Anything of 1 MiB or more is compressed: logs and manifests must not crowd out the weight shards.
    find "$RUN/report" -type f -size +1023k ! -name '*.gz' -exec gzip -9 {} +
}

# Whatever ends the pipeline early says where (the watching call reads it); trainers still running stop.
pipeline_exit() {
    local code=$?
    [ -f "$(state)/done" ] || echo "step $(cat "$(state)/step" 2> /dev/null) (exit $code)" > "$(state)/failed"
    # shellcheck disable=SC2046
    kill $(jobs -p) 2> /dev/null || true
}

pipeline() {
    mkdir -p "$(state)" "$RUN/report"
    : > "$RUN/report/timings.tsv"
    trap pipeline_exit EXIT
    device_python_path
    step environment environment
    step corpus merge_corpus
    step tokenizer "$PYTHON" -m training.archive tokenizer --archive "$RUN/corpus" --vocab-size "$VOCAB" \
        --out "$RUN/tokenizer"
    step train "train_${RECIPE//-/_}"
    step bundle "$PYTHON" -m training.bundle "$RUN/diffusion" --bfloat16 --dest "$RUN/bundle"
    step bench bench
    step report report
    step plan "$PYTHON" -m training.transfer plan --from "bundle=$RUN/bundle" --from "report=$RUN/report" --to "$RUN/plan"
    touch "$(state)/done"
    log "done"
}

# --- here, after the device calls ------------------------------------------------------------------------
install_bundle() {
    [ $# -ge 1 ] || die "install needs the folders the collect calls returned"
    repo_path
    "$PYTHON" -m training.transfer restore "$@" --into "$RUN/result" > /dev/null
    "$PYTHON" -m training.bundle "$RUN/result/bundle" --dest "$INSTALL_DEST" > /dev/null
    log "installed $INSTALL_DEST ($(du -sh "$INSTALL_DEST" | cut -f1)); reports in $RUN/result/report"
    cat "$RUN/result/report/timings.tsv"
    cat "$RUN/result/report/bench_infill.md"
}

case "${1:-}" in
    prepare | start | pipeline) "$1" ;;
    collect) collect "${2:-}" ;;
    install) shift; install_bundle "$@" ;;
    *) die "usage: $0 prepare | start | collect N | install PART_DIR... | pipeline (all steps, in the foreground)" ;;
esac
