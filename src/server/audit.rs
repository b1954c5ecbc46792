//! What the audit lines of every handler share.

/// Client ids in logs are bounded and escaped (see
/// [`crate::client_id::loggable`]).
pub use crate::client_id::loggable as short;
