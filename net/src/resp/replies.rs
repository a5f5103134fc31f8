//! Canned replies the server needs beyond argument errors: Redis 7's exact
//! error lines for conditions found while executing a command, ringkv's own
//! lines for its limits, and the HELLO reply. Checked against a real Redis
//! 7.0 where Redis has the same condition.

use super::reply::{Reply, RespVersion};
use crate::limits::{KEY_SIZE_MAX, VALUE_SIZE_MAX};

/// SELECT of a database other than 0 (ringkv has one, like a Redis with
/// `databases 1`).
pub const ERR_DB_INDEX: &str = "ERR DB index is out of range";

/// A command other than AUTH, HELLO or QUIT before authenticating, when
/// authentication is configured.
pub const ERR_NOAUTH: &str = "NOAUTH Authentication required.";

/// AUTH or HELLO AUTH with a wrong user or password.
pub const ERR_WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// AUTH with only a password when no password is configured.
pub const ERR_AUTH_NOT_CONFIGURED: &str = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";

/// INCR/DECR family on a value that is not a 64-bit integer.
pub const ERR_NOT_INTEGER: &str = "ERR value is not an integer or out of range";

/// INCR/DECR family whose result overflows 64 bits.
pub const ERR_INCR_OVERFLOW: &str = "ERR increment or decrement would overflow";

/// FLUSHDB/FLUSHALL when the configuration does not allow them (ringkv's
/// guard; Redis has none).
pub const ERR_FLUSH_DISABLED: &str =
    "ERR FLUSHDB and FLUSHALL are disabled on this server (enable them in the config)";

/// A key over [`KEY_SIZE_MAX`] bytes (ringkv's limit).
#[must_use]
pub fn err_key_too_large(size: usize) -> String {
    format!("ERR key of {size} bytes exceeds maximum allowed size ({KEY_SIZE_MAX} bytes)")
}

/// A value (SET, APPEND's result...) over [`VALUE_SIZE_MAX`] bytes; worded
/// like Redis's `string exceeds maximum allowed size (proto-max-bulk-len)`.
#[must_use]
pub fn err_value_too_large(size: usize) -> String {
    format!("ERR string of {size} bytes exceeds maximum allowed size ({VALUE_SIZE_MAX} bytes)")
}

/// What HELLO reports about the server and the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelloInfo<'a> {
    /// The `server` field; Redis clients expect `redis` and some check it.
    pub server: &'a str,
    /// The `version` field (a Redis-compatible version string, such as
    /// `7.2.0`, so clients enable the features ringkv has).
    pub version: &'a str,
    /// The connection's id (CLIENT ID).
    pub client_id: i64,
}

/// Appends the HELLO reply in `reply`'s version (which the server has
/// already switched to the requested one): a map of `server`, `version`,
/// `proto`, `id`, `mode` (`standalone`), `role` (`master`) and `modules`
/// (empty), as Redis 7 sends.
pub fn write_hello(reply: &mut Reply<'_>, info: &HelloInfo<'_>) {
    reply.map_header(7);
    reply.bulk(b"server");
    reply.bulk(info.server.as_bytes());
    reply.bulk(b"version");
    reply.bulk(info.version.as_bytes());
    reply.bulk(b"proto");
    reply.integer(match reply.version() {
        RespVersion::Resp2 => 2,
        RespVersion::Resp3 => 3,
    });
    reply.bulk(b"id");
    reply.integer(info.client_id);
    reply.bulk(b"mode");
    reply.bulk(b"standalone");
    reply.bulk(b"role");
    reply.bulk(b"master");
    reply.bulk(b"modules");
    reply.array_header(0);
}
