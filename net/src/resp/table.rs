//! The static command table: one [`CommandSpec`] per supported command and
//! subcommand (name, arity, flags, key positions, ACL categories, docs), the
//! single source of the arity [`super::command`] checks, and the encoders of
//! the COMMAND, COMMAND INFO, COMMAND COUNT and COMMAND DOCS replies that
//! `redis-cli` and client libraries (cluster key routing, hints) read.
//!
//! Values follow Redis 7's command table for the same commands. COMMAND
//! INFO entries have Redis 7's ten fields with empty tips and key specs;
//! COMMAND DOCS gives summary, since, group, complexity and the arguments
//! (name, type, token, optional/multiple flags, nesting), from which
//! `redis-cli` 7 builds its argument hints.
//!
//! Arity, as in Redis: `n > 0` means exactly `n` arguments, `n < 0` at
//! least `-n`, the command name (and subcommand name) included.

use super::reply::Reply;

/// One command or subcommand as COMMAND describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandSpec {
    /// Lowercase name; a subcommand is `container|sub` (`client|setname`).
    pub name: &'static str,
    /// Redis arity (see the module doc).
    pub arity: i32,
    /// Redis command flags (`readonly`, `write`, `fast`...).
    pub flags: &'static [&'static str],
    /// Position of the first key (0: no keys).
    pub first_key: i32,
    /// Position of the last key (-1: the last argument).
    pub last_key: i32,
    /// Step between keys (2 for MSET's key, value pairs).
    pub step: i32,
    /// ACL categories (`@read`, `@string`...).
    pub acl_categories: &'static [&'static str],
    /// Documentation group (`string`, `generic`, `connection`, `server`).
    pub group: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    /// Redis version that introduced the command.
    pub since: &'static str,
    /// Time complexity.
    pub complexity: &'static str,
    /// Subcommands of a container command (CLIENT, CONFIG, COMMAND).
    pub subcommands: &'static [&'static CommandSpec],
    /// The arguments after the name, for COMMAND DOCS (redis-cli's hints).
    pub arguments: &'static [ArgSpec],
}

/// The type of an argument, as COMMAND DOCS names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// A key name.
    Key,
    /// Any string.
    String,
    /// An integer.
    Integer,
    /// A glob-style pattern.
    Pattern,
    /// A Unix time.
    UnixTime,
    /// A token with no value (`NX`).
    PureToken,
    /// Exactly one of the nested arguments.
    OneOf,
    /// The nested arguments, in order.
    Block,
}

impl ArgKind {
    /// The name COMMAND DOCS gives this type.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ArgKind::Key => "key",
            ArgKind::String => "string",
            ArgKind::Integer => "integer",
            ArgKind::Pattern => "pattern",
            ArgKind::UnixTime => "unix-time",
            ArgKind::PureToken => "pure-token",
            ArgKind::OneOf => "oneof",
            ArgKind::Block => "block",
        }
    }
}

/// One argument of a command, as COMMAND DOCS describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgSpec {
    /// Name (`key`, `seconds`).
    pub name: &'static str,
    /// Type.
    pub kind: ArgKind,
    /// The token that introduces it (`EX`), if any.
    pub token: Option<&'static str>,
    /// Whether it may be left out.
    pub optional: bool,
    /// Whether it may be repeated.
    pub multiple: bool,
    /// Nested arguments of a `OneOf` or `Block`.
    pub arguments: &'static [ArgSpec],
}

impl ArgSpec {
    const fn new(name: &'static str, kind: ArgKind) -> Self {
        ArgSpec {
            name,
            kind,
            token: None,
            optional: false,
            multiple: false,
            arguments: &[],
        }
    }

    const fn optional(self) -> Self {
        ArgSpec {
            optional: true,
            ..self
        }
    }

    const fn multiple(self) -> Self {
        ArgSpec {
            multiple: true,
            ..self
        }
    }

    const fn token(self, token: &'static str) -> Self {
        ArgSpec {
            token: Some(token),
            ..self
        }
    }
}

const fn key(name: &'static str) -> ArgSpec {
    ArgSpec::new(name, ArgKind::Key)
}

const fn string(name: &'static str) -> ArgSpec {
    ArgSpec::new(name, ArgKind::String)
}

