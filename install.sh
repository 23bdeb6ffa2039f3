#!/usr/bin/env bash
# Install and start Nube on a Debian 12 host:   sudo ./install.sh
#
# Idempotent and resumable: every step first checks what is already there, so a second run changes
# nothing and an interrupted run picks up where it stopped.
#
#   sudo ./install.sh --uninstall           stop the service; remove the venv, the command, the unit
#   sudo ./install.sh --uninstall --purge   ... and the data directory (credentials, database, blobs)
#
# Everything can be overridden from the environment (tests install into temp dirs on free ports):
#   NUBE_PREFIX=/opt/nube  NUBE_BINDIR=/usr/local/bin  NUBE_DATA_DIR=/var/lib/nube
#   NUBE_BIND=0.0.0.0  NUBE_PORT=8080  NUBE_S3_PORT=9000  NUBE_PUBLIC_URL=  NUBE_LOG_LEVEL=
#   NUBE_PUBLIC_CIDR=172.24.4.0/24   the `public` network made at the first start (the host takes
#                            its first address, so floating IPs answer this host; never routed out)
#   NUBE_ADMIN_PASSWORD=     admin password for the first start (else nube generates one)
#   NUBE_SERVICE_NAME=nube   systemd unit name
#   NUBE_SERVICE_MANAGER=auto|systemd|daemon   auto: systemd when it is PID 1, else a plain daemon
#   NUBE_START_TIMEOUT=90    seconds to wait for the API to answer
#   NUBE_SKIP_GUEST_IMAGE=1  do not build and import the nube-tiny guest image
set -Eeuo pipefail

# Debian packages the host needs; later features (qemu, libvirt, dnsmasq, nftables ...) append here.
APT_PACKAGES="python3 python3-venv ca-certificates qemu-utils"
# Compute: QEMU and libvirt, xorriso for config drives, and what pip needs to build libvirt-python.
APT_PACKAGES+=" qemu-system-x86 libvirt-daemon-system libvirt-dev pkg-config gcc python3-dev xorriso"
# Networking: bridges and namespaces (iproute2), DHCP (dnsmasq), security groups later (nftables).
APT_PACKAGES+=" dnsmasq-base nftables iproute2"
# Web console: the in-browser VNC client (noVNC), served from its Debian package.
APT_PACKAGES+=" novnc"

REPO_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
PREFIX=$(realpath -m -- "${NUBE_PREFIX:-/opt/nube}")
BINDIR=$(realpath -m -- "${NUBE_BINDIR:-/usr/local/bin}")
DATA_DIR=$(realpath -m -- "${NUBE_DATA_DIR:-/var/lib/nube}")
BIND=${NUBE_BIND:-0.0.0.0}
PORT=${NUBE_PORT:-8080}
S3_PORT=${NUBE_S3_PORT:-9000}
PUBLIC_URL=${NUBE_PUBLIC_URL:-}
LOG_LEVEL=${NUBE_LOG_LEVEL:-}
PUBLIC_CIDR=${NUBE_PUBLIC_CIDR-}
SERVICE=${NUBE_SERVICE_NAME:-nube}
SERVICE_MANAGER=${NUBE_SERVICE_MANAGER:-auto}
START_TIMEOUT=${NUBE_START_TIMEOUT:-90}

VENV=$PREFIX/venv
SOURCE_STAMP=$PREFIX/source.sha256   # hash of the installed source
SERVICE_STAMP=$PREFIX/service.stamp  # source hash + command line the running service started with
PIDFILE=$DATA_DIR/nube.pid
LOGFILE=$DATA_DIR/nube.log
UNIT=/etc/systemd/system/$SERVICE.service
BOOTSTRAP_ENV=$DATA_DIR/bootstrap.env
DAEMON_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

