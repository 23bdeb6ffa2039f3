# shellcheck shell=sh
# Shared by /etc/nube/boot and /etc/nube/watch (sourced, busybox ash). Functions name their
# variables with a leading underscore: sh has no locals, and the callers' names must survive.

NUBE_RUN=/run/nube

to_consoles() { # /dev/console is the serial port; the VGA screen (tty0, the VNC console) gets a copy
    echo "$*" >/dev/console
    if [ -c /dev/tty0 ]; then echo "$*" >/dev/tty0 2>/dev/null || true; fi
}

say() { # the console protocol: one "NUBE-TINY ..." line
    to_consoles "NUBE-TINY $*"
}

log() { # for people: "nube-tiny: [<uptime>] ..."
    read -r _uptime _ </proc/uptime
    to_consoles "nube-tiny: [$_uptime] $*"
}

first_nic() { # the first network device backed by hardware (eth0 on a one-NIC guest)
    for _dev in /sys/class/net/*; do
        [ -e "$_dev/device" ] || continue
        echo "${_dev##*/}"
        return
    done
}

nic_ip() { # nic_ip DEV: its first IPv4 address, without the prefix length
    ip -4 -o addr show dev "$1" | awk '{ sub(/\/.*/, "", $4); print $4; exit }'
}

fetch() { # fetch URL FILE; busybox `wget -T` crashes on this build, so `timeout` bounds it
    rm -f "$2"
    if timeout 5 wget -q -O "$2" "$1" 2>/dev/null && [ -s "$2" ]; then
        return 0
    fi
    rm -f "$2"
    return 1
}

meta_get() { # meta_get PATH: a scalar from meta_data.json, flattened by json.awk
    awk -F '\t' -v k="$1" '$1 == k { sub(/^[^\t]*\t/, ""); print; exit }' "$NUBE_RUN/meta.tsv"
}

block_state() { # one line per whole disk: "vdb size=<512-byte sectors> serial=<serial>"
    for _dev in /sys/block/*; do
        [ -e "$_dev" ] || continue
        _name=${_dev##*/}
        case $_name in loop* | ram* | zram* | nbd*) continue ;; esac
        _size=0
        _serial=
        read -r _size <"$_dev/size"
        [ -r "$_dev/serial" ] && read -r _serial <"$_dev/serial"
        echo "$_name size=$_size serial=$_serial"
    done
}

ip_state() { # one line per IPv4 address: "eth0 10.0.0.5"
    ip -4 -o addr show | awk '$2 != "lo" { sub(/\/.*/, "", $4); print $2, $4 }'
}

report() { # report KIND OLD NEW: a "NUBE-TINY KIND -/+ ..." line per line that went or came
    awk -v kind="$1" '
        FILENAME == ARGV[1] { old[$0] = 1; next }
        { new[$0] = 1; order[++n] = $0 }
        END {
            for (line in old)
                if (!(line in new)) {
                    if (kind == "BLOCK") sub(/ .*/, "", line)
                    print "NUBE-TINY " kind " - " line
                }
            for (i = 1; i <= n; i++)
                if (!(order[i] in old)) print "NUBE-TINY " kind " + " order[i]
        }' "$2" "$3" >/dev/console
}
