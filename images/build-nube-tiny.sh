#!/usr/bin/env bash
# Build nube-tiny, Nube's CirrOS-like test guest, from Debian packages only (images/README.md):
#
#   sudo images/build-nube-tiny.sh [--force] [--prune]
#
# Output: ${NUBE_IMAGE_CACHE:-/var/cache/nube/images}/nube-tiny-<inputs hash>/ holding disk.qcow2
# (BIOS-bootable, syslinux on FAT), vmlinux (uncompressed, PVH entry: fast -kernel boot under
# TCG), vmlinuz, initrd.img and manifest.json, plus the symlink nube-tiny -> that directory.
# The inputs hash covers this recipe, the exact Debian package versions and SOURCE_DATE_EPOCH, so
# a rerun with the same inputs does nothing. Nothing is mounted and nothing is fetched but .debs
# (apt-get download, unpacked with dpkg-deb -x); same inputs give byte-identical images.
#   --force  rebuild even if the output for these inputs exists
#   --prune  afterwards delete other nube-tiny-* builds and unused .debs from the cache
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

force=0
prune=0
for arg; do
    case $arg in
    --force) force=1 ;;
    --prune) prune=1 ;;
    -h | --help) usage && exit 0 ;;
    *) usage >&2 && exit 2 ;;
    esac
done
if [[ $(id -u) != 0 ]]; then
    echo "build-nube-tiny.sh: run as root (it installs its build tools with apt-get)" >&2
    exit 1
fi

RECIPE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
CACHE=${NUBE_IMAGE_CACHE:-/var/cache/nube/images}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1704067200} # 2024-01-01: every mtime in the images
export LC_ALL=C TZ=UTC
umask 022

# Direct boot: qemu -kernel vmlinux -initrd initrd.img -append "$KERNEL_CMDLINE". The crypto
# self-tests cost about a second of boot under TCG. tty0 first so that the VGA screen (the VNC
# console) shows the boot too; the last console= (ttyS0) stays /dev/console, the serial protocol.
KERNEL_CMDLINE="console=tty0 console=ttyS0 panic=-1 quiet cryptomgr.notests"
# From the disk the VGA console gets the kernel's messages too; the last console= is /dev/console.
DISK_CMDLINE="console=tty0 console=ttyS0,115200 panic=-1 quiet cryptomgr.notests"
DISK_MIB=32
# Loaded in this order at boot. sr_mod comes before ata_piix so that a config drive on an IDE
# CD-ROM has its block device by the time ata_piix's probe returns.
MODULES=(virtio_pci virtio_blk virtio_net virtio_rng cdrom sr_mod sd_mod ata_piix
    isofs vfat nls_cp437 nls_ascii nls_utf8 evdev button)
# Host tools whose output lands in the image; their versions are part of the inputs hash.
HOST_TOOLS=(syslinux syslinux-common mtools dosfstools fdisk cpio kmod xz-utils gzip qemu-utils)

started=$EPOCHREALTIME
elapsed() { awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
step() { printf '==> [%5ss] %s\n' "$(elapsed)" "$*"; }
die() {
    echo "build-nube-tiny.sh: $*" >&2
    exit 1
}
apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300 "$@"; }

step "host tools"
missing=()
for pkg in "${HOST_TOOLS[@]}"; do
    # shellcheck disable=SC2016  # ${db:Status-Status} is dpkg-query's format, not a shell expansion
    if [[ $(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null) != installed ]]; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]} == 0)); then
    echo "    already present: ${HOST_TOOLS[*]}"
else
    echo "    installing: ${missing[*]}"
    apt_get install -y --no-install-recommends "${missing[@]}" ||
        { apt_get update && apt_get install -y --no-install-recommends "${missing[@]}"; }
fi

mkdir -p "$CACHE/debs"
exec 9>"$CACHE/.lock"
if ! flock -n 9; then
    echo "    waiting for another build in $CACHE"
    flock 9
fi

