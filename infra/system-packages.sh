#!/usr/bin/env bash
# The Debian packages the service and its test suite use, installed when missing (as root):
#   nginx-light          the mTLS proxy in front of POST /usage (`billing proxy`, tests/test_mtls.py)
#   libharfbuzz-subset0  HarfBuzz's font subsetter: WeasyPrint writes a PDF in ~1/3 of the time
#   poppler-utils        pdftoppm/pdftotext, to look at invoices as pictures and text in tests
#   chromium             headless browser tests (offline /docs, the portal) via Playwright
#   faketime             runs the suite with the clock at a chosen date (month ends, leap days)
#   redis-sentinel       Redis failover in tests/test_multinode.py
#   fonts-dejavu-core    a font with every glyph the invoices' four languages need
#   python3-venv         venv for the system's Python, which the Makefile prefers (it runs faster
#                        than a pyenv build with a shared libpython); python3-dev its headers
#   wrk                  the C load generator of bench/ingest.py's single events (a Python client
#                        would take the CPU the server is measured on)
set -euo pipefail
PACKAGES=(python3-venv python3-dev nginx-light libharfbuzz-subset0 poppler-utils chromium faketime redis-sentinel fonts-dejavu-core wrk)
missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing system packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "run as root (or install these with sudo apt-get install): ${missing[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
