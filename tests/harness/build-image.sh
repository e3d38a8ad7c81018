#!/usr/bin/env bash
# Build a systemd-as-PID-1 Debian image for the Molecule/lab containers with debootstrap.
# Usage: build-image.sh <suite> <image-ref>
# The tag carries a hash of this file, so an image is rebuilt only when this recipe changes.
set -euo pipefail
suite=$1 image=$2
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
rootfs=$(mktemp -d /var/tmp/monstack-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
# python3 runs Ansible modules; python3-yaml and curl serve the stand-ins and the tests;
# acl lets roles grant log read access without root; openssh-server: the scenarios reach their
# hosts over SSH with pipelining, as Ansible reaches real ones (tests/harness/ssh_hosts.py).
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,dbus,python3,python3-yaml,ca-certificates,curl,iproute2,procps,acl,gnupg,openssh-server \
  "$suite" "$rootfs" "$mirror" >/dev/null
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
# every container makes its own machine-id
: > "$rootfs/etc/machine-id"
# no background apt runs grabbing the dpkg lock mid-converge
for unit in apt-daily.timer apt-daily-upgrade.timer; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
tar -C "$rootfs" -c . | podman import \
  --change 'CMD ["/sbin/init"]' \
  --change 'STOPSIGNAL SIGRTMIN+3' \
  --change 'ENV container=podman' \
  - "$image" >/dev/null
echo "built $image"
