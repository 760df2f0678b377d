#!/usr/bin/env bash
# Install (or update) the qihe gateway on Raspberry Pi OS / Debian bookworm.
#
#   sudo ./install.sh [--config gateway.yaml] [--wheelhouse DIR] [--dry-run] SOURCE
#
# SOURCE is a wheel (qihe_edge-*.whl) or a source folder (a clone of the repository).
# Safe to run again: each step checks what is there first. docs/deploy.md walks through it.
#
#   user      qihe (system user, groups dialout and gpio, no login, no home)
#   /opt/qihe/venv          the program (a virtual environment)
#   /etc/qihe/gateway.yaml  the config (root:qihe 0750 folder, 0640 file)
#   /var/lib/qihe           state: the outbox and the MQTT session number (qihe 0750)
#   systemd unit, udev rules for the boards, journald limits for the SD card
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PREFIX=/opt/qihe
VENV="$PREFIX/venv"
CONF_DIR=/etc/qihe
CONF="$CONF_DIR/gateway.yaml"
STATE_DIR=/var/lib/qihe
UNIT=qihe-gateway.service
USER_NAME=qihe
# Which os-release to read (the tests point it at other systems').
OS_RELEASE="${QIHE_OS_RELEASE:-/etc/os-release}"

DRY_RUN=0
CONFIG=""
WHEELHOUSE=""
SOURCE=""

say() { printf '%s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

usage() {
    cat <<'EOF'
用法 usage: sudo ./install.sh [--config FILE] [--wheelhouse DIR] [--dry-run] SOURCE
  SOURCE            qihe_edge-*.whl 或源码目录 a wheel or a source folder
  --config FILE     安装为 installed as /etc/qihe/gateway.yaml (the old one is kept as .bak)
  --wheelhouse DIR  离线安装 install offline from the wheels in DIR (pip --no-index)
  --dry-run         只显示步骤 print the steps, change nothing
EOF
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --config) CONFIG="${2:?--config needs a file}"; shift ;;
        --wheelhouse) WHEELHOUSE="${2:?--wheelhouse needs a folder}"; shift ;;
        -h|--help) usage; exit 0 ;;
        -*) usage >&2; die "unknown option $1" ;;
        *) [[ -z "$SOURCE" ]] || die "only one SOURCE, got $SOURCE and $1"; SOURCE="$1" ;;
    esac
    shift
done

# Every change goes through run: printed always, executed unless --dry-run.
run() {
    printf '+'; printf ' %q' "$@"; printf '\n'
    if [[ $DRY_RUN -eq 0 ]]; then
        "$@"
    fi
}

step() { say ""; say "== $* =="; }

# -- checks before anything changes -------------------------------------------------

[[ -r "$OS_RELEASE" ]] || die "找不到 $OS_RELEASE: 只支持 Debian / Raspberry Pi OS (bookworm) — only Debian-based systems are supported"
# shellcheck disable=SC1090
os_id="$(. "$OS_RELEASE" && printf '%s %s' "${ID:-}" "${ID_LIKE:-}")"
case " $os_id " in
    *" debian "*|*" raspbian "*) ;;
    *) die "此系统不是 Debian / Raspberry Pi OS (${os_id% }) — this script supports Debian and Raspberry Pi OS (bookworm) only; see docs/deploy.md to install by hand" ;;
esac

[[ -n "$SOURCE" ]] || { usage >&2; die "缺少 SOURCE missing: a wheel or a source folder"; }
[[ -e "$SOURCE" ]] || die "找不到 not found: $SOURCE"
SOURCE="$(cd "$(dirname "$SOURCE")" && pwd)/$(basename "$SOURCE")"
if [[ -n "$CONFIG" ]]; then
    [[ -r "$CONFIG" ]] || die "找不到配置 config not found: $CONFIG"
fi
for f in "$UNIT" 99-qihe-boards.rules journald-qihe.conf; do
    [[ -r "$HERE/$f" ]] || die "缺少 missing $HERE/$f (copy the whole deploy/pi folder)"
done
if [[ $DRY_RUN -eq 0 && $EUID -ne 0 ]]; then
    die "请用 sudo 运行 run as root: sudo $0 ..."
fi
[[ $DRY_RUN -eq 1 ]] && say "演练 dry run: nothing is changed"

# -- 1. system packages -----------------------------------------------------------

step "1. 系统软件包 system packages"
wanted=(python3-venv python3-pip)
# gpiozero's pin factory on bookworm; from apt, as the venv sees the system's packages.
if apt-cache show python3-lgpio >/dev/null 2>&1; then
    wanted+=(python3-lgpio)
else
    say "注意 note: python3-lgpio is not in the apt sources; GPIO needs it on a Raspberry Pi"
