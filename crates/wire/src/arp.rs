//! TODO(helper): arp view.
