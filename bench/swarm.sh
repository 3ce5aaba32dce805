#!/usr/bin/env bash
# Swarm-download benchmark: one file fetched by `p2pshare get` (SHA-1 verified, fsynced)
# from several holders at once over loopback, next to references measured in the same
# rounds:
#
#   N sources      get --max-sources N, with 8 uncapped holders of the file, N = 1 2 4 8
#                  reference: the 1-source time and `dd bs=1M conv=fsync` of the same
#                  file (the disk), same round
#   4 capped       4 other holders, each started with --max-upload-rate CAP (25M)
#                  reference: the sum of the caps (4 x 25 MB/s = 100 MB/s); target 0.9
#   kill at 50%    get from 1 source, SIGKILL once the state file records half the
#                  pieces, then the same get again (it resumes); overhead = both runs
#                  minus the 1-source time of the same round
#
# Cases are interleaved (1 2 4 8 dd capped resume, 1 2 4 8 ...) for --runs rounds;
# before every timed run the previous destination is removed and `sync` runs. Holders
# read from the page cache (hard links of one file); destinations are on the disk of
# the output folder. MB = 10^6 bytes.
#
# Usage: bench/swarm.sh [--size 1G] [--runs 5] [--cap 25M] [--out DIR] [--smoke]
#   --size    file size, K/M/G binary (1G = 2^30 bytes)            [default: 1G]
#   --runs    rounds                                                [default: 5]
#   --cap     upload cap of each of the 4 capped holders, bytes per second with
#             a k/M/G suffix (10^3/10^6/10^9)                       [default: 25M]
#   --out     results folder          [default: bench/results/swarm-<UTC timestamp>]
#   --smoke   8M, 1 round, for CI: checks the script still runs (the kill-at-50%
#             runs are then capped at 4 MB/s, so there is a middle to kill in)
# Environment: BENCH_WAIT_SECS, how long to wait for servers (default 120).
# Outputs in OUT: swarm.csv (one row per timed run), swarm.json (the same, with the
# machine and the summary), report.txt (the tables), logs/.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"

CMDLINE="bench/swarm.sh $*"
SIZE_ARG=1G
RUNS=5
CAP=25M
OUT=""
SMOKE=0
WAIT_SECS="${BENCH_WAIT_SECS:-120}"
usage_error() {
    printf 'swarm.sh: %s (see --help)\n' "$*" >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case "$1" in
        --size | --runs | --cap | --out)
            [ $# -ge 2 ] || usage_error "$1 needs a value"
            case "$1" in
                --size) SIZE_ARG="$2" ;;
                --runs) RUNS="$2" ;;
                --cap) CAP="$2" ;;
                --out) OUT="$2" ;;
            esac
            shift 2
            ;;
        --smoke) SMOKE=1 && shift ;;
        -h | --help) sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//' && exit 0 ;;
        *) usage_error "unknown argument '$1'" ;;
    esac
done
if [ "$SMOKE" -eq 1 ]; then
    SIZE_ARG=8M
    RUNS=1
fi
SIZE="$(size_to_bytes "$SIZE_ARG")" || usage_error "bad --size '$SIZE_ARG' (examples: 8M, 1G)"
case "$RUNS" in '' | *[!0-9]* | 0) usage_error "--runs must be a positive whole number" ;; esac
case "$WAIT_SECS" in '' | *[!0-9]* | 0) usage_error "BENCH_WAIT_SECS must be a positive whole number" ;; esac
for tool in python3 cargo dd sha1sum sync head; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required and not installed"
done

