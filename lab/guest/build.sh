#!/usr/bin/env bash
# Builds the vSnoop lab guest: Debian's cloud kernel plus a small busybox initramfs holding the
# virtio-net driver stack, iperf3 and the guest's /init (lab/guest/init.sh).
#
#   lab/guest/build.sh [--force] [--quiet]
#
# Output, in $VSNOOP_GUEST_DIR (default: build/guest/ under the repository):
#   vmlinuz           the kernel
#   initrd.cpio.gz    the initramfs
#   stamp             the cache key the two files were built for
#   manifest          what the initramfs holds
#
# Idempotent: the key is the kernel package and its version, the busybox-static and iperf3
# package versions, and a hash of init.sh, of the tool list below and of this script. When the
# key matches the stamp nothing is done. The kernel .deb is kept in the cache (kernel/), so a
# rebuild after a change to init.sh or to the tool list needs no download.
#
# The kernel is fetched only with `apt-get download` (the metapackage linux-image-cloud-amd64
# names the versioned image package; override with VSNOOP_GUEST_KERNEL_PKG).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${VSNOOP_GUEST_DIR:-$repo/build/guest}
kernel_meta_pkg=${VSNOOP_GUEST_KERNEL_META:-linux-image-cloud-amd64}

force=0
quiet=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    --quiet) quiet=1 ;;
    -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done

say() { ((quiet)) || echo "guest build: $*" >&2; }
die() { echo "guest build: error: $*" >&2; exit 1; }

# ---- What goes into the initramfs (part of the cache key) -------------------------------------
# busybox applets linked into /bin. nc, sha256sum and stat make the checked sink;
# taskset and sysctl are there for experiments run through the console.
busybox_applets=(
  sh ash cttyhack setsid mount umount mkdir mkfifo rm ln ls cat echo printf sleep usleep seq
  test '[' true false kill ps pidof top uptime hostname nproc free df dmesg uname date
  ip ifconfig route ping arp nc sha256sum md5sum stat tee wc cut tr head tail grep awk sed dd
  base64 stty taskset sysctl renice insmod lsmod timeout watch env sync poweroff reboot halt
)
# Dynamically linked host binaries copied with the shared libraries ldd names.
host_binaries=(/usr/bin/iperf3)
# Modules loaded at boot, in dependency order (resolved below from each module's "depends=").
boot_modules=(virtio_pci virtio_net)
# Modules copied but loaded only on demand (init.sh loads tcp_<cc> for vsnoop.cc=<cc>).
optional_modules=(tcp_bbr tcp_dctcp tcp_htcp tcp_vegas tcp_westwood)

# ---- Host requirements ------------------------------------------------------------------------
require_package() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep "install ok installed" >/dev/null ||
    die "Debian package '$1' is not installed (scripts/install-deps.sh installs it)"
}
require_package busybox-static
require_package iperf3
require_package cpio
require_package gzip
command -v apt-get >/dev/null || die "apt-get not found: the kernel comes from Debian's archive"
busybox=/bin/busybox
[[ -x $busybox ]] || die "$busybox missing (package busybox-static)"
# The Debian 'busybox' package ships a dynamic /bin/busybox that conflicts with busybox-static.
if ldd "$busybox" >/dev/null 2>&1; then
  die "$busybox is dynamically linked; install busybox-static instead of busybox"
fi
for b in "${host_binaries[@]}"; do [[ -x $b ]] || die "$b missing"; done

package_version() { dpkg-query -W -f='${Version}' "$1"; }

# ---- Which kernel -----------------------------------------------------------------------------
mkdir -p "$out/kernel"
exec 9>"$out/.build.lock"
flock 9 # two guests started at once must not build over each other

kernel_pkg=""
kernel_version=""
if [[ -n ${VSNOOP_GUEST_KERNEL_PKG:-} ]]; then
  kernel_pkg=$VSNOOP_GUEST_KERNEL_PKG
  kernel_version=$(apt-cache show --no-all-versions "$kernel_pkg" 2>/dev/null |
    awk '/^Version:/ {print $2; exit}') || true