const fn integer(name: &'static str) -> ArgSpec {
    ArgSpec::new(name, ArgKind::Integer)
}

const fn word(name: &'static str, token: &'static str) -> ArgSpec {
    ArgSpec::new(name, ArgKind::PureToken).token(token)
}

const fn one_of(name: &'static str, arguments: &'static [ArgSpec]) -> ArgSpec {
    ArgSpec {
        arguments,
        ..ArgSpec::new(name, ArgKind::OneOf)
    }
}

const fn block(name: &'static str, arguments: &'static [ArgSpec]) -> ArgSpec {
    ArgSpec {
        arguments,
        ..ArgSpec::new(name, ArgKind::Block)
    }
}

const KEY: &[ArgSpec] = &[key("key")];
const KEY_VALUE: &[ArgSpec] = &[key("key"), string("value")];
const KEY_LIST: &[ArgSpec] = &[key("key").multiple()];
const PAIRS: &[ArgSpec] = &[block("data", &[key("key"), string("value")]).multiple()];
const SET_EXPIRATION: &[ArgSpec] = &[
    integer("seconds").token("EX"),
    integer("milliseconds").token("PX"),
    ArgSpec::new("unix-time-seconds", ArgKind::UnixTime).token("EXAT"),
    ArgSpec::new("unix-time-milliseconds", ArgKind::UnixTime).token("PXAT"),
    word("keepttl", "KEEPTTL"),
];
const GETEX_EXPIRATION: &[ArgSpec] = &[
    integer("seconds").token("EX"),
    integer("milliseconds").token("PX"),
    ArgSpec::new("unix-time-seconds", ArgKind::UnixTime).token("EXAT"),
    ArgSpec::new("unix-time-milliseconds", ArgKind::UnixTime).token("PXAT"),
    word("persist", "PERSIST"),
];
const EXPIRE_CONDITION: ArgSpec = one_of(
    "condition",
    &[
        word("nx", "NX"),
        word("xx", "XX"),
        word("gt", "GT"),
        word("lt", "LT"),
    ],
)
.optional();
const FLUSH_TYPE: &[ArgSpec] = &[one_of(
    "flush-type",
    &[word("async", "ASYNC"), word("sync", "SYNC")],
)
.optional()];

const BASE: CommandSpec = CommandSpec {
    name: "",
    arity: 1,
    flags: &[],
    first_key: 0,
    last_key: 0,
    step: 0,
    acl_categories: &[],
    group: "generic",
    summary: "",
    since: "1.0.0",
    complexity: "O(1)",
    subcommands: &[],
    arguments: &[],
};

const ONE_KEY: CommandSpec = CommandSpec {
    first_key: 1,
    last_key: 1,
    step: 1,
    ..BASE
};

const CONNECTION: CommandSpec = CommandSpec {
    acl_categories: &["@fast", "@connection"],
    group: "connection",
    ..BASE
};

const STRING_WRITE: CommandSpec = CommandSpec {
    flags: &["write", "denyoom", "fast"],
    acl_categories: &["@write", "@string", "@fast"],
    group: "string",
    ..ONE_KEY
};

const STRING_READ: CommandSpec = CommandSpec {
    flags: &["readonly", "fast"],
    acl_categories: &["@read", "@string", "@fast"],
    group: "string",
    ..ONE_KEY
};

const KEYSPACE_WRITE: CommandSpec = CommandSpec {
    flags: &["write", "fast"],
    acl_categories: &["@keyspace", "@write", "@fast"],
    ..ONE_KEY
};

const KEYSPACE_READ: CommandSpec = CommandSpec {
    flags: &["readonly", "fast"],
    acl_categories: &["@keyspace", "@read", "@fast"],
    ..ONE_KEY
};

const SERVER: CommandSpec = CommandSpec {
    flags: &["loading", "stale"],
    acl_categories: &["@slow", "@connection"],
    group: "server",
    ..BASE
};

const CLIENT_SUB: CommandSpec = CommandSpec {
    flags: &["noscript", "loading", "stale"],
    acl_categories: &["@slow", "@connection"],
    group: "connection",
    ..BASE
};

