//! placeholder: being written (see the storage issue).