declare -A version
guest_packages=()
resolve() { # pick the kernel ABI and the exact version of every guest package
    local kernel pkg candidate key saved=$CACHE/resolved.txt
    # apt-cache takes seconds here; its answers change only when the package lists do.
    key=$(stat -c '%n %s %Y' /var/lib/apt/lists/* 2>/dev/null | sha256sum | cut -c1-16)
    if [[ -f $saved && $(head -n1 "$saved") == "key $key" ]]; then
        abi=$(awk '$1 == "abi" { print $2 }' "$saved")
        mapfile -t guest_packages < <(awk '$1 == "package" { print $2 }' "$saved")
        while read -r _ pkg candidate; do version[$pkg]=$candidate; done < <(grep '^package ' "$saved")
        return 0
    fi
    kernel=$(apt-cache depends linux-image-amd64 2>/dev/null |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
    [[ -n $kernel ]] || return 1
    abi=${kernel#linux-image-}
    # dropbear is dynamically linked: its libraries come from these packages' .debs too.
    mapfile -t guest_packages < <(
        printf '%s\n' "$kernel" busybox-static
        apt-cache depends --recurse --important dropbear-bin | grep -v -e '^ ' -e '^<' | sort -u
    )
    while read -r pkg candidate; do
        version[$pkg]=$candidate
    done < <(apt-cache policy "${guest_packages[@]}" |
        awk '/^[^ ]+:$/ { pkg = substr($1, 1, length($1) - 1) } $1 == "Candidate:" { print pkg, $2 }')
    for pkg in "${guest_packages[@]}"; do
        [[ -n ${version[$pkg]:-} && ${version[$pkg]} != "(none)" ]] || return 1
    done
    {
        echo "key $key"
        echo "abi $abi"
        for pkg in "${guest_packages[@]}"; do echo "package $pkg ${version[$pkg]}"; done
    } >"$saved"
}
inputs_hash() {
    local pkg
    {
        (cd "$RECIPE" && find build-nube-tiny.sh nube-tiny -type f -print0 | sort -z | xargs -0 sha256sum)
        for pkg in "${guest_packages[@]}"; do echo "guest $pkg=${version[$pkg]}"; done
        for pkg in "${HOST_TOOLS[@]}"; do echo "host $pkg=$(dpkg-query -W -f='${Version}' "$pkg")"; done
        echo "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH"
    } | sha256sum | cut -c1-16
}
deb_of() { # the cached .deb of a guest package; apt names it with the epoch colon as %3a
    local files=("$CACHE/debs/${1}_${version[$1]//:/%3a}"_*.deb)
    [[ -f ${files[0]} ]] && echo "${files[0]}"
}
download() {
    local pkg specs=()
    for pkg in "${guest_packages[@]}"; do
        deb_of "$pkg" >/dev/null || specs+=("$pkg=${version[$pkg]}")
    done
    if ((${#specs[@]} == 0)); then
        echo "    all ${#guest_packages[@]} .debs already in $CACHE/debs"
        return 0
    fi
    echo "    downloading: ${specs[*]}"
    (cd "$CACHE/debs" && apt-get download -q -o APT::Sandbox::User=root "${specs[@]}")
}

step "resolve Debian packages"
if ! resolve; then
    echo "    no candidate versions known: apt-get update"
    apt_get update
    rm -f "$CACHE/resolved.txt"
    resolve || die "cannot resolve the guest packages (linux-image-amd64, busybox-static, dropbear-bin)"
fi
hash=$(inputs_hash)
echo "    kernel ABI $abi, inputs hash $hash"
out=$CACHE/nube-tiny-$hash

link_and_prune() {
    ln -sfn "nube-tiny-$hash" "$CACHE/.nube-tiny.new"
    mv -Tf "$CACHE/.nube-tiny.new" "$CACHE/nube-tiny"
    if ((prune)); then
        local dir deb keep
        for dir in "$CACHE"/nube-tiny-*/; do
            if [[ ${dir%/} != "$out" ]]; then
                echo "    pruning ${dir%/}"
                rm -rf -- "$dir"
            fi
        done
        keep=$(for pkg in "${guest_packages[@]}"; do deb_of "$pkg" || true; done)
        for deb in "$CACHE"/debs/*.deb; do
            if [[ -e $deb ]] && ! grep -qxF -- "$deb" <<<"$keep"; then
                rm -f -- "$deb"
            fi
        done
    fi
    return 0
}

if [[ -f $out/manifest.json ]] && ((!force)); then
    link_and_prune
    step "nothing to do: $out is up to date (inputs hash $hash)"
    exit 0
fi

# Scratch space in RAM when there is room: the kernel package unpacks to ~400 MB, and writing
# that to disk and deleting it again is most of a cold build's time on a busy machine.
scratch_parent=$CACHE
if (($(df --output=avail -B1M /dev/shm 2>/dev/null | tail -n1 || echo 0) > 2048)); then
    scratch_parent=/dev/shm
fi
work=$(mktemp -d -p "$scratch_parent" nube-tiny-build.XXXXXX)
stage=$(mktemp -d -p "$CACHE" .build-XXXXXX) # becomes $out: same file system, atomic rename
trap 'rm -rf -- "$work" "$stage"' EXIT
chmod 755 "$stage"
kx=$work/kernel   # the kernel package, unpacked
px=$work/packages # every other guest package, unpacked
root=$work/root   # the initramfs tree
mkdir -p "$kx" "$px" "$root"

step "boot loader: syslinux on a FAT file system"
# syslinux --install calls sync(), which waits for every dirty page on the machine: do it while
# this build has written next to nothing. -h: the boot sector finds its files relative to the
# partition's first sector on the disk.
part_start=2048 # sectors: the partition starts at 1 MiB
part_sectors=$(((DISK_MIB - 1) * 2048))
mkfs.fat -C -F 16 -n NUBE-TINY -i 4e756265 --invariant -h "$part_start" \
    "$work/fat.img" $((part_sectors / 2)) >/dev/null
syslinux --install "$work/fat.img"

step "download .debs"
if ! download; then
    echo "    download failed (stale package lists?): apt-get update and resolve again"
    apt_get update
    rm -f "$CACHE/resolved.txt"
    resolve || die "cannot resolve the guest packages after apt-get update"
    hash=$(inputs_hash)
    out=$CACHE/nube-tiny-$hash
    echo "    kernel ABI $abi, inputs hash $hash"
    download
fi

step "unpack .debs"
for pkg in "${guest_packages[@]}"; do
    deb=$(deb_of "$pkg") || die "no .deb for $pkg=${version[$pkg]} in $CACHE/debs"
    if [[ $pkg == linux-image-* ]]; then dpkg-deb -x "$deb" "$kx"; else dpkg-deb -x "$deb" "$px"; fi
done

step "kernel $abi: vmlinuz and vmlinux"
cp "$kx/boot/vmlinuz-$abi" "$stage/vmlinuz"
# A bzImage's payload is the compressed ELF vmlinux: it starts (setup_sects + 1) * 512 +
# payload_offset bytes in and is payload_length long (Documentation/arch/x86/boot.rst).
le() { od -An -t "u$2" -j "$1" -N "$2" "$stage/vmlinuz" | tr -d ' '; }
setup_sects=$(le $((0x1f1)) 1)
((setup_sects)) || setup_sects=4
payload_at=$(((setup_sects + 1) * 512 + $(le $((0x248)) 4)))
dd if="$stage/vmlinuz" of="$work/payload" iflag=skip_bytes,count_bytes bs=1M \
    skip="$payload_at" count="$(le $((0x24c)) 4)" status=none
case $(od -An -tx1 -N6 "$work/payload" | tr -d ' ') in
fd377a585a00) xz -dc --single-stream "$work/payload" >"$stage/vmlinux" ;;
1f8b*) gzip -dc "$work/payload" >"$stage/vmlinux" 2>/dev/null || [[ -s $stage/vmlinux ]] ;;
*) die "vmlinuz-$abi: unknown payload compression (only xz and gzip are handled)" ;;
esac
[[ $(od -An -c -N4 "$stage/vmlinux" | tr -d ' ') == 177ELF ]] || die "extracted vmlinux is not an ELF file"

step "modules (${#MODULES[@]} requested) and depmod"
depmod -b "$kx" "$abi"
moddir=lib/modules/$abi
loaded=()
for module in "${MODULES[@]}"; do
    deps=$(modprobe -d "$kx" -S "$abi" --show-depends "$module") || die "kernel $abi has no module $module"
    while read -r kind path _; do
        if [[ $kind == insmod ]]; then
            install -D -m 644 "$path" "$root${path#"$kx"}"
        fi
    done <<<"$deps"
    if [[ $deps == *insmod* ]]; then
        loaded+=("$module")
    fi
done
cp "$kx/$moddir"/modules.{builtin,builtin.modinfo,order} "$root/$moddir/"
depmod -b "$root" "$abi"
echo "    $(find "$root/$moddir" -name '*.ko' | wc -l) .ko files; builtin: $(
    comm -23 <(printf '%s\n' "${MODULES[@]}" | sort) <(printf '%s\n' "${loaded[@]}" | sort) | xargs echo)"

step "root tree: busybox, dropbear, /etc/nube"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,lib64,dev,proc,sys,run,tmp,mnt,var/log,root}
chmod 1777 "$root/tmp"
chmod 700 "$root/root"
mknod -m 600 "$root/dev/console" c 5 1 # the kernel opens it before /init runs
mknod -m 666 "$root/dev/null" c 1 3
install -m 755 "$px/bin/busybox" "$root/bin/busybox"
while read -r applet; do
    if [[ $applet != */* || $applet == bin/busybox ]]; then
        continue
    fi
    mkdir -p "$root/$(dirname "$applet")"
    ln -s /bin/busybox "$root/$applet"