cd "$REPO"
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/p2pshare"
case "$BIN" in /*) ;; *) BIN="$REPO/$BIN" ;; esac
[ -x "$BIN" ] || die "no binary at $BIN after the build"
case "$CAP" in
    *[!0-9kMG]* | '' | [kMG]* | *[kMG]?*) usage_error "bad --cap '$CAP' (examples: 25M, 500k)" ;;
    *k) CAP_BPS=$((${CAP%k} * 1000)) ;;
    *M) CAP_BPS=$((${CAP%M} * 1000000)) ;;
    *G) CAP_BPS=$((${CAP%G} * 1000000000)) ;;
    *) CAP_BPS="$CAP" ;;
esac

OUT="${OUT:-bench/results/swarm-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
LOGDIR="$OUT/logs"
mkdir -p "$LOGDIR"
WORK="$(mktemp -d "$OUT/work.XXXXXX")"
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_all
    [ "$status" -eq 0 ] || printf '\nswarm.sh failed (exit %d); logs in %s\n' "$status" "$LOGDIR" >&2
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ "$COMMIT" != unknown ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    COMMIT="$COMMIT (with uncommitted changes)"
fi
HEADER="$(
    echo "p2pshare swarm benchmark"
    echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "command:  $CMDLINE"
    echo "binary:   $("$BIN" --version) (commit $COMMIT, release build)"
    echo "machine:  nproc $(nproc), $(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1), kernel $(uname -r)"
    echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min, at start)"
    echo "work dir: $(df -PT "$WORK" | awk 'NR == 2 { print $2 " on " $1 }')"
    echo "size:     $SIZE bytes; rounds: $RUNS; cap: $CAP per capped holder"
)"
printf '%s\n\n' "$HEADER"

# --- holders ---------------------------------------------------------------------------

SRC="$WORK/source.bin"
head -c "$SIZE" /dev/urandom >"$SRC"
SRC_ID="$(content_id "$SRC")"

start_bg "$LOGDIR/index.log" "$BIN" index --listen 127.0.0.1:0 --db :memory:
INDEX_PID="$BG_PID"
INDEX="$(wait_for_line "$LOGDIR/index.log" "$INDEX_PID" 's/^p2pshare index .* listening on \([^ ,]*\).*/\1/p' "$WAIT_SECS")"

PEERS=()
start_holder() { # NAME FILE-NAME EXTRA-ARGS...
    local name="$1" file="$2"
    shift 2
    mkdir -p "$WORK/$name"
    ln "$SRC" "$WORK/$name/$file"
    start_bg "$LOGDIR/$name.log" "$BIN" peer --dir "$WORK/$name" --listen 127.0.0.1:0 \
        --index "$INDEX" --no-console "$@"
    PEERS+=("$name:$BG_PID")
}
for k in 1 2 3 4 5 6 7 8; do start_holder "free$k" swarm.bin; done
for k in 1 2 3 4; do start_holder "capped$k" capped.bin --max-upload-rate "$CAP"; done
for entry in "${PEERS[@]}"; do
    wait_for_line "$LOGDIR/${entry%%:*}.log" "${entry##*:}" \
        "s/^index $INDEX: connected, \([0-9]*\) files\{0,1\} published.*/\1/p" "$WAIT_SECS" >/dev/null
done
# Every holder is listed before the first run.
deadline=$((SECONDS + WAIT_SECS))
until "$BIN" search bin --index "$INDEX" --json 2>/dev/null | python3 -c '
import json, sys
have = {r["name"]: r["holders"] for r in json.load(sys.stdin)["results"]}
sys.exit(0 if have.get("swarm.bin", 0) >= 8 and have.get("capped.bin", 0) >= 4 else 1)'; do
    [ "$SECONDS" -lt "$deadline" ] || die "the index did not list every holder within ${WAIT_SECS}s"
    sleep 0.1
done
echo "index $INDEX: 8 uncapped holders of swarm.bin, 4 holders of capped.bin at $CAP each"
echo

# --- timed runs ------------------------------------------------------------------------

CSV="$OUT/swarm.csv"
echo "case,run,seconds,mb_per_s,detail" >"$CSV"
DL="$WORK/dl"

record() { # CASE RUN US DETAIL
    local secs mbps=""
    secs="$(awk -v us="$3" 'BEGIN { printf "%.6f", us / 1e6 }')" # may be negative
    # A throughput only for a transfer of the whole file.
    case "$1" in killed | resume-overhead) ;; *) [ "$3" -le 0 ] || mbps="$(fmt_mbps "$SIZE" "$3")" ;; esac
    printf '%s,%s,%s,%s,%s\n' "$1" "$2" "$secs" "$mbps" "$4" >>"$CSV"
    printf '  run %d/%d  %-14s %10s s %10s MB/s  %s\n' "$2" "$RUNS" "$1" "$secs" "$mbps" "$4"
}

fresh_dest() {
    rm -rf "$DL"
    mkdir -p "$DL"
    sync
}

# Checks a get's JSON answer and the file it left.
check_get() { # JSON-LINE WHAT
    case "$1" in *'"status":"downloaded"'*) ;; *) die "$2: unexpected answer $1" ;; esac
    case "$1" in *"\"id\":\"sha1:$SRC_ID\""*) ;; *) die "$2: content id is not sha1:$SRC_ID: $1" ;; esac
    [ "$(stat -c %s "$DL/$3")" = "$SIZE" ] || die "$2: $DL/$3 has the wrong size"
}