usage() {
    sed -n '2,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

# ---------------------------------------------------------------------------------------------------
# Output: one line per step; command output goes to a log that is shown only when something fails.

STEPS=9
STEP=0
IN_STEP=0
CHANGED=0
LOG=$(mktemp -t nube-install.XXXXXX)
STAGE=""

step() {
    STEP=$((STEP + 1))
    IN_STEP=1
    printf '[%d/%d] %s ... ' "$STEP" "$STEPS" "$1"
}

done_step() { # done_step <text> [changed]
    printf '%s\n' "$1"
    IN_STEP=0
    if [[ ${2:-} == changed ]]; then CHANGED=1; fi
}

end_step_failed() {
    if ((IN_STEP)); then
        printf 'FAILED\n'
        IN_STEP=0
    fi
}

die() {
    end_step_failed
    printf 'install.sh: %s\n' "$*" >&2
    exit 1
}

on_error() { # an unexpected failure under set -e: say which command
    local rc=$?
    end_step_failed
    printf 'install.sh: line %s: "%s" failed (exit %d)\n' "$1" "$2" "$rc" >&2
}
trap 'on_error "$LINENO" "$BASH_COMMAND"' ERR

on_exit() {
    local rc=$?
    end_step_failed
    if [[ -n $STAGE ]]; then rm -rf -- "$STAGE"; fi
    if ((rc != 0)) && [[ -s $LOG ]]; then
        printf 'install.sh: the output of every command it ran is in %s\n' "$LOG" >&2
    else
        rm -f -- "$LOG"
    fi
}
trap on_exit EXIT

run() { # run a command with its output in the log; on failure show the end of that output
    local before rc=0
    before=$(wc -l <"$LOG")
    printf '+ %s\n' "$*" >>"$LOG"
    "$@" >>"$LOG" 2>&1 || rc=$?
    if ((rc != 0)); then
        end_step_failed
        printf -- '--- %s exited with %d; the end of its output:\n' "$*" "$rc" >&2
        tail -n "+$((before + 2))" -- "$LOG" | tail -n 25 >&2
        printf -- '---\n' >&2
    fi
    return "$rc"
}

# ---------------------------------------------------------------------------------------------------
# Checks

check_host() {
    [[ $(id -u) == 0 ]] || die "must run as root (try: sudo $0)"
    [[ -r /etc/os-release ]] || die "cannot read /etc/os-release; Nube installs on Debian 12"
    local id version like
    # shellcheck source=/dev/null
    id=$(. /etc/os-release && printf '%s' "${ID:-}")
    # shellcheck source=/dev/null
    like=$(. /etc/os-release && printf '%s' "${ID_LIKE:-}")
    # shellcheck source=/dev/null
    version=$(. /etc/os-release && printf '%s' "${VERSION_ID:-}")
    if [[ $id != debian && " $like " != *" debian "* ]]; then
        die "this is '$id', not Debian; Nube installs on Debian 12"
    fi
    if [[ $id != debian || $version != 12 ]]; then
        printf 'install.sh: warning: made for Debian 12, this is %s %s\n' "$id" "$version" >&2
    fi
    local tool
    for tool in dpkg-query apt-get start-stop-daemon realpath sha256sum; do
        command -v "$tool" >/dev/null || die "missing $tool (is this Debian?)"
    done
    [[ $PORT =~ ^[0-9]+$ && $S3_PORT =~ ^[0-9]+$ ]] || die "NUBE_PORT and NUBE_S3_PORT must be numbers"
    [[ $START_TIMEOUT =~ ^[0-9]+$ ]] || die "NUBE_START_TIMEOUT must be a number of seconds"
    local path
    for path in "$PREFIX" "$BINDIR" "$DATA_DIR" "$BIND"; do
        [[ $path != *[[:space:]]* ]] || die "paths and addresses must not contain spaces: '$path'"
    done
    [[ $DATA_DIR != / && $PREFIX != / ]] || die "refusing to use / as the prefix or data directory"
}

use_systemd() {
    case $SERVICE_MANAGER in
    systemd) return 0 ;;
    daemon) return 1 ;;
    auto) [[ -d /run/systemd/system && $(cat /proc/1/comm 2>/dev/null) == systemd ]] ;;
    *) die "NUBE_SERVICE_MANAGER must be auto, systemd or daemon, not '$SERVICE_MANAGER'" ;;
    esac
}

# ---------------------------------------------------------------------------------------------------
# Steps

