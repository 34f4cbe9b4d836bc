//! TODO(helper): l2tp view.