fi
missing=()
for pkg in "${wanted[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done
if [[ ${#missing[@]} -gt 0 ]]; then
    run apt-get install -y --no-install-recommends "${missing[@]}"
else
    say "已安装 installed: ${wanted[*]}"
fi

# -- 2. the user ---------------------------------------------------------------------

step "2. 系统用户 system user $USER_NAME"
if ! getent group gpio >/dev/null; then
    # Raspberry Pi OS has it (and udev gives it /dev/gpiochip*); plain Debian does not.
    run groupadd --system gpio
fi
if id "$USER_NAME" >/dev/null 2>&1; then
    say "已存在 exists: $USER_NAME"
else
    run useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
        --shell /usr/sbin/nologin --comment "qihe gateway" "$USER_NAME"
fi
run usermod --append --groups dialout,gpio "$USER_NAME"

# -- 3. folders ------------------------------------------------------------------------

step "3. 目录 folders"
run install -d -o root -g root -m 0755 "$PREFIX"
run install -d -o root -g "$USER_NAME" -m 0750 "$CONF_DIR"
run install -d -o "$USER_NAME" -g "$USER_NAME" -m 0750 "$STATE_DIR"

# -- 4. the program ----------------------------------------------------------------------

step "4. 程序 the program: $VENV"
if [[ ! -x "$VENV/bin/python" ]]; then
    # --system-site-packages: python3-lgpio comes from apt (it needs the C library).
    run python3 -m venv --system-site-packages "$VENV"
fi
pip_args=(--disable-pip-version-check --quiet)
if [[ -n "$WHEELHOUSE" ]]; then
    pip_args+=(--no-index --find-links "$WHEELHOUSE")
fi
run "$VENV/bin/pip" install "${pip_args[@]}" --upgrade "$SOURCE"
# The same version number again (a rebuilt wheel): replace the package itself too.
run "$VENV/bin/pip" install "${pip_args[@]}" --force-reinstall --no-deps "$SOURCE"

# -- 5. the config ------------------------------------------------------------------------

step "5. 配置 config: $CONF"
if [[ -n "$CONFIG" ]]; then
    if [[ -e "$CONF" ]] && ! cmp -s "$CONFIG" "$CONF"; then
        run cp -p "$CONF" "$CONF.bak-$(date +%Y%m%d-%H%M%S)"
    fi
    run install -o root -g "$USER_NAME" -m 0640 "$CONFIG" "$CONF"
fi
# The generic Modbus register maps (docs/sensors.md) the config may name; a profile already
# there (a site's own, or one edited) is kept.
run install -d -o root -g "$USER_NAME" -m 0750 "$CONF_DIR/modbus"
for profile in "$HERE"/../../config/modbus/*.yaml; do
    target="$CONF_DIR/modbus/$(basename "$profile")"
    [[ -e "$target" ]] || run install -o root -g "$USER_NAME" -m 0640 "$profile" "$target"
done
have_config=0
if [[ -e "$CONF" || ( $DRY_RUN -eq 1 && -n "$CONFIG" ) ]]; then
    have_config=1
    # As the service's user: proves it can read the file, too.
    run runuser -u "$USER_NAME" -- "$VENV/bin/qihe" gateway check --config "$CONF"
else
    say "还没有配置 no config yet: copy one to $CONF (root:$USER_NAME 0640), then"
    say "  sudo systemctl start qihe-gateway"
fi

# -- 6. systemd, udev, journald ----------------------------------------------------------

step "6. 服务 service, udev, journald"
run install -o root -g root -m 0644 "$HERE/$UNIT" "/etc/systemd/system/$UNIT"
if [[ -e /etc/udev/rules.d/99-qihe-boards.rules ]]; then
    say "保留 kept (edited on site): /etc/udev/rules.d/99-qihe-boards.rules"
else
    run install -o root -g root -m 0644 "$HERE/99-qihe-boards.rules" \
        /etc/udev/rules.d/99-qihe-boards.rules
fi
run install -d -m 0755 /etc/systemd/journald.conf.d /var/log/journal
run install -o root -g root -m 0644 "$HERE/journald-qihe.conf" \
    /etc/systemd/journald.conf.d/qihe.conf
run systemctl daemon-reload
run udevadm control --reload
run udevadm trigger --subsystem-match=tty
run systemctl restart systemd-journald
run systemctl enable "$UNIT"
if [[ $have_config -eq 1 ]]; then
    run systemctl restart "$UNIT"
fi

step "完成 done"
say "检查现场 check the site:  sudo systemctl stop qihe-gateway;"
say "  sudo -u $USER_NAME $VENV/bin/qihe gateway doctor --config $CONF;"
say "  sudo systemctl start qihe-gateway"
say "日志 logs:                journalctl -u qihe-gateway -f"