done < <("$root/bin/busybox" --list-full)
ln -s bin/busybox "$root/init" # the kernel runs /init; busybox sees argv[0] "init"

install -m 755 "$px/usr/sbin/dropbear" "$root/usr/sbin/dropbear"
install -m 755 "$px/usr/bin/dropbearkey" "$root/usr/bin/dropbearkey"
# The package's own loader lists the libraries the binaries need, resolved inside $px only.
libdir=lib/x86_64-linux-gnu
loader=$px/$libdir/ld-linux-x86-64.so.2
for binary in usr/sbin/dropbear usr/bin/dropbearkey; do
    "$loader" --library-path "$px/$libdir:$px/usr/$libdir" --list "$root/$binary"
done | while read -r soname arrow path _; do
    if [[ $arrow != "=>" ]]; then
        continue
    fi
    [[ $path == "$px"/* ]] || die "$soname resolved outside the guest packages: $path"
    install -D -m 755 "$path" "$root/$libdir/${soname##*/}"
done
ln -sfn "../$libdir/ld-linux-x86-64.so.2" "$root/lib64/ld-linux-x86-64.so.2"

cp -R "$RECIPE/nube-tiny/." "$root/"
find "$root/etc" -type f -exec chmod 644 {} +
chmod 755 "$root"/etc/nube/{boot,watch,udhcpc.script} "$root/etc/acpi/PWRF/00000080"
chmod 600 "$root/etc/shadow"
printf '%s\n' "${loaded[@]}" >"$root/etc/nube/modules"
printf 'nube-tiny %s linux %s busybox %s dropbear %s\n' "$hash" "$abi" \
    "${version[busybox-static]}" "${version[dropbear-bin]}" >"$root/etc/nube/release"

step "initrd.img (cpio, gzip)"
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
(cd "$root" && find . -mindepth 1 -print0 | sort -z |
    cpio --quiet --null -o -H newc -R 0:0 --reproducible) | gzip -n >"$stage/initrd.img"

step "disk.qcow2 (${DISK_MIB} MiB: MBR, one FAT partition with syslinux, vmlinuz and initrd.img)"
cat >"$work/syslinux.cfg" <<EOF
SERIAL 0 115200
DEFAULT nube-tiny
PROMPT 0
TIMEOUT 0
LABEL nube-tiny
  KERNEL /vmlinuz
  INITRD /initrd.img
  APPEND $DISK_CMDLINE
EOF
touch -d "@$SOURCE_DATE_EPOCH" "$work/syslinux.cfg" "$stage/vmlinuz" "$stage/initrd.img"
mcopy -m -i "$work/fat.img" "$work/syslinux.cfg" "$stage/vmlinuz" "$stage/initrd.img" ::/
truncate -s "${DISK_MIB}M" "$work/disk.raw"
sfdisk --quiet --no-reread --no-tell-kernel "$work/disk.raw" <<EOF
label: dos
label-id: 0x4e756265
start=$part_start, size=$part_sectors, type=e, bootable
EOF
dd if="$work/fat.img" of="$work/disk.raw" bs=512 seek="$part_start" conv=notrunc status=none
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$work/disk.raw" bs=440 count=1 conv=notrunc status=none
qemu-img convert -f raw -O qcow2 "$work/disk.raw" "$stage/disk.qcow2"

step "manifest.json"
build_seconds=$(elapsed)
{
    printf '{\n  "name": "nube-tiny",\n  "inputs_hash": "%s",\n  "kernel_abi": "%s",\n' "$hash" "$abi"
    printf '  "kernel_cmdline": "%s",\n  "disk_kernel_cmdline": "%s",\n' "$KERNEL_CMDLINE" "$DISK_CMDLINE"
    printf '  "source_date_epoch": %s,\n  "build_seconds": %s,\n' "$SOURCE_DATE_EPOCH" "$build_seconds"
    printf '  "modules": [%s],\n' "$(printf '"%s", ' "${loaded[@]}" | sed 's/, $//')"
    sep=""
    printf '  "packages": {'
    for pkg in "${guest_packages[@]}"; do
        printf '%s\n    "%s": "%s"' "$sep" "$pkg" "${version[$pkg]}"
        sep=,
    done
    printf '\n  },\n  "host_tools": {'
    sep=""
    for pkg in "${HOST_TOOLS[@]}"; do
        printf '%s\n    "%s": "%s"' "$sep" "$pkg" "$(dpkg-query -W -f='${Version}' "$pkg")"
        sep=,
    done
    printf '\n  },\n  "files": {'
    sep=""
    for file in disk.qcow2 vmlinux vmlinuz initrd.img; do
        printf '%s\n    "%s": {"size": %s, "sha256": "%s"}' "$sep" "$file" \
            "$(stat -c %s "$stage/$file")" "$(sha256sum "$stage/$file" | cut -d' ' -f1)"
        sep=,
    done
    printf '\n  }\n}\n'
} >"$stage/manifest.json"

rm -rf -- "$out"
mv -T "$stage" "$out"
link_and_prune
for file in disk.qcow2 vmlinux vmlinuz initrd.img; do
    printf '    %-11s %10s bytes\n' "$file" "$(stat -c %s "$out/$file")"
done
step "built $out in ${build_seconds}s"
