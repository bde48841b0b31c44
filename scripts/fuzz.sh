#!/usr/bin/env bash
# Runs every fuzz target for FUZZTIME each (the argument, else $FUZZTIME,
# else 60s): `just test` runs it with a few seconds, `just fuzz` longer. `go test -fuzz` takes one
# target of one package per run, so the targets are listed here, one
# "package target" per line: a new fuzz target is one more line.
# FUZZ_PARALLEL sets the fuzzing processes per target (default 1: the
# machine is shared); FUZZ_MINIMIZE the time spent minimizing an input
# (default FUZZTIME, so that a short run stays short). A failing input is
# written under the package's testdata/fuzz/<target>/ and the script stops.
#
#	scripts/fuzz.sh [FUZZTIME]
set -euo pipefail

fuzztime="${1:-${FUZZTIME:-60s}}"
targets=(
	"./observers FuzzParseConfig"
	"./observers FuzzCondition"
	"./observers FuzzTemplate"
)

for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	echo "fuzz: $name in $pkg for $fuzztime"
	go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" -fuzzminimizetime="${FUZZ_MINIMIZE:-$fuzztime}" \
		-parallel="${FUZZ_PARALLEL:-1}" "$pkg"
done
