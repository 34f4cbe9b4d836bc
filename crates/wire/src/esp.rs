//! TODO(helper): esp view.
