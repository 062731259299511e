#!/usr/bin/env bash
# Runs every test of Tandem on a fresh machine: installs what the tests need, then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
pkg-config --exists opus 2>/dev/null || need_apt+=(libopus-dev)
if [ -d tests/browser ] && [ ! -x /usr/bin/chromium ]; then need_apt+=(chromium); fi
# Firefox joins a lesson too (tests/browser/firefox.test.mjs), inside a network namespace (iproute2).
if [ -d tests/browser ] && [ ! -x /usr/bin/firefox-esr ]; then need_apt+=(firefox-esr); fi
if [ -d tests/browser ] && ! command -v ip >/dev/null; then need_apt+=(iproute2); fi
# A CJK font, so the Chinese pages are readable in the screenshots the browser tests save.
if [ -d tests/browser ] && ! fc-list 2>/dev/null | grep -qi "wenquanyi\|wqy"; then need_apt+=(fonts-wqy-microhei); fi
# Reaching schools (tests/browser/reach.test.mjs): a TURN server, and a test CA Chromium trusts.
if [ -d tests/browser ] && ! command -v turnserver >/dev/null; then need_apt+=(coturn); fi
if [ -d tests/browser ] && ! command -v certutil >/dev/null; then need_apt+=(libnss3-tools); fi
command -v openssl >/dev/null || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

echo "== Rust: format and lint"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

echo "== Rust: unit, integration and end-to-end tests"
cargo test --workspace --all-targets

if [ -f package.json ] && [ -d web-client/test ]; then
  echo "== Browser client: logic tests (node --test)"
  # Also when node_modules predates a package added to package.json.
  [ -d node_modules/puppeteer-core ] || npm install --no-audit --no-fund --silent
  node --test web-client/test/
  if [ -d tests/browser ]; then
    echo "== Browser end to end (Debian chromium, playwright-core)"
    cargo build --bin tandem
    TANDEM_BIN=target/debug/tandem node --test tests/browser/
  fi
fi