install_packages() {
    step "system packages"
    local pkg missing=()
    for pkg in $APT_PACKAGES; do
        # shellcheck disable=SC2016  # ${db:Status-Status} is dpkg-query's format, not a shell expansion
        if [[ $(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null) != installed ]]; then
            missing+=("$pkg")
        fi
    done
    if ((${#missing[@]} == 0)); then
        done_step "already present"
        return
    fi
    export DEBIAN_FRONTEND=noninteractive
    run apt-get update -q || die "apt-get update failed"
    run apt-get install -y -q --no-install-recommends "${missing[@]}" ||
        die "apt-get install ${missing[*]} failed"
    done_step "installed ${missing[*]}" changed
}

create_venv() {
    step "python venv ($VENV)"
    if [[ -x $VENV/bin/python ]] && "$VENV/bin/python" -c 'import pip' >/dev/null 2>&1; then
        done_step "already present"
        return
    fi
    # Missing or half-made (an interrupted run): start it over, and with it the package.
    rm -rf -- "$VENV" "$SOURCE_STAMP"
    mkdir -p -- "$PREFIX"
    run /usr/bin/python3 -m venv "$VENV" || die "could not create the venv (is python3-venv installed?)"
    done_step "created" changed
}

# Copy what makes the package into a private directory, so the hash and the install see the same
# files even if the checkout changes meanwhile (and pip's build never writes into the checkout).
stage_source() {
    STAGE=$(mktemp -d -t nube-src.XXXXXX)
    local item items=()
    for item in pyproject.toml README.md LICENSE appliance tui; do
        if [[ -e $REPO_DIR/$item ]]; then items+=("$item"); fi
    done
    tar -C "$REPO_DIR" --exclude=__pycache__ --exclude='*.pyc' -cf - "${items[@]}" | tar -C "$STAGE" -xf -
}

# The README is package metadata only; editing it should not reinstall and restart the service.
source_hash() {
    (
        cd -- "$STAGE"
        local roots=(pyproject.toml appliance)
        if [[ -d tui ]]; then roots+=(tui); fi
        find "${roots[@]}" -type f -print0 |
            LC_ALL=C sort -z | xargs -0 sha256sum
    ) | sha256sum | cut -d' ' -f1
}

install_nube() {
    step "nube package"
    [[ -f $REPO_DIR/pyproject.toml && -d $REPO_DIR/appliance ]] ||
        die "$REPO_DIR does not look like a Nube checkout"
    stage_source
    local hash
    hash=$(source_hash)
    if [[ -x $VENV/bin/nube && -f $SOURCE_STAMP && $(<"$SOURCE_STAMP") == "$hash" ]]; then
        done_step "already present (${hash:0:12})"
        return
    fi
    run "$VENV/bin/pip" install --disable-pip-version-check --no-input --no-warn-script-location \
        "$STAGE" || die "pip install failed"
    [[ -x $VENV/bin/nube ]] || die "pip installed no nube command into $VENV/bin"
    printf '%s\n' "$hash" >"$SOURCE_STAMP"
    done_step "installed (${hash:0:12})" changed
}

link_command() {
    step "nube command ($BINDIR/nube)"
    local link=$BINDIR/nube
    if [[ -L $link && $(readlink -- "$link") == "$VENV/bin/nube" ]]; then
        done_step "already present"
        return
    fi
    if [[ -e $link && ! -L $link ]]; then
        die "$link exists and is not a symlink; move it away and run again"
    fi
    mkdir -p -- "$BINDIR"
    ln -sfn -- "$VENV/bin/nube" "$link"
    done_step "linked to $VENV/bin/nube" changed
}

make_data_dir() {
    step "data directory ($DATA_DIR)"
    if [[ -d $DATA_DIR && $(stat -c %a -- "$DATA_DIR") == 700 ]]; then
        done_step "already present"
        return
    fi
    if [[ -d $DATA_DIR ]]; then
        chmod 0700 -- "$DATA_DIR"
        done_step "mode set to 0700" changed
        return
    fi
    mkdir -p -- "$DATA_DIR"
    chmod 0700 -- "$DATA_DIR"
    done_step "created" changed
}

# libvirtd and virtlogd (systemd where it is PID 1, else by hand); QEMU set to run as root.
start_libvirt() {
    step "libvirt daemons (installer/libvirt.sh)"
    local before
    before=$(wc -l <"$LOG")
    run "$REPO_DIR/installer/libvirt.sh" || die "could not start libvirt"
    if tail -n "+$((before + 1))" -- "$LOG" | grep -qE ': (set|started|restarted|stopped|default network)'; then
        done_step "started" changed
    else
        done_step "already running"
    fi
}

# ---------------------------------------------------------------------------------------------------
# The service: a systemd unit where systemd is PID 1, else a daemon with a pidfile.

serve_args() {
    SERVE_ARGS=(serve --data-dir "$DATA_DIR" --bind "$BIND" --port "$PORT" --s3-port "$S3_PORT")
    if [[ -n $PUBLIC_URL ]]; then SERVE_ARGS+=(--public-url "$PUBLIC_URL"); fi
    if [[ -n $LOG_LEVEL ]]; then SERVE_ARGS+=(--log-level "$LOG_LEVEL"); fi
    if [[ -n ${NUBE_PUBLIC_CIDR+set} ]]; then SERVE_ARGS+=(--public-cidr "$PUBLIC_CIDR"); fi
}

# Running and not a zombie: PID 1 here reaps orphans lazily, so a stopped daemon can linger as Z.
proc_alive() {
    local stat
    stat=$(cat -- "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != [ZX] ]]
}

# The pid in the pidfile, if that process lives. Right after start-stop-daemon returns, the pidfile
# may not be written yet (its grandchild writes it) and the process may not have exec'd nube yet.
pidfile_pid() {
    local pid
    [[ -r $PIDFILE ]] || return 1
    pid=$(<"$PIDFILE")
    pid=${pid//[^0-9]/}
    [[ -n $pid ]] && proc_alive "$pid" || return 1
    printf '%s\n' "$pid"
}

daemon_pid() { # print the pid of our running daemon, or fail
    local pid cmdline
    pid=$(pidfile_pid) || return 1
    cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
    [[ $cmdline == *"$VENV/bin/nube serve --data-dir $DATA_DIR "* ]] || return 1
    printf '%s\n' "$pid"
}

stop_daemon() { # stop our daemon if it runs; succeed when it is gone
    local pid i
    if pid=$(daemon_pid); then
        kill -TERM "$pid" 2>/dev/null || true
        # nube serve drains requests for up to 15 s on SIGTERM.
        for ((i = 0; i < 300; i++)); do
            proc_alive "$pid" || break
            sleep 0.1
        done
        if proc_alive "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do
                proc_alive "$pid" || break
                sleep 0.1
            done
        fi
        proc_alive "$pid" && return 1
    fi
    rm -f -- "$PIDFILE"
}

# in_clean_env NAME=value... -- command...: run the command with only that environment, as systemd
# would (nube reads NUBE_* variables as settings; the caller's must not leak into the service).
in_clean_env() (
    local name
    while IFS= read -r name; do unset "$name" 2>/dev/null || true; done < <(compgen -e)
    while [[ $1 != -- ]]; do
        export "${1?}"
        shift
    done
    shift
    exec "$@"
)

start_daemon() {
    rm -f -- "$PIDFILE"
    if [[ -f $LOGFILE ]]; then mv -f -- "$LOGFILE" "$LOGFILE.1"; fi
    local -a cmd=(start-stop-daemon --start --quiet --background --make-pidfile --pidfile "$PIDFILE"
        --output "$LOGFILE" --chdir "$DATA_DIR" --umask 077
        --startas "$VENV/bin/nube" -- "${SERVE_ARGS[@]}")
    local -a env_vars=("PATH=$DAEMON_PATH" LANG=C.UTF-8 HOME=/root)
    # The password goes to the first start only, through the environment (never argv, which ps shows).
    if [[ ! -e $DATA_DIR/nube.db && -n ${NUBE_ADMIN_PASSWORD:-} ]]; then
        env_vars+=("NUBE_ADMIN_PASSWORD=$NUBE_ADMIN_PASSWORD")
    fi
    # Not through run(): its log line would show the password.
    printf '+ %s\n' "${cmd[*]}" >>"$LOG"
    in_clean_env "${env_vars[@]}" -- "${cmd[@]}" >>"$LOG" 2>&1 ||
        die "start-stop-daemon could not start $VENV/bin/nube"
}

unit_text() {
    cat <<EOF
# Written by Nube's install.sh, which overwrites changes to it on its next run.
[Unit]
Description=Nube private cloud (OpenStack and S3 APIs)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart=$VENV/bin/nube ${SERVE_ARGS[*]//%/%%}
EnvironmentFile=-$BOOTSTRAP_ENV
WorkingDirectory=$DATA_DIR
UMask=0077
Restart=on-failure
RestartSec=3
TimeoutStopSec=30

[Install]
WantedBy=multi-user.target
EOF
}

api_host() {
    case $BIND in
    0.0.0.0 | "") printf '127.0.0.1' ;;
    :: | "[::]") printf '::1' ;;
    *) printf '%s' "${BIND#[}" | tr -d ']' ;;
    esac
}

# api_answers PID: GET /identity answers 300, and from PID's own socket, not from whatever else
# happens to listen on the port (another nube, say, whose port our new one then failed to bind).
api_answers() {
    "$VENV/bin/python" - "$(api_host)" "$PORT" "$1" <<'EOF' >/dev/null 2>&1
import http.client
import os
import sys

host, port, pid = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def listening_inodes():
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                yield fields[9]


def owns_listener():
    wanted = {f"socket:[{inode}]" for inode in listening_inodes()}
    fds = f"/proc/{pid}/fd"
    for fd in os.listdir(fds):
        try:
            if os.readlink(f"{fds}/{fd}") in wanted:
                return True
        except OSError:
            pass
    return False


try:
    conn = http.client.HTTPConnection(host, port, timeout=3)
    conn.request("GET", "/identity")
    ok = conn.getresponse().status == 300
    sys.exit(0 if ok and owns_listener() else 1)
except OSError:
    sys.exit(1)
EOF
}

service_log_tail() {
    if use_systemd; then
        journalctl -u "$SERVICE" -n 25 --no-pager 2>&1 || true
    elif [[ -f $LOGFILE ]]; then
        tail -n 25 -- "$LOGFILE"
    fi
}

service_pid() {
    if use_systemd; then
        local pid
        pid=$(systemctl show -p MainPID --value "$SERVICE" 2>/dev/null) || return 1
        [[ -n $pid && $pid != 0 ]] && proc_alive "$pid" && printf '%s\n' "$pid"
    else
        daemon_pid
    fi
}

wait_for_api() {
    local started=$SECONDS deadline=$((SECONDS + START_TIMEOUT)) pid
    while true; do
        if pid=$(service_pid); then
            if api_answers "$pid"; then return 0; fi
        elif use_systemd; then
            if systemctl is-failed --quiet "$SERVICE"; then
                die "$SERVICE.service failed; its log:"$'\n'"$(service_log_tail)"
            fi
        elif [[ -e $PIDFILE ]]; then
            pidfile_pid >/dev/null ||
                die "nube serve exited; the end of $LOGFILE:"$'\n'"$(service_log_tail)"
        elif ((SECONDS >= started + 10)); then
            die "start-stop-daemon wrote no $PIDFILE; the end of $LOGFILE:"$'\n'"$(service_log_tail)"
        fi
        if ((SECONDS >= deadline)); then
            die "no answer from http://$(api_host):$PORT/identity after ${START_TIMEOUT}s; log:"$'\n'"$(service_log_tail)"
        fi
        sleep 0.5
    done
}

start_service() {
    serve_args
    local want how
    want="$(<"$SOURCE_STAMP") ${SERVE_ARGS[*]}"
    local stamp_ok=0
    if [[ -f $SERVICE_STAMP && $(<"$SERVICE_STAMP") == "$want" ]]; then stamp_ok=1; fi
    local first_start=0
    if [[ ! -e $DATA_DIR/nube.db ]]; then first_start=1; fi

    if use_systemd; then
        step "service ($SERVICE.service)"
        if ((first_start)) && [[ -n ${NUBE_ADMIN_PASSWORD:-} ]]; then
            # systemd's EnvironmentFile= syntax: in double quotes, \ " ` $ are escaped with a backslash.
            local quoted=$NUBE_ADMIN_PASSWORD
            quoted=${quoted//\\/\\\\}
            quoted=${quoted//\"/\\\"}
            quoted=${quoted//\`/\\\`}
            quoted=${quoted//\$/\\\$}
            (umask 077 && printf 'NUBE_ADMIN_PASSWORD="%s"\n' "$quoted" >"$BOOTSTRAP_ENV")
        fi
        local text
        text=$(unit_text)
        if [[ ! -f $UNIT || $(<"$UNIT") != "$text" ]]; then
            printf '%s\n' "$text" >"$UNIT"
            run systemctl daemon-reload || die "systemctl daemon-reload failed"
            CHANGED=1
        fi
        if ! systemctl is-enabled --quiet "$SERVICE" 2>/dev/null; then
            run systemctl enable "$SERVICE" || die "systemctl enable $SERVICE failed"
            CHANGED=1
        fi
        if systemctl is-active --quiet "$SERVICE"; then
            if ((stamp_ok)); then
                how="already running"
            else
                run systemctl restart "$SERVICE" || die "systemctl restart $SERVICE failed"
                how="restarted, code or settings changed"
            fi
        else
            run systemctl start "$SERVICE" || die "systemctl start $SERVICE failed"
            how="started"
        fi
        wait_for_api
        rm -f -- "$BOOTSTRAP_ENV"
    else
        step "service (daemon, pidfile $PIDFILE)"
        local pid
        if pid=$(daemon_pid) && ((stamp_ok)); then
            how="already running"
        elif [[ -n ${pid:-} ]]; then
            stop_daemon || die "nube serve (pid $pid) did not stop"
            start_daemon
            how="restarted, code or settings changed"
        else
            start_daemon
            how="started"
        fi
        wait_for_api
        how="$how (pid $(daemon_pid))"
    fi
    if ((!stamp_ok)); then printf '%s\n' "$want" >"$SERVICE_STAMP"; fi
    done_step "$how" "$([[ $how == already* ]] || echo changed)"
}

build_guest_image() {
    step "guest image nube-tiny (images/build-nube-tiny.sh)"
    if [[ ${NUBE_SKIP_GUEST_IMAGE:-0} == 1 ]]; then
        done_step "skipped (NUBE_SKIP_GUEST_IMAGE=1)"
        return
    fi
    local before
    before=$(wc -l <"$LOG")
    run "$REPO_DIR/images/build-nube-tiny.sh"
    if tail -n "+$((before + 1))" -- "$LOG" | grep -q "nothing to do"; then
        done_step "already built"
    else
        done_step "built" changed
    fi
}

import_guest_image() {
    step "import nube-tiny as a public image"
    if [[ ${NUBE_SKIP_GUEST_IMAGE:-0} == 1 ]]; then
        done_step "skipped (NUBE_SKIP_GUEST_IMAGE=1)"
        return
    fi
    # Credentials come from the data dir's admin-openrc.sh only, never the caller's OS_* variables.
    local nube=("$VENV/bin/nube" image import-default --data-dir "$DATA_DIR")
    if in_clean_env "PATH=$DAEMON_PATH" -- "${nube[@]}" --check >>"$LOG" 2>&1; then
        done_step "already imported"
        return
    fi
    printf '\n'
    in_clean_env "PATH=$DAEMON_PATH" -- "${nube[@]}" || die "importing nube-tiny failed (see above)"
    done_step "    imported" changed
}

console_host() {
    if [[ $BIND != 0.0.0.0 && -n $BIND ]]; then
        api_host
        return
    fi
    local ip=""
    if command -v ip >/dev/null; then
        ip=$(ip -4 -o addr show scope global 2>/dev/null | awk '{split($4, a, "/"); print a[1]; exit}')
    fi
    if [[ -z $ip ]] && command -v hostname >/dev/null; then
        ip=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -m1 -E '^[0-9]+(\.[0-9]+){3}$' || true)
    fi
    printf '%s' "${ip:-127.0.0.1}"
}

summary() {
    local host
    host=$(console_host)
    [[ $host == *:* ]] && host="[$host]"
    printf '\nNube is running.\n'
    printf '  Console:      http://%s:%s/\n' "$host" "$PORT"
    printf '  Credentials:  %s/admin-openrc.sh and %s/clouds.yaml\n' "$DATA_DIR" "$DATA_DIR"
    if use_systemd; then
        printf '  Logs:         journalctl -u %s\n' "$SERVICE"
    else
        printf '  Logs:         %s\n' "$LOGFILE"
    fi
    if [[ ${NUBE_PUBLIC_CIDR-x} != "" ]]; then
        printf '  Networks:     public %s (floating IPs; this host holds its first address),\n' \
            "${PUBLIC_CIDR:-172.24.4.0/24}"
        printf '                private behind router1, made at the first start\n'
    fi
    printf '  Try:          source %s/admin-openrc.sh && openstack token issue\n' "$DATA_DIR"
    printf '                (the openstack CLI is not installed by this script:\n'
    printf '                 apt-get install python3-openstackclient, or pip install python-openstackclient)\n'
    if ((CHANGED)); then
        printf '\nInstalled or updated.\n'
    else
        printf '\nNothing changed: Nube was already installed and running.\n'
    fi
}

# ---------------------------------------------------------------------------------------------------
# Uninstall

uninstall() {
    local purge=$1
    STEPS=$((purge ? 5 : 4))
    step "stop the service"
    local stopped=0
    if [[ -f $UNIT ]]; then
        if [[ -d /run/systemd/system ]]; then
            run systemctl disable --now "$SERVICE" || die "systemctl disable --now $SERVICE failed"
        fi
        rm -f -- "$UNIT"
        if [[ -d /run/systemd/system ]]; then run systemctl daemon-reload || true; fi
        stopped=1
    fi
    if daemon_pid >/dev/null; then
        stop_daemon || die "nube serve (pid $(<"$PIDFILE")) did not stop"
        stopped=1
    fi
    rm -f -- "$PIDFILE" "$BOOTSTRAP_ENV"
    if ((stopped)); then done_step "stopped" changed; else done_step "not running"; fi

    step "networks in the kernel (nube clear-datapath)"
    if [[ -x $VENV/bin/nube && -f $DATA_DIR/cloud-id ]]; then
        run "$VENV/bin/nube" clear-datapath --data-dir "$DATA_DIR" ||
            die "nube clear-datapath failed"
        done_step "bridges, namespaces, dnsmasq and nft tables removed" changed
    else
        done_step "nothing to remove"
    fi

    step "nube command ($BINDIR/nube)"
    if [[ -L $BINDIR/nube && $(readlink -- "$BINDIR/nube") == "$VENV/bin/nube" ]]; then
        rm -f -- "$BINDIR/nube"
        done_step "removed" changed
    else
        done_step "not present"
    fi

    step "venv ($PREFIX)"
    if [[ -e $VENV || -e $SOURCE_STAMP || -e $SERVICE_STAMP ]]; then
        rm -rf -- "$VENV" "$SOURCE_STAMP" "$SERVICE_STAMP"
        rmdir -- "$PREFIX" 2>/dev/null || true
        done_step "removed" changed
    else
        done_step "not present"
    fi

    if ((purge)); then
        step "data directory ($DATA_DIR)"
        if [[ -d $DATA_DIR ]]; then
            # Something still holding the lock (a nube serve started by hand) is using this data.
            if [[ -f $DATA_DIR/nube.lock ]] && command -v flock >/dev/null &&
                ! flock -n "$DATA_DIR/nube.lock" true; then
                die "a nube process still holds $DATA_DIR/nube.lock (pid $(<"$DATA_DIR/nube.lock")); stop it first"
            fi
            rm -rf -- "$DATA_DIR"
            done_step "removed" changed
        else
            done_step "not present"
        fi
        printf '\nNube is uninstalled, its data removed.\n'
    else
        printf '\nNube is uninstalled; its data stays in %s (remove it with --uninstall --purge).\n' \
            "$DATA_DIR"
    fi
}

# ---------------------------------------------------------------------------------------------------

main() {
    local do_uninstall=0 purge=0 arg
    for arg in "$@"; do
        case $arg in
        --uninstall) do_uninstall=1 ;;
        --purge) purge=1 ;;
        -h | --help)
            usage
            return 0
            ;;
        *)
            usage >&2
            die "unknown argument: $arg"
            ;;
        esac
    done
    if ((purge && !do_uninstall)); then die "--purge goes with --uninstall"; fi
    check_host
    if ((do_uninstall)); then
        uninstall "$purge"
        return
    fi
    install_packages
    create_venv
    install_nube
    link_command
    make_data_dir
    start_libvirt
    start_service
    build_guest_image
    import_guest_image
    summary
}

main "$@"
