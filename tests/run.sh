#!/usr/bin/env bash
# The one test command (README, CI):   sudo ./tests/run.sh [pytest args...]
#
# Sets up what the tests need, idempotently (Debian packages, the repo's .venv with Nube editable and
# its test extras), then runs ruff (lint and format check) and pytest, passing arguments to pytest.
# Exits non-zero if any of them fails. As root every tier runs; tiers that need root (tests/host)
# say why they skip otherwise.
set -euo pipefail

# Debian packages the test tiers need; later tiers (qemu, libvirt, dnsmasq, chromium ...) append here.
APT_PACKAGES="python3 python3-venv ca-certificates git qemu-utils qemu-system-x86 xorriso openssh-client rclone"
# libvirt (compute): the daemons, and what pip needs to build libvirt-python.
APT_PACKAGES+=" libvirt-daemon-system libvirt-dev pkg-config gcc python3-dev"
# Networking: dnsmasq serves DHCP in each subnet's namespace; busybox (wget) reaches guests from there.
APT_PACKAGES+=" dnsmasq-base nftables iproute2 busybox-static"
# Web console: noVNC (served by the console) and the headless Chromium that Playwright drives.
APT_PACKAGES+=" novnc chromium"

REPO_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
cd -- "$REPO_DIR"
VENV=$REPO_DIR/.venv
CRT_VENV=$REPO_DIR/.venv-crt
STAMP=$VENV/.nube-pyproject.sha256

say() { printf '==> %s\n' "$*"; }

say "system packages"
missing=()
for pkg in $APT_PACKAGES; do
    # shellcheck disable=SC2016  # ${db:Status-Status} is dpkg-query's format, not a shell expansion
    if [[ $(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null) != installed ]]; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]} == 0)); then
    echo "    already present: $APT_PACKAGES"
elif [[ $(id -u) != 0 ]]; then
    echo "tests/run.sh: missing Debian packages: ${missing[*]}; run as root (sudo) to install them" >&2
    exit 1
else
    echo "    installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

say "virtualenv $VENV"
if [[ -x $VENV/bin/python ]] && "$VENV/bin/python" -c 'import pip' >/dev/null 2>&1; then
    echo "    already present"
else
    rm -rf -- "$VENV"
    /usr/bin/python3 -m venv "$VENV"
    echo "    created with /usr/bin/python3"
fi

say "nube (editable) and test dependencies"
hash=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ -f $STAMP && $(<"$STAMP") == "$hash" && -x $VENV/bin/pytest ]]; then
    echo "    up to date with pyproject.toml"
else
    "$VENV/bin/pip" install --disable-pip-version-check --no-input -q -e '.[test]'
    printf '%s\n' "$hash" >"$STAMP"
    echo "    installed"
fi

# A second client configuration: boto3 with awscrt, as the AWS CLI v2 ships it (botocore then signs
# with the CRT and computes CRC32C/CRC64NVME itself). Its own venv, so that .venv keeps testing
# boto3 as a plain `pip install boto3` runs it.
say "boto3 with awscrt ($CRT_VENV)"
boto3_version=$("$VENV/bin/python" -c 'import boto3; print(boto3.__version__)')
if [[ -x $CRT_VENV/bin/python && $(<"$CRT_VENV/.nube-boto3" 2>/dev/null) == "$boto3_version" ]]; then
    echo "    already present (boto3 $boto3_version)"
else
    rm -rf -- "$CRT_VENV"
    /usr/bin/python3 -m venv "$CRT_VENV"
    "$CRT_VENV/bin/pip" install --disable-pip-version-check --no-input -q "boto3[crt]==$boto3_version"
    printf '%s\n' "$boto3_version" >"$CRT_VENV/.nube-boto3"
    echo "    installed boto3[crt] $boto3_version"
fi

say "libvirt daemons (installer/libvirt.sh)"
if [[ $(id -u) == 0 ]]; then
    installer/libvirt.sh | sed 's/^/    /'
else
    echo "    not root: tests/host skip without libvirt"
fi

# The compute, volume and host tiers boot this guest; build it before pytest collects them.
say "guest image nube-tiny (images/build-nube-tiny.sh)"
if [[ $(id -u) == 0 ]]; then
    images/build-nube-tiny.sh 2>&1 | tail -n 2 | sed 's/^/    /'
else
    echo "    not root: tests that boot nube-tiny skip"
fi

failed=()
run_check() { # run_check NAME command...: run it, remember a failure, keep going
    local name=$1
    shift
    say "$name"
    if "$@"; then
        return 0
    fi
    failed+=("$name")
}

run_check "ruff check" "$VENV/bin/ruff" check .
run_check "ruff format --check" "$VENV/bin/ruff" format --check .
run_check "pytest $*" "$VENV/bin/pytest" "$@"

if ((${#failed[@]})); then
    printf '\ntests/run.sh: FAILED: %s\n' "$(IFS=,; printf '%s' "${failed[*]}")" >&2
    exit 1
fi
printf '\ntests/run.sh: all passed\n'