const HANDSHAKE_FLAGS: &[&str] = &[
    "noscript",
    "loading",
    "stale",
    "fast",
    "no_auth",
    "sentinel",
    "allow_busy",
];

macro_rules! spec {
    ($id:ident, $name:literal, $arity:expr, $base:ident, $summary:literal, $since:literal $(, $field:ident : $value:expr)* $(,)?) => {
        #[doc = concat!("`", $name, "`: ", $summary)]
        pub static $id: CommandSpec = CommandSpec {
            name: $name,
            arity: $arity,
            summary: $summary,
            since: $since,
            $($field: $value,)*
            ..$base
        };
    };
}

spec!(PING, "ping", -1, CONNECTION, "Returns the server's liveliness response.", "1.0.0", flags: &["fast", "sentinel"], arguments: &[string("message").optional()]);
spec!(ECHO, "echo", 2, CONNECTION, "Returns the given string.", "1.0.0", flags: &["loading", "stale", "fast"], arguments: &[string("message")]);
spec!(HELLO, "hello", -1, CONNECTION, "Handshakes with the Redis server.", "6.0.0", flags: HANDSHAKE_FLAGS, arguments: &[block("arguments", &[integer("protover"), block("auth", &[string("username"), string("password")]).token("AUTH").optional(), string("clientname").token("SETNAME").optional()]).optional()]);
spec!(AUTH, "auth", -2, CONNECTION, "Authenticates the connection.", "1.0.0", flags: HANDSHAKE_FLAGS, arguments: &[string("username").optional(), string("password")]);
spec!(SELECT, "select", 2, CONNECTION, "Changes the selected database.", "1.0.0", flags: &["loading", "stale", "fast"], arguments: &[integer("index")]);
spec!(QUIT, "quit", -1, CONNECTION, "Closes the connection.", "1.0.0",
    flags: &["allow_busy", "noscript", "loading", "stale", "fast", "no_auth"]);

spec!(
    GET,
    "get",
    2,
    STRING_READ,
    "Returns the string value of a key.",
    "1.0.0", arguments: KEY);
spec!(SET, "set", -3, STRING_WRITE,
    "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.", "1.0.0",
    flags: &["write", "denyoom"], acl_categories: &["@write", "@string", "@slow"], arguments: &[key("key"), string("value"), one_of("condition", &[word("nx", "NX"), word("xx", "XX")]).optional(), word("get", "GET").optional(), one_of("expiration", SET_EXPIRATION).optional()]);
spec!(
    SETNX,
    "setnx",
    3,
    STRING_WRITE,
    "Set the string value of a key only when the key doesn't exist.",
    "1.0.0", arguments: KEY_VALUE);
spec!(SETEX, "setex", 4, STRING_WRITE,
    "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.", "2.0.0",
    flags: &["write", "denyoom"], acl_categories: &["@write", "@string", "@slow"], arguments: &[key("key"), integer("seconds"), string("value")]);
spec!(PSETEX, "psetex", 4, STRING_WRITE,
    "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.",
    "2.6.0", flags: &["write", "denyoom"], acl_categories: &["@write", "@string", "@slow"], arguments: &[key("key"), integer("milliseconds"), string("value")]);
spec!(
    GETSET,
    "getset",
    3,
    STRING_WRITE,
    "Returns the previous string value of a key after setting it to a new value.",
    "1.0.0", arguments: KEY_VALUE);
spec!(GETDEL, "getdel", 2, STRING_WRITE, "Returns the string value of a key after deleting the key.", "6.2.0",
    flags: &["write", "fast"], arguments: KEY);
spec!(GETEX, "getex", -2, STRING_WRITE, "Returns the string value of a key after setting its expiration time.",
    "6.2.0", flags: &["write", "fast"], arguments: &[key("key"), one_of("expiration", GETEX_EXPIRATION).optional()]);
spec!(MGET, "mget", -2, STRING_READ, "Atomically returns the string values of one or more keys.", "1.0.0",
    last_key: -1, complexity: "O(N) where N is the number of keys to retrieve.", arguments: KEY_LIST);
