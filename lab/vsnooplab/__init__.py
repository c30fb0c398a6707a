"""vSnoop's lab: builds hosts whose VMs share a core, in network namespaces on this
machine, and measures TCP through vsnoopd (vSnoop on or off) and through the Linux bridge."""
