#!/usr/bin/env bash
# Out-of-core benchmark (README, "X larger than memory"): generates a planted problem whose
# X (float32 .npy) is larger than a memory limit, measures the disk's read rate with dd
# (cold: page cache dropped, when permitted; warm: cached), fits it once in memory
# (no limit) and once inside a memory-limited cgroup (relutrim fit's --max-memory default
# then comes from the cgroup's limit, so X is memory-mapped), and prints time, peak memory,
# passes, bytes read and read rate of both. Deletes the data afterwards (KEEP=1 keeps it).
#
#   scripts/ooc_bench.sh [DIR]        (default DIR /work/ooc-bench; needs root for the cgroup)
#   env: N (rows, 1200000), NX (500), NY (4), LIMIT (bytes, 1073741824), LAMBDA (0.01), KEEP
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-/work/ooc-bench}
N=${N:-1200000} NX=${NX:-500} NY=${NY:-4} LIMIT=${LIMIT:-1073741824} LAMBDA=${LAMBDA:-0.01}
mkdir -p "$DIR"
echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(uname -r); uptime: $(uptime)"
echo "== disk"; df -h "$DIR" | tail -1
need=$((N * NX * 4 + N * NY * 8))
avail=$(df --output=avail -B1 "$DIR" | tail -1)
if [ "$avail" -lt $((need + (1 << 30))) ]; then
  echo "FAIL: $DIR has $avail bytes free, the data needs $need plus 1 GiB" >&2
  exit 1
fi
go build -o "$DIR/relutrim" ./cmd/relutrim
go build -o "$DIR/oocgen" ./bench/oocgen
cleanup() {
  if [ -n "${CG:-}" ] && [ -d "$CG" ]; then rmdir "$CG" 2>/dev/null || true; fi
  if [ "${KEEP:-}" != 1 ]; then rm -f "$DIR/X.npy" "$DIR/Y.npy"; fi
}
trap cleanup EXIT

X="$DIR/X.npy" Y="$DIR/Y.npy"
if [ ! -f "$X" ]; then
  echo "== generating X ($N x $NX float32, $((N * NX * 4)) bytes) and Y ($N x $NY)"
  "$DIR/oocgen" -n "$N" -nx "$NX" -ny "$NY" -x "$X" -y "$Y"
  sync
fi
XB=$(stat -c %s "$X")
echo "X: $XB bytes; limit $LIMIT bytes (X / limit = $(awk "BEGIN{printf \"%.2f\", $XB/$LIMIT}"))"

drop() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; }
echo "== dd read rate of X"
if drop; then
  echo -n "cold: "; dd if="$X" of=/dev/null bs=16M 2>&1 | tail -1
else
  echo "cold: not measured (cannot drop the page cache: not root?)"
fi
echo -n "warm: "; dd if="$X" of=/dev/null bs=16M 2>&1 | tail -1

# summary FILE.json TIMEFILE: the report's numbers and /usr/bin/time's peak RSS.
summary() {
  python3 - "$1" "$2" <<'PY'
import json, re, sys
r = json.load(open(sys.argv[1]))
t = open(sys.argv[2]).read()
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) * 1024
wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", t).group(1)
print(f"  wall {wall}, fit time {r['time_seconds']:.1f} s, F {r['F']!r}, status {r['status']}, {r['iterations']} iterations")
print(f"  out_of_core {r['out_of_core']}, max_memory {r['max_memory_bytes']/2**20:.0f} MiB, x_bytes {r['x_bytes']/1e9:.2f} GB")
print(f"  passes (solver) {r['passes']:.1f}, passes over X (run) {r['x_passes']:.1f}, {r['seconds_per_pass']:.2f} s per pass")
print(f"  bytes read from disk {r['bytes_read']/1e9:.2f} GB, read rate {r['read_rate_gb_per_s']:.3f} GB/s over the run")
print(f"  peak RSS (VmHWM) {r['peak_rss_bytes']/2**20:.0f} MiB, /usr/bin/time max RSS {rss/2**20:.0f} MiB")
PY
}

echo "== in memory (no limit; X cached by the warm dd), uptime: $(uptime)"
/usr/bin/time -v "$DIR/relutrim" fit --x "$X" --y "$Y" --lambda "$LAMBDA" --out "$DIR/mem.safetensors" \
  --report "$DIR/mem.json" --quiet 2>"$DIR/mem.time"
summary "$DIR/mem.json" "$DIR/mem.time"