spec!(MSET, "mset", -3, STRING_WRITE, "Atomically creates or modifies the string values of one or more keys.",
    "1.0.1", flags: &["write", "denyoom"], acl_categories: &["@write", "@string", "@slow"],
    last_key: -1, step: 2, complexity: "O(N) where N is the number of keys to set.", arguments: PAIRS);
spec!(MSETNX, "msetnx", -3, STRING_WRITE,
    "Atomically modifies the string values of one or more keys only when all keys don't exist.", "1.0.1",
    flags: &["write", "denyoom"], acl_categories: &["@write", "@string", "@slow"],
    last_key: -1, step: 2, complexity: "O(N) where N is the number of keys to set.", arguments: PAIRS);
spec!(INCR, "incr", 2, STRING_WRITE,
    "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", "1.0.0", arguments: KEY);
spec!(DECR, "decr", 2, STRING_WRITE,
    "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", "1.0.0", arguments: KEY);
spec!(INCRBY, "incrby", 3, STRING_WRITE,
    "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.", "1.0.0", arguments: &[key("key"), integer("increment")]);
spec!(DECRBY, "decrby", 3, STRING_WRITE,
    "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.",
    "1.0.0", arguments: &[key("key"), integer("decrement")]);
spec!(
    APPEND,
    "append",
    3,
    STRING_WRITE,
    "Appends a string to the value of a key. Creates the key if it doesn't exist.",
    "2.0.0", arguments: KEY_VALUE);
spec!(
    STRLEN,
    "strlen",
    2,
    STRING_READ,
    "Returns the length of a string value.",
    "2.2.0", arguments: KEY);

spec!(DEL, "del", -2, KEYSPACE_WRITE, "Deletes one or more keys.", "1.0.0", flags: &["write"],
    acl_categories: &["@keyspace", "@write", "@slow"], last_key: -1,
    complexity: "O(N) where N is the number of keys that will be removed.", arguments: KEY_LIST);
spec!(UNLINK, "unlink", -2, KEYSPACE_WRITE, "Asynchronously deletes one or more keys.", "4.0.0", last_key: -1,
    complexity: "O(1) for each key removed regardless of its size.", arguments: KEY_LIST);
spec!(EXISTS, "exists", -2, KEYSPACE_READ, "Determines whether one or more keys exist.", "3.0.3", last_key: -1,
    complexity: "O(N) where N is the number of keys to check.", arguments: KEY_LIST);
spec!(
    EXPIRE,
    "expire",
    -3,
    KEYSPACE_WRITE,
    "Sets the expiration time of a key in seconds.",
    "1.0.0", arguments: &[key("key"), integer("seconds"), EXPIRE_CONDITION]);
spec!(
    PEXPIRE,
    "pexpire",
    -3,
    KEYSPACE_WRITE,
    "Sets the expiration time of a key in milliseconds.",
    "2.6.0", arguments: &[key("key"), integer("milliseconds"), EXPIRE_CONDITION]);
spec!(
    EXPIREAT,
    "expireat",
    -3,
    KEYSPACE_WRITE,
    "Sets the expiration time of a key to a Unix timestamp.",
    "1.2.0", arguments: &[key("key"), ArgSpec::new("unix-time-seconds", ArgKind::UnixTime), EXPIRE_CONDITION]);
spec!(
    PEXPIREAT,
    "pexpireat",
    -3,
    KEYSPACE_WRITE,
    "Sets the expiration time of a key to a Unix milliseconds timestamp.",
    "2.6.0", arguments: &[key("key"), ArgSpec::new("unix-time-milliseconds", ArgKind::UnixTime), EXPIRE_CONDITION]);
spec!(
    PERSIST,
    "persist",
    2,
    KEYSPACE_WRITE,
    "Removes the expiration time of a key.",
    "2.2.0", arguments: KEY);
spec!(
    TTL,
    "ttl",
    2,
    KEYSPACE_READ,
    "Returns the expiration time in seconds of a key.",
    "1.0.0", arguments: KEY);
spec!(
    PTTL,
    "pttl",
    2,
    KEYSPACE_READ,
    "Returns the expiration time in milliseconds of a key.",
    "2.6.0", arguments: KEY);
spec!(
    TYPE,
    "type",
    2,
    KEYSPACE_READ,
    "Determines the type of value stored at a key.",
    "1.0.0", arguments: KEY);
