#!/usr/bin/env bash
# Builds the book (mdbook from crates.io, pinned; installed when missing) into target/book and
# checks it: the HTTP reference matches openapi.yaml, and every internal link and anchor of the
# built pages resolves. The settings, command-line and tools pages are checked against the code
# by `cargo test` (tests/api/docs.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
MDBOOK_VERSION="0.5.4"
if ! mdbook --version 2>/dev/null | grep -q "v${MDBOOK_VERSION}"; then
  echo "installing mdbook ${MDBOOK_VERSION} (cargo install, once per machine)"
  cargo install --quiet --locked mdbook --version "${MDBOOK_VERSION}"
fi
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check 'PyYAML==6.0.3'
python3 docs/reference.py --check
rm -rf target/book
mkdir -p target
if ! mdbook build docs >target/book.log 2>&1; then
  cat target/book.log; echo "FAIL the book did not build"; exit 1
fi
if grep -E 'WARN|ERROR' target/book.log; then echo "FAIL the book built with warnings"; exit 1; fi
python3 docs/linkcheck.py target/book
echo "book: passed (target/book/index.html)"
