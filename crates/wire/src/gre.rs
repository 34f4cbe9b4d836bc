//! TODO(helper): gre view.