spec!(SCAN, "scan", -2, BASE, "Iterates over the key names in the database.", "2.8.0", flags: &["readonly"],
    acl_categories: &["@keyspace", "@read", "@slow"],
    complexity: "O(1) for every call. O(N) for a complete iteration.", arguments: &[integer("cursor"), ArgSpec::new("pattern", ArgKind::Pattern).token("MATCH").optional(), integer("count").token("COUNT").optional(), string("type").token("TYPE").optional()]);
spec!(KEYS, "keys", 2, BASE, "Returns all key names that match a pattern.", "1.0.0", flags: &["readonly"],
    acl_categories: &["@keyspace", "@read", "@slow", "@dangerous"],
    complexity: "O(N) with N being the number of keys in the database.", arguments: &[ArgSpec::new("pattern", ArgKind::Pattern)]);

spec!(DBSIZE, "dbsize", 1, BASE, "Returns the number of keys in the database.", "1.0.0",
    flags: &["readonly", "fast"], acl_categories: &["@keyspace", "@read", "@fast"], group: "server");
spec!(FLUSHDB, "flushdb", -1, BASE, "Remove all keys from the current database.", "1.0.0", flags: &["write"],
    acl_categories: &["@keyspace", "@write", "@slow", "@dangerous"], group: "server",
    complexity: "O(N) where N is the number of keys in the selected database", arguments: FLUSH_TYPE);
spec!(FLUSHALL, "flushall", -1, BASE, "Removes all keys from all databases.", "1.0.0", flags: &["write"],
    acl_categories: &["@keyspace", "@write", "@slow", "@dangerous"], group: "server",
    complexity: "O(N) where N is the total number of keys in all databases", arguments: FLUSH_TYPE);
spec!(INFO, "info", -1, SERVER, "Returns information and statistics about the server.", "1.0.0",
    acl_categories: &["@slow", "@dangerous"], arguments: &[string("section").optional().multiple()]);

spec!(
    COMMAND_COUNT,
    "command|count",
    2,
    SERVER,
    "Returns a count of commands.",
    "2.8.13"
);
spec!(COMMAND_DOCS, "command|docs", -2, SERVER,
    "Returns documentary information about one, multiple or all commands.", "7.0.0",
    complexity: "O(N) where N is the number of commands to look up", arguments: &[string("command-name").optional().multiple()]);
spec!(COMMAND_INFO, "command|info", -2, SERVER, "Returns information about one, multiple or all commands.",
    "2.8.13", complexity: "O(N) where N is the number of commands to look up", arguments: &[string("command-name").optional().multiple()]);
spec!(COMMAND, "command", -1, SERVER, "Returns detailed information about all commands.", "2.8.13",
    complexity: "O(N) where N is the total number of Redis commands",
    subcommands: &[&COMMAND_COUNT, &COMMAND_DOCS, &COMMAND_INFO]);

spec!(
    CLIENT_SETNAME,
    "client|setname",
    3,
    CLIENT_SUB,
    "Sets the connection name.",
    "2.6.9", arguments: &[string("connection-name")]);
spec!(
    CLIENT_GETNAME,
    "client|getname",
    2,
    CLIENT_SUB,
    "Returns the name of the connection.",
    "2.6.9"
);
spec!(
    CLIENT_ID,
    "client|id",
    2,
    CLIENT_SUB,
    "Returns the unique client ID of the connection.",
    "5.0.0"
);
spec!(
    CLIENT_INFO,
    "client|info",
    2,
    CLIENT_SUB,
    "Returns information about the connection.",
    "6.2.0"
);
spec!(
    CLIENT_SETINFO,
    "client|setinfo",
    4,
    CLIENT_SUB,
    "Sets information specific to the client or connection.",
    "7.2.0", arguments: &[one_of("attr", &[string("libname").token("LIB-NAME"), string("libver").token("LIB-VER")])]);
spec!(CLIENT, "client", -2, BASE, "A container for client connection commands.", "2.4.0",
    acl_categories: &["@slow"], group: "connection", complexity: "Depends on subcommand.",
    subcommands: &[&CLIENT_SETNAME, &CLIENT_GETNAME, &CLIENT_ID, &CLIENT_INFO, &CLIENT_SETINFO]);

