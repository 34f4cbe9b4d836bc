//! TODO(helper): ah view.
