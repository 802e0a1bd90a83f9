#!/usr/bin/env bash
# Reproduces the README's results table: each model on its real dataset, on
# the given device (cpu or gpu), with the commands shown in the table.
# Usage: scripts/results.sh cpu|gpu [out-dir]
# Prints one markdown row per run; the run directories go to out-dir
# (default runs/results-<device>). ONLY=<name> runs only the rows of that
# name (the first field of each entry below: a preset, or custom,
# custom-bn, custom-strided, rnn64, text-layers, gated-short, series),
# e.g. ONLY=custom scripts/results.sh cpu.
set -euo pipefail
cd "$(dirname "$0")/.."
device=${1:?usage: scripts/results.sh cpu|gpu [out-dir]}
out=${2:-runs/results-$device}
cargo build --release --quiet
bin=target/release/wgtrain

runs=(
  "linear|train linear"
  "logistic|train logistic"
  "logistic|train logistic --data iris"
  "mlp|train mlp"
  "mlp|train mlp --data mnist"
  "cnn|train cnn --data mnist"
  "rnn|train rnn"
  "lstm|train lstm"
  "gru|train gru"
  "rnn64|train rnn --seq-len 64 --batch-size 32"
  "custom|train --config examples/mnist_cnn.toml"
  "custom-bn|train --config examples/mnist_cnn_bn.toml"
  "custom-strided|train --config examples/mnist_strided.toml"
  "text-layers|train rnn --layers embedding:32,rnn:128"
  "text-layers|train rnn --layers embedding:32,rnn:128,dropout:0.2"
  "gated-short|train lstm --hidden 64 --max-train-samples 2000 --epochs 6 --lr 0.01"
  "gated-short|train gru --hidden 64 --max-train-samples 2000 --epochs 6 --lr 0.01"
  "series|train --layers lstm:32 --data data/timeseries/sunspots_yearly.csv --window 24 --test-fraction 0.2"
  "series|train --layers lstm:32 --data data/timeseries/co2_weekly.csv --window 52 --missing interpolate --relative --test-fraction 0.2"
)

echo "| command | device | data | test metric | baselines on the same split | epochs run (kept) | train time | samples/s |"
echo "|---|---|---|---|---|---|---|---|"
i=0
for r in "${runs[@]}"; do
  model=${r%%|*}
  cmd=${r#*|}
  dir="$out/$i-$model"
  i=$((i + 1))
  if [ -n "${ONLY:-}" ] && [ "$ONLY" != "$model" ]; then continue; fi
  # The custom MNIST CNN is run on the CPU only (221 s there in results/train-cpu.md; on a software
  # adapter it would be far longer, not measured).
  # The text-layer variants of the RNN and the other custom CNNs likewise.
  if [ "$model" = custom ] || [ "$model" = custom-bn ] || [ "$model" = custom-strided ] ||
    [ "$model" = text-layers ]; then
    if [ "$device" = gpu ] && [ -z "${ONLY:-}" ]; then continue; fi
  fi
  # shellcheck disable=SC2086
  json=$($bin $cmd --device "$device" --out "$dir" --json --quiet | tail -n 1)
  python3 - "$cmd" "$json" <<'PY'
import json, sys
cmd, j = sys.argv[1], json.loads(sys.argv[2])
t = j.get("test", {})
if "accuracy" in t:
    metric = f"accuracy {100 * t['accuracy']:.2f}%"
elif "r2" in t:
    metric = f"R² {t['r2']:.4f}, RMSE {t['rmse']:.4g}"
else:
    metric = f"{t['bits_per_char']:.3f} bits/char"
adapter = j["adapter"] or "cpu"
def fmt(b):
    v = b["value"]
    if b["metric"] == "accuracy":
        return f"{b['name']} {100 * v:.2f}%"
    if b["metric"] == "bits_per_char":
        return f"{b['name']} {v:.3f}"
    return f"{b['name']} {b['metric'].upper() if b['metric'] == 'rmse' else 'R²'} {v:.4f}"
base = "; ".join(fmt(b) for b in j.get("baselines", []))
print(f"| `wgtrain {cmd}` | {adapter} | {j['test_split']} split, {t['samples']} samples | {metric} | {base} | {j['epochs']} of {j['max_epochs']}{', stopped early' if j['ended'] == 'early_stopped' else ''} (best {j['best_epoch']}) | {j['seconds']:.1f} s | {j['samples_per_sec']:.0f} |")
PY
done