spec!(CONFIG_GET, "config|get", -3, BASE, "Returns the effective values of configuration parameters.", "2.0.0",
    flags: &["admin", "noscript", "loading", "stale"], acl_categories: &["@admin", "@slow", "@dangerous"],
    group: "server", complexity: "O(N) when N is the number of configuration parameters provided", arguments: &[string("parameter").multiple()]);
spec!(CONFIG, "config", -2, BASE, "A container for server configuration commands.", "2.0.0",
    acl_categories: &["@slow"], group: "server", complexity: "Depends on subcommand.",
    subcommands: &[&CONFIG_GET]);

/// Every supported top-level command (subcommands hang off their
/// container).
pub static COMMANDS: &[&CommandSpec] = &[
    &PING, &ECHO, &HELLO, &AUTH, &SELECT, &QUIT, &GET, &SET, &SETNX, &SETEX, &PSETEX, &GETSET,
    &GETDEL, &GETEX, &MGET, &MSET, &MSETNX, &INCR, &DECR, &INCRBY, &DECRBY, &APPEND, &STRLEN, &DEL,
    &UNLINK, &EXISTS, &EXPIRE, &PEXPIRE, &EXPIREAT, &PEXPIREAT, &PERSIST, &TTL, &PTTL, &TYPE,
    &SCAN, &KEYS, &DBSIZE, &FLUSHDB, &FLUSHALL, &INFO, &COMMAND, &CLIENT, &CONFIG,
];

/// The spec of a command or `container|sub` subcommand, by case-insensitive
/// name.
#[must_use]
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    let (top, sub) = match name.iter().position(|&b| b == b'|') {
        Some(bar) => (&name[..bar], Some(&name[bar + 1..])),
        None => (name, None),
    };
    let spec = COMMANDS
        .iter()
        .find(|s| s.name.as_bytes().eq_ignore_ascii_case(top))?;
    match sub {
        None => Some(spec),
        Some(sub) => subcommand(spec, sub),
    }
}

/// The subcommand `sub` (case-insensitive, without the container prefix) of
/// `container`.
#[must_use]
pub fn subcommand(container: &CommandSpec, sub: &[u8]) -> Option<&'static CommandSpec> {
    container.subcommands.iter().copied().find(|s| {
        s.name
            .split_once('|')
            .is_some_and(|(_, n)| n.as_bytes().eq_ignore_ascii_case(sub))
    })
}

/// The COMMAND COUNT reply: the number of top-level commands.
#[must_use]
pub fn command_count() -> usize {
    COMMANDS.len()
}

/// Appends one COMMAND INFO entry (Redis 7's ten fields), or null for an
/// unknown command.
pub fn write_command_info(reply: &mut Reply<'_>, spec: Option<&CommandSpec>) {
    let Some(spec) = spec else {
        reply.null();
        return;
    };
    reply.array_header(10);
    reply.bulk(spec.name.as_bytes());
    reply.integer(i64::from(spec.arity));
    reply.set_header(spec.flags.len());
    for flag in spec.flags {
        reply.simple(flag);
    }
    reply.integer(i64::from(spec.first_key));
    reply.integer(i64::from(spec.last_key));
    reply.integer(i64::from(spec.step));
    reply.set_header(spec.acl_categories.len());
    for category in spec.acl_categories {
        reply.simple(category);
    }
    reply.array_header(0); // tips
    reply.array_header(0); // key specifications
    reply.array_header(spec.subcommands.len());
    for sub in spec.subcommands {
        write_command_info(reply, Some(sub));
    }
}

/// Appends the COMMAND reply: an array of every command's INFO entry.
pub fn write_command_list(reply: &mut Reply<'_>) {
    reply.array_header(COMMANDS.len());
    for spec in COMMANDS {
        write_command_info(reply, Some(spec));
    }
}

/// Appends the COMMAND INFO reply for `names` (all commands when empty).
pub fn write_command_info_reply<'n>(
    reply: &mut Reply<'_>,
    names: impl ExactSizeIterator<Item = &'n [u8]>,
) {
    if names.len() == 0 {
        write_command_list(reply);
        return;
    }
    reply.array_header(names.len());
    for name in names {
        write_command_info(reply, lookup(name));
    }
}

