#!/usr/bin/env bash
# Fuzzes every parser in protocols/ with cargo-fuzz (libFuzzer, nightly):
# each target in protocols/fuzz/fuzz_targets/ runs for SECONDS_PER_TARGET
# (10 minutes by default), starting from the seeds committed in
# protocols/fuzz/corpus/<target>/. A crash stops the script and leaves its
# input in protocols/fuzz/artifacts/<target>/: turn it into a regression
# test next to the parser, fix, run again. Not part of CI.
#
#   benches/fuzz.sh                          every target, 10 min each
#   SECONDS_PER_TARGET=60 benches/fuzz.sh rtmp_session amf0
set -euo pipefail
cd "$(dirname "$0")/../protocols"
seconds=${SECONDS_PER_TARGET:-600}
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
for target in "${targets[@]}"; do
  echo "fuzz: $target for ${seconds}s" >&2
  cargo +nightly fuzz run "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 2>&1 \
    | grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY|artifact_prefix|Test unit written)" || true
  if ls "fuzz/artifacts/$target"/{crash,oom,timeout,leak}-* >/dev/null 2>&1; then
    echo "fuzz: $target failed (crash, out of memory or timeout); inputs in protocols/fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each without a crash" >&2
