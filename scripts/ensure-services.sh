#!/usr/bin/env bash
# Starts the local Postgres and Redis the tests use, when they are not
# running, and installs the tools the tests drive when they are missing:
# Prometheus (promtool and the server the monitoring tests run) and Chromium
# (the River UI browser test, daemon/riverui_browser_test.go).
set -euo pipefail

if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  echo "ensure-services: installing Prometheus (Debian's prometheus package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends prometheus >/dev/null ||
    { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends prometheus >/dev/null; } ||
    { echo "ensure-services: could not install prometheus (apt-get install prometheus)" >&2; exit 1; }
fi

if ! command -v chromium >/dev/null; then
  echo "ensure-services: installing Chromium (Debian's chromium package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium >/dev/null ||
    { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; } ||
    { echo "ensure-services: could not install chromium (apt-get install chromium)" >&2; exit 1; }
fi

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
if ! pg_up; then
  echo "ensure-services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  for _ in $(seq 1 60); do pg_up && break; sleep 0.5; done
  pg_up || { echo "ensure-services: PostgreSQL did not start" >&2; exit 1; }
fi

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
if command -v redis-server >/dev/null && ! redis_up; then
  echo "ensure-services: starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 1 40); do redis_up && break; sleep 0.25; done
fi
exit 0
