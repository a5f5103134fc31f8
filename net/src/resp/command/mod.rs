//! Typed RESP commands: [`Command::parse`] turns the arguments of one
//! request into a [`Command`] with Redis 7's argument rules and error
//! strings, or a [`CommandError`] whose text is Redis's error line.
//!
//! Invariants:
//! - Names (commands, subcommands, options) match case-insensitively.
//! - Arity is checked first, from the single table in [`super::table`], then
//!   options in Redis's order, so the first error reported is Redis's.
//! - Parsing is pure: relative expiries stay relative ([`Expiry::In`]) and the
//!   server adds its clock with [`Expiry::deadline_unix_ms`].
//! - Every argument is borrowed from [`Args`]; nothing is copied.
//!
//! Not here: executing commands, authentication state, the clock.

mod connection;
mod error;
mod keyspace;
mod strings;

pub use error::{unknown_command_message, CommandError};

use super::args::{ArgSlice, Args};
use super::table::{self, CommandSpec};

/// An expiry time given to SET, SETEX, PSETEX, GETEX or the EXPIRE family,
/// converted to milliseconds and checked for overflow of that conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Relative to the server's clock (EX, PX, EXPIRE, PEXPIRE). Positive
    /// for the SET family; may be zero or negative for EXPIRE (the key then
    /// expires at once, as in Redis).
    In {
        /// Milliseconds from now.
        ms: i64,
    },
    /// Absolute (EXAT, PXAT, EXPIREAT, PEXPIREAT). Positive for the SET
    /// family; any value for EXPIREAT.
    At {
        /// Milliseconds since the Unix epoch.
        unix_ms: i64,
    },
}

impl Expiry {
    /// The deadline in Unix milliseconds given the server's clock, or `None`
    /// when it overflows: the server then replies
    /// [`CommandError::InvalidExpireTime`] for the command, as Redis does.
    #[must_use]
    pub fn deadline_unix_ms(self, now_unix_ms: i64) -> Option<i64> {
        match self {
            Expiry::In { ms } => now_unix_ms.checked_add(ms),
            Expiry::At { unix_ms } => Some(unix_ms),
        }
    }
}

/// When SET writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetCondition {
    /// Always (no NX/XX).
    Always,
    /// Only if the key does not exist (NX).
    IfAbsent,
    /// Only if the key exists (XX).
    IfPresent,
}

/// What SET does to the key's time to live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTtl {
    /// Removes any TTL (plain SET, GETSET).
    Clear,
    /// Keeps the existing TTL (KEEPTTL).
    Keep,
    /// Sets this expiry (EX, PX, EXAT, PXAT, SETEX, PSETEX).
    Expire(Expiry),
}

/// What GETEX does to the key's time to live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetExTtl {
    /// Leaves it (no option).
    Unchanged,
    /// Removes it (PERSIST).
    Persist,
    /// Sets this expiry (EX, PX, EXAT, PXAT).
    Expire(Expiry),
}

/// EXPIRE's conditions (Redis 7). NX excludes the others; GT excludes LT;
/// XX combines with GT or LT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExpireFlags {
    /// Only if the key has no TTL.
    pub nx: bool,
    /// Only if the key has a TTL.
    pub xx: bool,
    /// Only if the new TTL is greater (a key without TTL counts as infinite).
    pub gt: bool,
    /// Only if the new TTL is less (a key without TTL counts as infinite).
    pub lt: bool,
}

/// The unit of a TTL reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlUnit {
    /// TTL.
    Seconds,
    /// PTTL.
    Millis,
}

/// A key pattern ringkv can serve from its ordered key space: everything, or
/// the keys starting with a literal prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPattern<'a> {
    /// `*` (or no MATCH).
    All,
    /// `prefix*`: keys starting with these bytes.
    Prefix(&'a [u8]),
}

