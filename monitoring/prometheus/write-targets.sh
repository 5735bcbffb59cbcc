#!/bin/sh
# Writes Prometheus' scrape target for the runner (a file_sd file, see prometheus.yml): the compose
# service on DOCKER_RUNNER_PORT, so the port moves with .env. The monitoring overlay runs this
# before Prometheus starts; RUNNER_HOST and TARGETS_DIR are for running it elsewhere.
set -eu
dir="${TARGETS_DIR:-/prometheus/targets}"
mkdir -p "$dir"
printf '[{"targets": ["%s:%s"]}]\n' "${RUNNER_HOST:-runner}" "${DOCKER_RUNNER_PORT:-7071}" >"$dir/runner.json.tmp"
mv "$dir/runner.json.tmp" "$dir/runner.json"
