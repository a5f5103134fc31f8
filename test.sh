#!/usr/bin/env bash
# Runs every test of the workspace: unit, codec, model, crash, corruption and
# end-to-end tests with real `ringkv` processes on 127.0.0.1. Bounded in time.
set -euo pipefail
cd "$(dirname "$0")"
cargo test --workspace --locked "$@"