else
  # One apt-cache call (about 1 s): the metapackage depends on "linux-image-X (= VERSION)".
  read -r kernel_pkg kernel_version < <(apt-cache show --no-all-versions "$kernel_meta_pkg" 2>/dev/null |
    sed -n 's/^Depends:.*\(linux-image-[^ ,]*\) (= \([^)]*\)).*/\1 \2/p' | head -n 1) || true
fi
if [[ -z $kernel_pkg || -z $kernel_version ]]; then
  # No package lists (apt-get update never ran, or no network): reuse the cached kernel if any.
  cached=$(ls "$out"/kernel/linux-image-*.deb 2>/dev/null | sort -V | tail -n 1) || true
  [[ -n $cached ]] || die "cannot resolve $kernel_meta_pkg with apt-cache and no kernel is cached in $out/kernel; run 'apt-get update' first"
  base=$(basename "$cached" .deb)
  kernel_pkg=${base%%_*}
  kernel_version=$(dpkg-deb -f "$cached" Version)
  say "apt-cache cannot resolve $kernel_meta_pkg; using the cached $kernel_pkg $kernel_version"
fi
kernel_release=${kernel_pkg#linux-image-}

# ---- Cache key --------------------------------------------------------------------------------
content_hash=$(
  {
    cat "$here/init.sh" "${BASH_SOURCE[0]}"
    printf '%s\n' "${busybox_applets[@]}" -- "${host_binaries[@]}" -- "${boot_modules[@]}" -- \
      "${optional_modules[@]}"
  } | sha256sum | cut -d' ' -f1
)
key="kernel=$kernel_pkg=$kernel_version busybox=$(package_version busybox-static)"
key+=" iperf3=$(package_version iperf3) content=$content_hash"

if ((!force)) && [[ -f $out/stamp && -f $out/vmlinuz && -f $out/initrd.cpio.gz ]] &&
  [[ $(cat "$out/stamp") == "$key" ]]; then
  say "up to date ($out)"
  exit 0
fi

# ---- Fetch and unpack the kernel package ------------------------------------------------------
work=$(mktemp -d "$out/.work.XXXXXX")
chmod 755 "$work" # apt-get download runs as _apt, which must reach download/
trap 'rm -rf "$work"' EXIT

deb=$(ls "$out"/kernel/"${kernel_pkg}"_"${kernel_version/:/%3a}"_*.deb 2>/dev/null | head -n 1) || true
if [[ -z $deb ]]; then
  say "downloading $kernel_pkg $kernel_version with apt-get"
  mkdir "$work/download"
  # apt drops privileges to _apt for downloads; let it write there to avoid the sandbox warning.
  chown _apt "$work/download" 2>/dev/null || true
  (cd "$work/download" && apt-get download -q "$kernel_pkg=$kernel_version") >&2 ||
    die "apt-get download $kernel_pkg=$kernel_version failed (network? try 'apt-get update')"
  rm -f "$out"/kernel/linux-image-*.deb # keep one kernel only
  mv "$work"/download/*.deb "$out/kernel/"
  deb=$(ls "$out"/kernel/"${kernel_pkg}"_*.deb | head -n 1)
fi
say "unpacking $(basename "$deb")"
dpkg -x "$deb" "$work/kpkg"
vmlinuz_src="$work/kpkg/boot/vmlinuz-$kernel_release"
module_tree="$work/kpkg/lib/modules/$kernel_release/kernel"
[[ -f $vmlinuz_src ]] || die "$deb holds no boot/vmlinuz-$kernel_release"
[[ -d $module_tree ]] || die "$deb holds no modules for $kernel_release"

# ---- Assemble the initramfs -------------------------------------------------------------------
root="$work/root"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,etc,lib/modules}
cp "$busybox" "$root/bin/busybox"
declare -A busybox_has=()
for applet in $("$busybox" --list); do busybox_has[$applet]=1; done
for applet in "${busybox_applets[@]}"; do
  [[ -n ${busybox_has[$applet]:-} ]] || die "busybox-static lacks the '$applet' applet"
  ln -sf busybox "$root/bin/$applet"
done

copy_with_libraries() {
  local binary=$1 lib
  cp "$binary" "$root/bin/"
  for lib in $(ldd "$binary" | awk '/=>/ && $3 ~ /^\// {print $3} /^\t\/.*ld-linux/ {print $1}'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}
for b in "${host_binaries[@]}"; do copy_with_libraries "$b"; done

# Module file by name (Debian 6.1 ships plain .ko; later kernels compress them).
module_file() {
  find "$module_tree" \( -name "$1.ko" -o -name "$1.ko.xz" -o -name "$1.ko.zst" \) -print -quit
}
module_depends() {
  local file=$1 plain
  case "$file" in
    *.xz) plain=$(xz -dc "$file" | tr '\0' '\n') ;;
    *.zst) plain=$(zstd -dc "$file" | tr '\0' '\n') ;;
    *) plain=$(tr '\0' '\n' <"$file") ;;
  esac
  grep -a '^depends=' <<<"$plain" | head -n 1 | cut -d= -f2 | tr ',' ' '
}
install_module() {
  local name=$1 file
  file=$(module_file "$name")
  [[ -n $file ]] || die "module $name not found in $kernel_pkg"
  case "$file" in
    *.xz) xz -dc "$file" >"$root/lib/modules/$name.ko" ;;
    *.zst) zstd -dc "$file" >"$root/lib/modules/$name.ko" ;;
    *) cp "$file" "$root/lib/modules/$name.ko" ;;
  esac
}
# Depth-first: every module follows the modules it depends on.
declare -A visited=()
load_order=()
visit_module() {
  local name=$1 dep file
  [[ -n ${visited[$name]:-} ]] && return 0
  visited[$name]=1
  file=$(module_file "$name")
  [[ -n $file ]] || die "module $name not found in $kernel_pkg"
  for dep in $(module_depends "$file"); do visit_module "$dep"; done
  load_order+=("$name")
}
for m in "${boot_modules[@]}"; do visit_module "$m"; done
for m in "${load_order[@]}"; do install_module "$m"; done
printf '%s\n' "${load_order[@]}" >"$root/lib/modules/load-order"
for m in "${optional_modules[@]}"; do
  file=$(module_file "$m")
  [[ -n $file ]] || continue
  [[ -z $(module_depends "$file") ]] || { say "skipping $m: it has dependencies"; continue; }
  install_module "$m"
done

install -m 0755 "$here/init.sh" "$root/init"
echo "root:x:0:0:root:/:/bin/sh" >"$root/etc/passwd"
echo "$kernel_release" >"$root/etc/vsnoop-kernel"

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1) \
  >"$work/initrd.cpio.gz"
cp "$vmlinuz_src" "$work/vmlinuz"
{
  echo "$key"
  echo "boot modules (load order): ${load_order[*]}"
  (cd "$root" && find . -type f -o -type l | LC_ALL=C sort)
} >"$work/manifest"

# Publish atomically: stamp last, so an interrupted build is rebuilt next time.
rm -f "$out/stamp"
mv "$work/vmlinuz" "$out/vmlinuz"
mv "$work/initrd.cpio.gz" "$out/initrd.cpio.gz"
mv "$work/manifest" "$out/manifest"
echo "$key" >"$out/stamp"
say "built $out/vmlinuz ($(du -h "$out/vmlinuz" | cut -f1)) and initrd.cpio.gz ($(du -h "$out/initrd.cpio.gz" | cut -f1)); modules: ${load_order[*]}"
