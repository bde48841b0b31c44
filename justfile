# fraiseql-observers — every routine task. `just` is on npm as rust-just:
# `npx --yes rust-just <recipe>` runs any of these without installing it.

set shell := ["bash", "-euo", "pipefail", "-c"]

export DATABASE_URL := env_var_or_default("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")

# List the recipes.
default:
    @just --list

# Build the binary into bin/, stamped with the commit when built from a git
# checkout (`--version`; -buildvcs=auto overrides a GOFLAGS that turns it off).
build:
    go build -buildvcs=auto -o bin/fraiseql-observers ./cmd/fraiseql-observers

# Run the whole pipeline end to end on the local Postgres: migrate, a local
# receiver, the observer with examples/observers.yaml, a few changes.
demo: build
    go run ./examples/demo --bin bin/fraiseql-observers --config examples/observers.yaml

# Every test, against the real Postgres (and Redis where used), after lint;
# each fuzz target for 3 seconds (scripts/fuzz.sh).
test: lint
    scripts/ensure-services.sh
    {{just_executable()}} check-monitoring
    go test -race -count=1 -timeout 15m ./...
    scripts/fuzz.sh 3s
    go run ./integration/bench -quick
    CHAOS_DURATION=60s go test -tags chaos -run TestChaos -count=1 -timeout 10m -v ./integration/

# Check the shipped alert rules with Prometheus's own tool (Debian's
# prometheus package; scripts/ensure-services.sh installs it): the rules
# load, and each alert fires, or stays quiet, on its synthetic series.
check-monitoring:
    command -v promtool >/dev/null || scripts/ensure-services.sh
    promtool check rules deploy/prometheus/alerts.yml
    promtool test rules deploy/prometheus/alerts_test.yml

# Chaos suite, 10 minutes: SIGKILLs, leader kill, Postgres restart, Redis cut.
# It restarts the Postgres cluster ($CHAOS_PG_CLUSTER, default "<ver> main"),
# so it never runs beside other tests; see README "Chaos suite".
chaos:
    scripts/ensure-services.sh
    CHAOS_DURATION=10m go test -tags chaos -run TestChaos -count=1 -timeout 30m -v ./integration/

# Every fuzz target (listed in scripts/fuzz.sh) for FUZZTIME each: the
# argument, else $FUZZTIME, else 60s, e.g. `just fuzz 10m`. A failing input
# is written to the package's testdata/fuzz/<target>/: commit it with the fix.
fuzz *fuzztime:
    scripts/fuzz.sh {{fuzztime}}

# Run the observer with a config file (default examples/observers.yaml).
run config="examples/observers.yaml": build
    bin/fraiseql-observers run --config {{config}}

# Create or update the schema in $DATABASE_URL.
migrate: build
    bin/fraiseql-observers migrate

# Regenerate what is generated and committed: sqlc code (sql/dbsqlc, from
# sql/queries and sql/migrations) and the action types' part of
# schema/observers.schema.json (from the registered types).
generate:
    go run github.com/sqlc-dev/sqlc/cmd/sqlc@v1.31.1 generate
    go test ./observers -run TestSchemaActionTypes -count=1 -update

# Fails when gofmt or `go mod tidy` would change anything, on go vet
# (with every build tag in use), and on a file over 600 lines or a function
# over 100 (scripts/codesize).
lint:
    files="$(git ls-files --cached --others --exclude-standard '*.go')"; test -z "$(gofmt -l $files)" || { echo "gofmt would change:"; gofmt -l $files; exit 1; }
    go mod tidy -diff || { echo "go mod tidy would change go.mod/go.sum (above); run it"; exit 1; }
    go vet ./...
    go vet -tags chaos ./integration/
    go vet -tags faultinject ./cmd/fraiseql-observers/
    go run ./scripts/codesize

# Benchmarks: every scenario at full size (see BENCHMARKS.md). Extra flags
# pass through, e.g. `just bench -scenarios throughput -n 20000`.
bench *flags:
    scripts/ensure-services.sh
    go run ./integration/bench {{flags}}

# Every benchmark scenario, small enough to finish in under a minute.
bench-quick:
    scripts/ensure-services.sh
    go run ./integration/bench -quick
