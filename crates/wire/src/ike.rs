//! TODO(helper): ike view.
