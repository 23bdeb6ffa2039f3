"""Compute: Nova v2.1 compatible flavors, keypairs and servers on real QEMU through libvirt."""
