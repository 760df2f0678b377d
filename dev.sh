#!/usr/bin/env bash
# qihe-edge on a fresh Debian / Raspberry Pi OS machine, as root (or with sudo):
#
#   ./dev.sh demo    install what is missing, then run the local demo (qihe demo)
#   ./dev.sh test    install what is missing, then run the whole test suite
#
# "What is missing": Debian packages (Mosquitto, InfluxDB 1.x, Python venv; for the
# tests also Chromium and a CJK font), the virtual environment in .venv, and this
# project with its test tools.
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(mosquitto influxdb influxdb-client python3-venv)
# The browser tests drive Debian's Chromium (never a downloaded one); without a CJK font
# its screenshots show Chinese as empty boxes. The TLS tests make their CA with openssl; the
# deployment tests check the units with systemd-analyze and the install script with shellcheck.
# The firmware tests build the C board (firmware/) for the host with gcc (libc6-dev is only a
# recommendation of gcc, and this script installs none) and for the STM32F4 with Debian's
# gcc-arm-none-eabi, and run the ARM image in qemu-system-arm. The metrics tests scrape the
# services with Debian's Prometheus and check the sample rules with its promtool.
TEST_APT_PACKAGES=(chromium fonts-wqy-microhei openssl systemd shellcheck
    gcc libc6-dev make gcc-arm-none-eabi qemu-system-arm prometheus)

say() { printf '\033[1m[qihe]\033[0m %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        say "need root to run: $*"; exit 1
    fi
}

install_system_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        say "installing Debian packages: ${missing[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
    # The packages enable system services; the demo and tests run their own copies on
    # free ports, so the system ones are left as the package set them up.
}

pick_python() {
    local candidate
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null \
            && "$candidate" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"; return
        fi
    done
    say "Python 3.11 or newer is required"; exit 1
}

setup_venv() {
    if [ ! -x .venv/bin/python ]; then
        say "creating .venv"
        "$(pick_python)" -m venv .venv
    fi
    local stamp=.venv/.qihe-installed
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        say "installing qihe-edge and its test tools into .venv"
        .venv/bin/python -m pip install -q --upgrade pip
        .venv/bin/python -m pip install -q -e '.[dev]'
        touch "$stamp"
    fi
}

main() {
    local action="${1:-}"
    shift || true
    case "$action" in
        demo)
            install_system_packages "${APT_PACKAGES[@]}"; setup_venv
            exec .venv/bin/qihe demo "$@" ;;
        test)
            install_system_packages "${APT_PACKAGES[@]}" "${TEST_APT_PACKAGES[@]}"; setup_venv
            exec .venv/bin/python -m pytest "$@" ;;
        bench)
            install_system_packages "${APT_PACKAGES[@]}"; setup_venv
            exec .venv/bin/qihe bench "$@" ;;
        setup)
            install_system_packages "${APT_PACKAGES[@]}" "${TEST_APT_PACKAGES[@]}"; setup_venv ;;
        *)
            echo "usage: ./dev.sh demo|test|bench|setup [args...]" >&2; exit 2 ;;
    esac
}

main "$@"
