#!/usr/bin/env bash
# Fuzzes one Kmem parser with AFL++ through SharpFuzz, from a fresh machine:
#   fuzz/run.sh TARGET [SECONDS]     fuzz TARGET (profile, cmdline, workload, trace, rkdma, fdt, procsnap) for SECONDS (default 1200)
#   fuzz/run.sh cmin TARGET          minimise TARGET's afl queue into fuzz/corpus/TARGET (kept corpus + queue)
#   fuzz/run.sh replay TARGET FILE…  run files once through the target's rule, without afl (triage)
# Installs afl++ (Debian) when afl-fuzz is missing and the SharpFuzz command-line tool from the local tool
# manifest, publishes fuzz/Kmem.Fuzz into fuzz/out/TARGET, instruments its Kmem.dll and runs afl-fuzz with
# the target's seed corpus and dictionary. Findings go to fuzz/findings/TARGET (not committed).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
targets="profile cmdline workload trace rkdma fdt procsnap"

usage() { sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
valid() { [[ " $targets " == *" $1 "* ]] || { echo "unknown target '$1' (one of: $targets)" >&2; exit 2; }; }

install_afl() {
  command -v afl-fuzz >/dev/null && return
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq afl++
}

# Publishes and instruments a copy of the fuzzing program for one target (each target its own copy, so that two
# campaigns can run at once while one of them is rebuilt).
build() {
  local out="$here/out/$1"
  (cd "$root" && dotnet tool restore >/dev/null)
  rm -rf "$out"
  dotnet publish "$here/Kmem.Fuzz/Kmem.Fuzz.csproj" -c Release -o "$out" --nologo -v quiet >/dev/null
  (cd "$root" && dotnet sharpfuzz "$out/Kmem.dll" >/dev/null)
  echo "$out/Kmem.Fuzz"
}

export AFL_SKIP_CPUFREQ=1 AFL_SKIP_BIN_CHECK=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_TieredPGO=0
timeout_ms=10000

case "${1:-}" in
  cmin)
    target="${2:-}"; valid "$target"; install_afl
    queue="$here/findings/$target/default/queue"
    [ -d "$queue" ] || { echo "no afl queue for $target: run fuzz/run.sh $target first" >&2; exit 1; }
    # the campaign's own instrumented copy when it is still there (the coverage map is what matters here)
    prog="$here/out/$target/Kmem.Fuzz"; [ -x "$prog" ] || prog="$(build "$target")"
    # afl-cmin refuses to work under /tmp
    all="$here/findings/$target.cmin-in"; min="$here/findings/$target.cmin-out"
    rm -rf "$all" "$min"; mkdir -p "$all"
    cp "$here/corpus/$target"/* "$all"/
    find "$queue" -maxdepth 1 -type f -name 'id:*' -size -4k -exec cp {} "$all"/ \;
    afl-cmin -i "$all" -o "$min" -t "$timeout_ms" -m none -- "$prog" "$target" >/dev/null
    n=0
    for f in "$min"/*; do
      # keep the named seeds as they are; afl's entries get short stable names
      base="$(basename "$f")"
      if [ -f "$here/corpus/$target/$base" ]; then continue; fi
      n=$((n + 1)); cp "$f" "$here/corpus/$target/q$(sha1sum "$f" | cut -c1-12)"
    done
    rm -rf "$all" "$min"
    echo "$target: $n minimised queue entries added to fuzz/corpus/$target"
    ;;
  replay)
    target="${2:-}"; valid "$target"; shift 2
    dotnet run --project "$here/Kmem.Fuzz" -c Release -- "$target" "$@"
    ;;
  ""|-h|--help) usage ;;
  *)
    target="$1"; valid "$target"; seconds="${2:-1200}"
    install_afl
    prog="$(build "$target")"
    findings="$here/findings/$target"; mkdir -p "$here/findings"
    # resume a previous campaign of the same target when there is one
    input="$here/corpus/$target"; [ -d "$findings/default/queue" ] && input="-"
    AFL_NO_UI=1 afl-fuzz -i "$input" -o "$findings" -x "$here/dict/$target.dict" -t "$timeout_ms" -m none \
      -V "$seconds" -- "$prog" "$target"
    stats="$findings/default/fuzzer_stats"
    grep -E '^(execs_done|execs_per_sec|corpus_count|corpus_found|saved_crashes|saved_hangs|run_time)' "$stats"
    ;;
esac
