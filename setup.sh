#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for vmrun: Debian packages, npm packages (which build the
# KVM addon and the TypeScript), the guest kernel, the probe and agent initramfs images and passt
# (cached outside the repository), and the nested-KVM rig for hosts without hardware KVM. Safe to
# run again.
set -euo pipefail
cd "$(dirname "$0")"

packages=(
  build-essential python3                          # the addon (node-gyp)
  linux-source-6.1 flex bison bc lz4 libelf-dev libssl-dev xz-utils  # the guest kernel
  busybox-static cpio file                         # the probe initramfs
  pkg-config libarchive-dev libzstd-dev zlib1g-dev nettle-dev libacl1-dev liblz4-dev
  libxml2-dev libbz2-dev liblzma-dev libicu-dev    # the static guest agent (libarchive and what it links)
  e2fsprogs                                        # mkfs.ext4 for image disks
  libpython3.11-testsuite                          # Python's own tests: the compatibility suite
  umoci skopeo zstd                                # test images (OCI layouts) and their layers
  docker-registry openssl                          # a real registry on loopback for the pull tests
  runc                                             # the container runtime
  containerd                                       # the containerd shim's tests (ctr, containerd 1.6)
  passt util-linux curl                            # each run's network (passt, pasta; nsenter; passt's source)
  qemu-system-common                               # virtiofsd: host directories in a VM (-v)
  qemu-system-x86 iproute2                         # the nested-KVM rig and the QEMU peer in bench/
  clang libclang-rt-14-dev                         # the fuzz targets (libFuzzer, ASan, UBSan)
)
missing=()
for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] && sudo= || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

npm ci --no-audit --no-fund
bash images/kernel/build.sh >/dev/null
bash images/probe/build.sh >/dev/null
bash images/agent/build.sh >/dev/null
bash images/passt/build.sh >/dev/null              # a passt newer than Debian 12's (README: the network)
# The rig is needed only where KVM cannot run a standard guest; preparing it is cheap and cached.
bash test/rig/setup.sh >/dev/null
echo "vmrun is set up. Python in a VM and in a container: npm run bench:python; tests: npm test"