# A memory-limited cgroup: a child of this process's own memory cgroup (v1
# memory.limit_in_bytes, or v2 memory.max), else systemd-run's scope when systemd runs.
echo "== out of core: limit $LIMIT bytes, page cache dropped first, uptime: $(uptime)"
drop || true
CG= PEAKFILE= ANONKEY=
v1=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ {print $3}' /proc/self/cgroup)
v2=$(awk -F: '$1 == "0" {print $3}' /proc/self/cgroup)
if [ -n "$v1" ] && [ -d "/sys/fs/cgroup/memory$v1" ]; then
  CG="/sys/fs/cgroup/memory${v1%/}/relutrim-ooc-$$"
  mkdir "$CG" && echo "$LIMIT" >"$CG/memory.limit_in_bytes"
  PEAKFILE=memory.max_usage_in_bytes ANONKEY=rss
elif [ -n "$v2" ] && [ -f "/sys/fs/cgroup${v2%/}/cgroup.controllers" ] && mkdir "/sys/fs/cgroup${v2%/}/relutrim-ooc-$$" 2>/dev/null; then
  CG="/sys/fs/cgroup${v2%/}/relutrim-ooc-$$"
  echo "$LIMIT" >"$CG/memory.max"
  echo 0 >"$CG/memory.swap.max" 2>/dev/null || true
  PEAKFILE=memory.peak ANONKEY=anon
fi
run_limited() {
  if [ -n "$CG" ]; then
    echo "(cgroup $CG)"
    sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$CG" "$@"
  elif systemd-run --scope -q -p MemoryMax=1G true >/dev/null 2>&1; then
    echo "(systemd-run --scope -p MemoryMax=$LIMIT)"
    systemd-run --scope -q -p MemoryMax="$LIMIT" -p MemorySwapMax=0 "$@"
  else
    echo "FAIL: no memory cgroup to create a limited child in, and no systemd" >&2
    return 1
  fi
}
# The cgroup's anonymous memory (what reclaim cannot drop: the solver's arrays), sampled
# every 0.2 s; page cache and the mapped X's pages are the rest of the cgroup's usage.
ANONMAX="$DIR/anon.max"
echo 0 >"$ANONMAX"
if [ -n "$CG" ]; then
  (
    m=0
    while [ -d "$CG" ]; do
      v=$(awk -v k="$ANONKEY" '$1 == k {print $2}' "$CG/memory.stat" 2>/dev/null || echo 0)
      if [ "${v:-0}" -gt "$m" ]; then m=$v; echo "$m" >"$ANONMAX"; fi
      sleep 0.2
    done
  ) &
  SAMPLER=$!
fi
run_limited /usr/bin/time -v "$DIR/relutrim" fit --x "$X" --y "$Y" --lambda "$LAMBDA" --out "$DIR/ooc.safetensors" \
  --report "$DIR/ooc.json" --quiet 2>"$DIR/ooc.time" || { cat "$DIR/ooc.time" >&2; exit 1; }
summary "$DIR/ooc.json" "$DIR/ooc.time"
if [ -n "$CG" ]; then
  echo "  cgroup peak ($PEAKFILE, page cache included) $(($(cat "$CG/$PEAKFILE") >> 20)) MiB of the $((LIMIT >> 20)) MiB limit"
  echo "  cgroup peak anonymous memory ($ANONKEY in memory.stat, sampled every 0.2 s) $(($(cat "$ANONMAX") >> 20)) MiB"
  [ -f "$CG/memory.failcnt" ] && echo "  cgroup memory.failcnt (times the limit was reached and pages reclaimed) $(cat "$CG/memory.failcnt")"
fi
# The raw pass rate of the two out-of-core readers in the same limit, from a cold cache:
# the memory map relutrim uses, and a bounded pread(2) buffer (bench/oocread).
go build -o "$DIR/oocread" ./bench/oocread
for mode in mmap pread; do
  drop || true
  run_limited "$DIR/oocread" -mode "$mode" -passes 2 "$X" | tail -1
done
if [ -n "$CG" ]; then
  rmdir "$CG"
  wait "$SAMPLER" 2>/dev/null || true
fi
if cmp -s "$DIR/mem.safetensors" "$DIR/ooc.safetensors"; then
  echo "== the two layer files are identical (bitwise)"
else
  echo "FAIL: the out-of-core layer differs from the in-memory one" >&2
  exit 1
fi
echo "== done, uptime: $(uptime)"
