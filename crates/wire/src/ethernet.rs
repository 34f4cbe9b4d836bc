//! TODO(helper): ethernet view.