/// Appends the COMMAND DOCS reply for `names` (all commands when empty): a
/// map from name to its docs; unknown names are left out, as in Redis.
pub fn write_command_docs_reply<'n>(
    reply: &mut Reply<'_>,
    names: impl ExactSizeIterator<Item = &'n [u8]>,
) {
    if names.len() == 0 {
        reply.map_header(COMMANDS.len());
        for spec in COMMANDS {
            write_docs_entry(reply, spec);
        }
        return;
    }
    let found: Vec<&CommandSpec> = names.filter_map(lookup).collect();
    reply.map_header(found.len());
    for spec in found {
        write_docs_entry(reply, spec);
    }
}

fn write_docs_entry(reply: &mut Reply<'_>, spec: &CommandSpec) {
    reply.bulk(spec.name.as_bytes());
    let has_subcommands = !spec.subcommands.is_empty();
    let has_arguments = !spec.arguments.is_empty();
    reply.map_header(4 + usize::from(has_arguments) + usize::from(has_subcommands));
    for (field, value) in [
        ("summary", spec.summary),
        ("since", spec.since),
        ("group", spec.group),
        ("complexity", spec.complexity),
    ] {
        reply.bulk(field.as_bytes());
        reply.bulk(value.as_bytes());
    }
    if has_arguments {
        reply.bulk(b"arguments");
        write_arguments(reply, spec.arguments);
    }
    if has_subcommands {
        reply.bulk(b"subcommands");
        reply.map_header(spec.subcommands.len());
        for sub in spec.subcommands {
            write_docs_entry(reply, sub);
        }
    }
}

/// Appends an array of argument maps as Redis 7's COMMAND DOCS does: name,
/// type, `key_spec_index` for keys, then token, flags and nested arguments
/// when present.
fn write_arguments(reply: &mut Reply<'_>, arguments: &[ArgSpec]) {
    reply.array_header(arguments.len());
    for arg in arguments {
        let is_key = arg.kind == ArgKind::Key;
        let flags: Vec<&str> = [(arg.optional, "optional"), (arg.multiple, "multiple")]
            .into_iter()
            .filter_map(|(on, flag)| on.then_some(flag))
            .collect();
        let fields = 2
            + usize::from(is_key)
            + usize::from(arg.token.is_some())
            + usize::from(!flags.is_empty())
            + usize::from(!arg.arguments.is_empty());
        reply.map_header(fields);
        reply.bulk(b"name");
        reply.bulk(arg.name.as_bytes());
        reply.bulk(b"type");
        reply.bulk(arg.kind.name().as_bytes());
        if is_key {
            reply.bulk(b"key_spec_index");
            reply.integer(0);
        }
        if let Some(token) = arg.token {
            reply.bulk(b"token");
            reply.bulk(token.as_bytes());
        }
        if !flags.is_empty() {
            reply.bulk(b"flags");
            reply.set_header(flags.len());
            for flag in flags {
                reply.simple(flag);
            }
        }
        if !arg.arguments.is_empty() {
            reply.bulk(b"arguments");
            write_arguments(reply, arg.arguments);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive_and_finds_subcommands() {
        assert_eq!(lookup(b"GeT").map(|s| s.name), Some("get"));
        assert_eq!(
            lookup(b"CLIENT|SetName").map(|s| s.name),
            Some("client|setname")
        );
        assert!(lookup(b"client|nope").is_none());
        assert!(lookup(b"nope").is_none());
    }

    #[test]
    fn table_names_are_unique_lowercase_and_subcommands_prefixed() {
        let mut seen = std::collections::HashSet::new();
        for spec in COMMANDS {
            assert!(seen.insert(spec.name), "{} twice", spec.name);
            assert_eq!(spec.name, spec.name.to_ascii_lowercase());
            assert!(!spec.summary.is_empty(), "{}", spec.name);
            for sub in spec.subcommands {
                assert!(
                    sub.name.starts_with(&format!("{}|", spec.name)),
                    "{}",
                    sub.name
                );
            }
        }
    }
}
