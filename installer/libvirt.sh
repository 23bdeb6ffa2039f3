#!/usr/bin/env bash
# Make libvirt's QEMU driver answer on qemu:///system:   sudo installer/libvirt.sh
#
# Idempotent: a second run changes nothing and says so. It
#   1. sets qemu.conf so QEMU runs as root:root (Nube's data dir is 0700 root, which libvirt-qemu
#      cannot traverse; there is no SELinux/AppArmor here and DAC relabelling stays on);
#   2. makes sure libvirt's `default` network does not autostart (it would NAT to the outside);
#      it never starts, defines or otherwise touches networks;
#   3. starts virtlogd and libvirtd: with systemctl where systemd is PID 1, else by hand
#      (`virtlogd -d`, `libvirtd -d`), restarting libvirtd when step 1 changed its config;
#   4. waits until `virsh -c qemu:///system version` answers (NUBE_LIBVIRT_TIMEOUT, default 30 s).
#
# Needs the Debian packages qemu-system-x86 and libvirt-daemon-system.
set -euo pipefail

QEMU_CONF=${NUBE_LIBVIRT_QEMU_CONF:-/etc/libvirt/qemu.conf}
AUTOSTART_DEFAULT_NET=/etc/libvirt/qemu/networks/autostart/default.xml
TIMEOUT=${NUBE_LIBVIRT_TIMEOUT:-30}
URI=qemu:///system
MARK="# Nube (installer/libvirt.sh): QEMU runs as root so it can open files under Nube's 0700 data dir."

say() { printf 'libvirt.sh: %s\n' "$*"; }
die() {
    printf 'libvirt.sh: error: %s\n' "$*" >&2
    exit 1
}

[[ $(id -u) == 0 ]] || die "must run as root"
for tool in libvirtd virtlogd virsh; do
    command -v "$tool" >/dev/null ||
        PATH=$PATH:/usr/sbin:/sbin command -v "$tool" >/dev/null ||
        die "missing $tool: apt-get install libvirt-daemon-system qemu-system-x86"
done
export PATH=$PATH:/usr/sbin:/sbin
[[ $TIMEOUT =~ ^[0-9]+$ ]] || die "NUBE_LIBVIRT_TIMEOUT must be a number of seconds"

# --- 1. qemu.conf ----------------------------------------------------------------------------------
CONF_CHANGED=0
conf_value() { # the effective (last uncommented) value of a key in qemu.conf, without quotes
    sed -n -E "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\"?([^\"]*)\"?[[:space:]]*$/\1/p" \
        "$QEMU_CONF" | tail -n 1
}
[[ -f $QEMU_CONF ]] || die "$QEMU_CONF is missing (is libvirt-daemon-system installed?)"
if [[ $(conf_value user) == root && $(conf_value group) == root ]]; then
    say "qemu.conf: QEMU already runs as root:root"
else
    # Comment out any other user/group setting, then append ours once.
    sed -i -E 's/^([[:space:]]*(user|group)[[:space:]]*=)/#\1/' "$QEMU_CONF"
    printf '\n%s\nuser = "root"\ngroup = "root"\n' "$MARK" >>"$QEMU_CONF"
    CONF_CHANGED=1
    say "qemu.conf: set user = \"root\", group = \"root\""
fi

# --- 2. the default network never autostarts ---------------------------------------------------------
if [[ -e $AUTOSTART_DEFAULT_NET || -L $AUTOSTART_DEFAULT_NET ]]; then
    rm -f -- "$AUTOSTART_DEFAULT_NET"
    say "default network: autostart disabled (it would NAT to the outside)"
fi

# --- 3. daemons --------------------------------------------------------------------------------------
# Running and not a zombie: PID 1 here may reap orphans lazily, so a stopped daemon lingers as Z.
proc_alive() {
    local stat
    stat=$(cat -- "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != [ZX] ]]
}

daemon_pid() { # daemon_pid NAME: the live pid from /run/NAME.pid, if that process is NAME
    local pid
    [[ -r /run/$1.pid ]] || return 1
    pid=$(<"/run/$1.pid")
    pid=${pid//[^0-9]/}
    [[ -n $pid ]] && proc_alive "$pid" || return 1
    [[ $(cat -- "/proc/$pid/comm" 2>/dev/null) == "$1" ]] || return 1
    printf '%s\n' "$pid"
}

stop_daemon() { # stop_daemon NAME: TERM, wait up to 15 s until it is gone or a zombie
    local pid i
    pid=$(daemon_pid "$1") || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        proc_alive "$pid" || return 0
        sleep 0.1
    done
    die "$1 (pid $pid) did not stop after SIGTERM"
}

start_daemon() { # start_daemon NAME: `NAME -d` unless it runs already
    local pid i
    if pid=$(daemon_pid "$1"); then
        say "$1: already running (pid $pid)"
        return
    fi
    "$1" -d || die "$1 -d failed"
    for ((i = 0; i < 100; i++)); do
        if pid=$(daemon_pid "$1"); then
            say "$1: started (pid $pid)"
            return
        fi
        sleep 0.1
    done
    die "$1 -d wrote no live /run/$1.pid"
}

if [[ -d /run/systemd/system && $(cat /proc/1/comm 2>/dev/null) == systemd ]]; then
    for unit in virtlogd libvirtd; do
        if systemctl is-active --quiet "$unit"; then
            if [[ $unit == libvirtd ]] && ((CONF_CHANGED)); then
                systemctl restart "$unit" || die "systemctl restart $unit failed"
                say "$unit: restarted (qemu.conf changed)"
            else
                say "$unit: already running"
            fi
        else
            systemctl start "$unit" || die "systemctl start $unit failed"
            say "$unit: started (systemd)"
        fi
    done
else
    # libvirtd without virtlogd fails to start domains ("virtlogd-sock: No such file"), so first.
    start_daemon virtlogd
    if ((CONF_CHANGED)) && pid=$(daemon_pid libvirtd); then
        stop_daemon libvirtd
        say "libvirtd: stopped pid $pid to reload qemu.conf (running domains keep running)"
    fi
    start_daemon libvirtd
fi

# --- 4. wait for the QEMU driver ---------------------------------------------------------------------
deadline=$((SECONDS + TIMEOUT))
until virsh -q -c "$URI" version >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
        err=$(virsh -q -c "$URI" version 2>&1 || true)
        die "no answer from $URI after ${TIMEOUT}s: $err"
    fi
    sleep 0.2
done
say "$URI answers ($(virsh -q -c "$URI" version 2>/dev/null | grep -m1 -i 'hypervisor' || echo ok))"
