//! TODO(helper): pptp view.