# Prints how many holders the answer names as sources.
source_count() {
    python3 -c 'import json, sys; print(len(json.loads(sys.argv[1])["sources"]))' "$1"
}

run_get() { # CASE RUN FILE ARGS...
    local case="$1" run="$2" file="$3" t0 t1 out
    shift 3
    fresh_dest
    t0="$(now_us)"
    out="$("$BIN" get "$file" --index "$INDEX" --dir "$DL" --json "$@" 2>>"$LOGDIR/get.log")" ||
        die "$case: get failed (see $LOGDIR/get.log)"
    t1="$(now_us)"
    printf '%s\n' "$out" >>"$LOGDIR/get.jsonl"
    check_get "$out" "$case" "$file"
    record "$case" "$run" $((t1 - t0)) "sources=$(source_count "$out")"
    LAST_US=$((t1 - t0))
}

run_dd() { # RUN
    local t0 t1
    fresh_dest
    t0="$(now_us)"
    dd if="$SRC" of="$DL/dd.bin" bs=1M conv=fsync status=none
    t1="$(now_us)"
    record dd "$1" $((t1 - t0)) "local copy"
}

# Fraction of pieces the state file in STATE-DIR records, polled until it reaches
# HALF or PID exits; prints the fraction reached.
wait_half() { # STATE-DIR PID
    python3 - "$1" "$2" "$WAIT_SECS" <<'EOF'
import os, sys, time
part = os.path.join(sys.argv[1], "partial")
pid, limit = int(sys.argv[2]), time.time() + int(sys.argv[3])
def fraction():
    try:
        names = [n for n in os.listdir(part) if n.endswith(".state")]
        b = open(os.path.join(part, names[0]), "rb").read()
    except (OSError, IndexError):
        return 0.0
    if len(b) < 66 or b[:8] != b"P2PPART2":
        return 0.0
    count = int.from_bytes(b[40:44], "big")
    name_len = int.from_bytes(b[44:46], "big")
    done = sum(bin(x).count("1") for x in b[46 + name_len:-20])
    return done / max(count, 1)
f = 0.0
while time.time() < limit:
    f = fraction()
    if f >= 0.5:
        break
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as s:
            if s.read().split(") ")[-1].startswith("Z"):
                break
    except OSError:
        break
    time.sleep(0.002)
print(f"{f:.3f}")
EOF
}

RESUME_ARGS=(--max-sources 1)
[ "$SMOKE" -eq 0 ] || RESUME_ARGS+=(--max-download-rate 4M)

run_resume() { # RUN REFERENCE-US
    local run="$1" ref_us="$2" t0 t1 t2 pid frac out resumed
    fresh_dest
    t0="$(now_us)"
    start_bg "$LOGDIR/killed-get.log" "$BIN" get swarm.bin --index "$INDEX" --dir "$DL" --json "${RESUME_ARGS[@]}"
    pid="$BG_PID"
    frac="$(wait_half "$DL/.p2pshare" "$pid")"
    kill -9 "$pid" 2>/dev/null || true
    stop_pid "$pid"
    t1="$(now_us)"
    [ -e "$DL/swarm.bin" ] && die "kill at 50%: the download finished before the kill (at $frac); use a larger --size"
    out="$("$BIN" get swarm.bin --index "$INDEX" --dir "$DL" --json "${RESUME_ARGS[@]}" 2>>"$LOGDIR/get.log")" ||
        die "resume: get failed (see $LOGDIR/get.log)"
    t2="$(now_us)"
    printf '%s\n' "$out" >>"$LOGDIR/get.jsonl"
    check_get "$out" resume swarm.bin
    resumed="$(python3 -c '
import json, re, sys
notes = " ".join(json.loads(sys.argv[1]).get("notes", []))
m = re.search(r"resuming .*?: (\d+) of (\d+) pieces", notes)
print(f"{int(m.group(1)) / int(m.group(2)):.3f}" if m else "0")' "$out")"
    [ "$resumed" != 0 ] || die "resume: the second run did not resume anything: $out"
    record killed "$run" $((t1 - t0)) "recorded=$frac"
    record resumed "$run" $((t2 - t1)) "kept=$resumed"
    record resume-overhead "$run" $((t2 - t0 - ref_us)) "reference_us=$ref_us"
}