impl KeyPattern<'_> {
    /// Whether `key` matches.
    #[must_use]
    pub fn matches(&self, key: &[u8]) -> bool {
        match self {
            KeyPattern::All => true,
            KeyPattern::Prefix(p) => key.starts_with(p),
        }
    }
}

/// FLUSHDB/FLUSHALL mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushMode {
    /// No option: the server's default (`lazyfree-lazy-user-flush`).
    Default,
    /// SYNC.
    Sync,
    /// ASYNC.
    Async,
}

/// CLIENT SETINFO attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAttribute {
    /// LIB-NAME.
    LibName,
    /// LIB-VER.
    LibVer,
}

/// One parsed command. Lifetimes borrow the [`Args`] it was parsed from.
///
/// Aliases map onto one variant where Redis's semantics and replies agree:
/// SETEX, PSETEX and GETSET are [`Command::Set`]; INCR, DECR, INCRBY and
/// DECRBY are [`Command::IncrBy`]; FLUSHDB and FLUSHALL are
/// [`Command::Flush`].
// Variant fields are described in each variant's doc.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command<'a> {
    /// No arguments (`*0`, `*-1`, a blank inline line): answer nothing.
    Empty,
    /// `PING [message]`: `+PONG` or the message as a bulk string.
    Ping { message: Option<&'a [u8]> },
    /// ECHO message.
    Echo { message: &'a [u8] },
    /// `HELLO [protover [AUTH username password] [SETNAME name]]`.
    /// `protover` is `None` when absent (keep the current version).
    Hello {
        protover: Option<super::reply::RespVersion>,
        auth: Option<(&'a [u8], &'a [u8])>,
        setname: Option<&'a [u8]>,
    },
    /// `AUTH [username] password`.
    Auth {
        username: Option<&'a [u8]>,
        password: &'a [u8],
    },
    /// SELECT index (ringkv has only database 0: the server answers
    /// `ERR DB index is out of range` for any other).
    Select { index: i64 },
    /// QUIT: reply +OK, then close.
    Quit,
    /// GET key.
    Get { key: &'a [u8] },
    /// `SET key value [NX|XX] [GET] [EX|PX|EXAT|PXAT|KEEPTTL]`, SETEX, PSETEX,
    /// GETSET. Reply: +OK (or null when the condition failed), or with `get`
    /// the old value (null if none).
    Set {
        key: &'a [u8],
        value: &'a [u8],
        condition: SetCondition,
        ttl: SetTtl,
        get: bool,
    },
    /// SETNX key value: `:1` if set, `:0` if the key existed.
    SetNx { key: &'a [u8], value: &'a [u8] },
    /// GETDEL key.
    GetDel { key: &'a [u8] },
    /// `GETEX key [EX|PX|EXAT|PXAT|PERSIST]`.
    GetEx { key: &'a [u8], ttl: GetExTtl },
    /// `MGET key [key ...]`.
    MGet { keys: ArgSlice<'a> },
    /// `MSET key value [key value ...]` (an even, non-zero count).
    MSet { pairs: ArgSlice<'a> },
    /// `MSETNX key value [key value ...]` (an even, non-zero count).
    MSetNx { pairs: ArgSlice<'a> },
    /// `DEL key [key ...]`.
    Del { keys: ArgSlice<'a> },
    /// `UNLINK key [key ...]`.
    Unlink { keys: ArgSlice<'a> },
    /// `EXISTS key [key ...]` (a key named twice counts twice).
    Exists { keys: ArgSlice<'a> },
    /// INCR, DECR, INCRBY, DECRBY: add `delta`.
    IncrBy { key: &'a [u8], delta: i64 },
    /// APPEND key value.
    Append { key: &'a [u8], value: &'a [u8] },
    /// STRLEN key.
    Strlen { key: &'a [u8] },
    /// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT: `key time [NX|XX|GT|LT ...]`.
    /// `command` is the table name, for the server's
    /// [`CommandError::InvalidExpireTime`].
    Expire {
        key: &'a [u8],
        when: Expiry,
        flags: ExpireFlags,
        command: &'static str,
    },
    /// PERSIST key.
    Persist { key: &'a [u8] },
    /// TTL or PTTL key.
    Ttl { key: &'a [u8], unit: TtlUnit },
    /// TYPE key.
    Type { key: &'a [u8] },
    /// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`.
    Scan {
        cursor: u64,
        pattern: KeyPattern<'a>,
        count: Option<u64>,
        type_name: Option<&'a [u8]>,
    },
    /// KEYS pattern.
    Keys { pattern: KeyPattern<'a> },
    /// DBSIZE.
    DbSize,
    /// FLUSHDB or FLUSHALL `[ASYNC|SYNC]`.
    Flush { all: bool, mode: FlushMode },
    /// `INFO [section ...]`.
    Info { sections: ArgSlice<'a> },
    /// COMMAND: every command's info.
    CommandList,
    /// COMMAND COUNT.
    CommandCount,
    /// `COMMAND DOCS [name ...]`.
    CommandDocs { names: ArgSlice<'a> },
    /// `COMMAND INFO [name ...]`.
    CommandInfo { names: ArgSlice<'a> },
    /// CLIENT SETNAME name (empty clears the name).
    ClientSetName { name: &'a [u8] },
    /// CLIENT GETNAME.
    ClientGetName,
    /// CLIENT ID.
    ClientId,
    /// CLIENT INFO.
    ClientInfo,
    /// CLIENT SETINFO LIB-NAME|LIB-VER value.
    ClientSetInfo {
        attribute: ClientAttribute,
        value: &'a [u8],
    },
    /// `CONFIG GET parameter [parameter ...]`.
    ConfigGet { parameters: ArgSlice<'a> },
    /// A command ringkv does not know; `args` is the whole command. Reply
    /// with [`unknown_command_message`]; the connection stays usable.
    Unknown { args: ArgSlice<'a> },
}

/// A parser of one command's arguments (the name included), after the
/// arity check.
type ParseFn<'a> = fn(ArgSlice<'a>) -> Result<Command<'a>, CommandError>;

impl<'a> Command<'a> {
    /// Parses the command in `args` (its name first).
    pub fn parse(args: &'a Args<'_>) -> Result<Command<'a>, CommandError> {
        Self::parse_slice(args.as_slice())
    }

    /// Parses the command in `args` (its name first).
    pub fn parse_slice(args: ArgSlice<'a>) -> Result<Command<'a>, CommandError> {
        let Some(name) = args.get(0) else {
            return Ok(Command::Empty);
        };
        let mut lower = [0u8; 16];
        let Some(name) = lowercase(name, &mut lower) else {
            return Ok(Command::Unknown { args });
        };
        let (spec, parse): (&CommandSpec, ParseFn<'a>) = match name {
            b"get" => (&table::GET, strings::get),
            b"set" => (&table::SET, strings::set),
            b"setnx" => (&table::SETNX, strings::setnx),
            b"setex" => (&table::SETEX, strings::setex),
            b"psetex" => (&table::PSETEX, strings::psetex),
            b"getset" => (&table::GETSET, strings::getset),
            b"getdel" => (&table::GETDEL, strings::getdel),
            b"getex" => (&table::GETEX, strings::getex),
            b"mget" => (&table::MGET, strings::mget),
            b"mset" => (&table::MSET, strings::mset),
            b"msetnx" => (&table::MSETNX, strings::msetnx),
            b"incr" => (&table::INCR, strings::incr),
            b"decr" => (&table::DECR, strings::decr),
            b"incrby" => (&table::INCRBY, strings::incrby),
            b"decrby" => (&table::DECRBY, strings::decrby),
            b"append" => (&table::APPEND, strings::append),
            b"strlen" => (&table::STRLEN, strings::strlen),
            b"del" => (&table::DEL, keyspace::del),
            b"unlink" => (&table::UNLINK, keyspace::unlink),
            b"exists" => (&table::EXISTS, keyspace::exists),
            b"expire" => (&table::EXPIRE, keyspace::expire),
            b"pexpire" => (&table::PEXPIRE, keyspace::pexpire),
            b"expireat" => (&table::EXPIREAT, keyspace::expireat),
            b"pexpireat" => (&table::PEXPIREAT, keyspace::pexpireat),
            b"persist" => (&table::PERSIST, keyspace::persist),
            b"ttl" => (&table::TTL, keyspace::ttl),
            b"pttl" => (&table::PTTL, keyspace::pttl),
            b"type" => (&table::TYPE, keyspace::type_),
            b"scan" => (&table::SCAN, keyspace::scan),
            b"keys" => (&table::KEYS, keyspace::keys),
            b"dbsize" => (&table::DBSIZE, keyspace::dbsize),
            b"flushdb" => (&table::FLUSHDB, keyspace::flushdb),
            b"flushall" => (&table::FLUSHALL, keyspace::flushall),
            b"ping" => (&table::PING, connection::ping),
            b"echo" => (&table::ECHO, connection::echo),
            b"hello" => (&table::HELLO, connection::hello),
            b"auth" => (&table::AUTH, connection::auth),
            b"select" => (&table::SELECT, connection::select),
            b"quit" => (&table::QUIT, connection::quit),
            b"info" => (&table::INFO, connection::info),
            b"command" => (&table::COMMAND, connection::command),
            b"client" => (&table::CLIENT, connection::client),
            b"config" => (&table::CONFIG, connection::config),
            _ => return Ok(Command::Unknown { args }),
        };
        check_arity(spec, args.len())?;
        parse(args)
    }

    /// The key of a single-key command (the shard that owns it executes
    /// it); `None` for multi-key and keyless commands.
    #[must_use]
    pub fn key(&self) -> Option<&'a [u8]> {
        match *self {
            Command::Get { key }
            | Command::Set { key, .. }
            | Command::SetNx { key, .. }
            | Command::GetDel { key }
            | Command::GetEx { key, .. }
            | Command::IncrBy { key, .. }
            | Command::Append { key, .. }
            | Command::Strlen { key }
            | Command::Expire { key, .. }
            | Command::Persist { key }
            | Command::Ttl { key, .. }
            | Command::Type { key } => Some(key),
            _ => None,
        }
    }
}

/// Lowercases a command or subcommand name into `buf`; `None` if it is
/// longer than any name we know.
fn lowercase<'b>(name: &[u8], buf: &'b mut [u8; 16]) -> Option<&'b [u8]> {
    let out = buf.get_mut(..name.len())?;
    for (o, &b) in out.iter_mut().zip(name) {
        *o = b.to_ascii_lowercase();
    }
    Some(out)
}

/// Redis's arity rule: `n > 0` exactly `n` arguments, `n < 0` at least `-n`.
fn check_arity(spec: &CommandSpec, argc: usize) -> Result<(), CommandError> {
    let ok = match usize::try_from(spec.arity) {
        Ok(exact) => argc == exact,
        Err(_) => argc >= spec.arity.unsigned_abs() as usize,
    };
    if ok {
        Ok(())
    } else {
        Err(CommandError::WrongArity { name: spec.name })
    }
}

/// Whether `arg` is `option`, ignoring ASCII case.
fn is(arg: &[u8], option: &str) -> bool {
    arg.eq_ignore_ascii_case(option.as_bytes())
}

/// Argument `i`, which the arity check guarantees.
fn arg<'a>(args: ArgSlice<'a>, i: usize) -> &'a [u8] {
    // Callers index below the arity their table entry enforces; an empty
    // slice would only make a later check fail, never read out of bounds.
    args.get(i).unwrap_or_default()
}