for ((run = 1; run <= RUNS; run++)); do
    ONE_US=0
    for n in 1 2 4 8; do
        run_get "$n-sources" "$run" swarm.bin --max-sources "$n"
        [ "$n" -ne 1 ] || ONE_US="$LAST_US"
    done
    run_dd "$run"
    run_get "4-capped" "$run" capped.bin
    if [ "$SMOKE" -eq 1 ]; then
        # The reference for the smoke run's capped resume: a full get at the same cap.
        run_get "1-source-4M" "$run" swarm.bin "${RESUME_ARGS[@]}"
        ONE_US="$LAST_US"
    fi
    run_resume "$run" "$ONE_US"
    echo
done

# --- report ----------------------------------------------------------------------------

echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min, at the end)"
echo
BENCH_HEADER="$HEADER" BENCH_SIZE="$SIZE" BENCH_CAP_BPS="$CAP_BPS" BENCH_CAP="$CAP" \
    python3 - "$OUT" <<'EOF' | tee "$OUT/report.txt"
import csv, json, os, statistics, sys
from collections import defaultdict

out = sys.argv[1]
size = int(os.environ["BENCH_SIZE"])
cap_sum = 4 * int(os.environ["BENCH_CAP_BPS"]) / 1e6
rows = list(csv.DictReader(open(os.path.join(out, "swarm.csv"))))
secs = defaultdict(dict)  # case -> run -> seconds
for r in rows:
    secs[r["case"]][int(r["run"])] = float(r["seconds"])

def med(xs):
    return statistics.median(xs) if xs else float("nan")

def spread(xs, fmt="{:.3f}"):
    return (fmt + "–" + fmt).format(min(xs), max(xs)) if xs else "-"

def ratios(case, ref):
    """Per-round ratios of case time to the reference time of the same round."""
    return [secs[case][r] / secs[ref][r] for r in secs[case] if r in secs[ref]]

summary = {}
lines = ["", f"file: {size} bytes ({size / 2**30:.2f} GiB); MB = 10^6 bytes; medians of {len(secs['1-sources'])} rounds", ""]
lines.append("| case | median s | min–max s | median MB/s | time / 1 source | time / dd |")
lines.append("| --- | ---: | ---: | ---: | ---: | ---: |")
for case in ["1-sources", "2-sources", "4-sources", "8-sources", "dd"]:
    t = list(secs[case].values())
    r1, rd = ratios(case, "1-sources"), ratios(case, "dd")
    label = "dd bs=1M conv=fsync (local copy)" if case == "dd" else case.replace("-sources", " source(s), uncapped")
    lines.append(f"| {label} | {med(t):.3f} | {spread(t)} | {size / med(t) / 1e6:.0f} | {med(r1):.2f} | {med(rd):.2f} |")
    summary[case] = {"median_s": med(t), "runs_s": t, "per_1_source": med(r1), "per_dd": med(rd)}

t = list(secs["4-capped"].values())
mbps = [size / x / 1e6 for x in t]
of_sum = med(mbps) / cap_sum
summary["4-capped"] = {"median_s": med(t), "runs_s": t, "median_mb_per_s": med(mbps), "of_cap_sum": of_sum}
lines += ["", f"4 holders capped at {os.environ['BENCH_CAP']} each (sum {cap_sum:.0f} MB/s): "
          f"median {med(mbps):.1f} MB/s ({spread(mbps, '{:.1f}')}) = {of_sum:.3f} of the sum "
          f"(target >= 0.90: {'met' if of_sum >= 0.9 else 'NOT met'})"]

over = list(secs["resume-overhead"].values())
ref = [secs["1-source-4M" if "1-source-4M" in secs else "1-sources"][r] for r in secs["resume-overhead"]]
rel = [o / f for o, f in zip(over, ref)]
killed = [float(r["detail"].split("=")[1]) for r in rows if r["case"] == "killed"]
kept = [float(r["detail"].split("=")[1]) for r in rows if r["case"] == "resumed"]
summary["resume"] = {"overhead_s": med(over), "runs_s": over, "of_full": med(rel),
                     "killed_at": med(killed), "kept": med(kept)}
lines += ["", f"kill -9 at 50% (state file at {med(killed):.0%} when killed; {med(kept):.0%} of the pieces kept), then resume, 1 source:",
          f"  killed run {med(list(secs['killed'].values())):.3f} s + resumed run {med(list(secs['resumed'].values())):.3f} s"
          f" = full download + {med(over):.3f} s ({spread(over)}), i.e. {med(rel):.1%} of one full download"]
json.dump({"header": os.environ["BENCH_HEADER"], "rows": rows, "summary": summary},
          open(os.path.join(out, "swarm.json"), "w"), indent=1)
print("\n".join(lines))
print(f"\nraw figures: {out}/swarm.csv, {out}/swarm.json")
EOF
