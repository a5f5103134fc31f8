//! [`CommandError`]: a well-formed RESP command whose arguments break
//! Redis's rules. Its `Display` is the exact Redis 7 error line (without the
//! leading `-`): the server sends it and the connection stays usable.

/// A command refused for its arguments; nothing was executed. Reply with
/// `reply.error(&err.to_string())`.
// Variant fields are described in each variant's doc.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The argument count does not match the command's arity. `name` is the
    /// table name (`get`, `client|setname`).
    #[error("ERR wrong number of arguments for '{name}' command")]
    WrongArity { name: &'static str },
    /// Unknown or conflicting options.
    #[error("ERR syntax error")]
    Syntax,
    /// An integer argument that is not a 64-bit integer.
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    /// An integer argument outside the range the command takes (SELECT
    /// takes a 32-bit `int`).
    #[error("ERR value is out of range, value must between {min} and {max}")]
    OutOfRange { min: i64, max: i64 },
    /// DECRBY of -2^63, whose negation overflows.
    #[error("ERR decrement would overflow")]
    DecrementOverflow,
    /// An expire time that is not positive (SET family) or overflows
    /// milliseconds. `command` is the table name (`set`, `getex`, `expire`).
    #[error("ERR invalid expire time in '{command}' command")]
    InvalidExpireTime { command: &'static str },
    /// An unknown subcommand of a container (CLIENT, CONFIG, COMMAND).
    /// `container` is upper-case, `sub` as sent (sanitised, truncated).
    #[error("ERR unknown subcommand '{sub}'. Try {container} HELP.")]
    UnknownSubcommand {
        container: &'static str,
        sub: String,
    },
    /// An unknown EXPIRE option.
    #[error("ERR Unsupported option {option}")]
    UnsupportedExpireOption { option: String },
    /// EXPIRE NX together with XX, GT or LT.
    #[error("ERR NX and XX, GT or LT options at the same time are not compatible")]
    ExpireNxConflict,
    /// EXPIRE GT together with LT.
    #[error("ERR GT and LT options at the same time are not compatible")]
    ExpireGtLtConflict,
    /// A SCAN cursor that is not an unsigned 64-bit integer.
    #[error("ERR invalid cursor")]
    InvalidCursor,
    /// A SCAN MATCH or KEYS pattern other than `*` or a literal prefix
    /// followed by `*` (ringkv's limit; Redis accepts any glob).
    #[error(
        "ERR unsupported pattern '{pattern}': ringkv matches only '*' or a literal prefix followed by '*' (no ?, [ ], \\ or inner *)"
    )]
    UnsupportedPattern { pattern: String },
    /// HELLO's protocol version is not an integer.
    #[error("ERR Protocol version is not an integer or out of range")]
    HelloVersionNotInteger,
    /// HELLO asked for a protocol version other than 2 or 3.
    #[error("NOPROTO unsupported protocol version")]
    NoProto,
    /// An unknown or incomplete HELLO option.
    #[error("ERR Syntax error in HELLO option '{option}'")]
    HelloSyntax { option: String },
    /// A client name with a byte outside `!`..=`~`.
    #[error("ERR Client names cannot contain spaces, newlines or special characters.")]
    InvalidClientName,
    /// A client name over [`crate::limits::RESP_CLIENT_NAME_SIZE_MAX`] bytes
    /// (ringkv's limit).
    #[error("ERR Client names cannot be longer than {size_max} bytes")]
    ClientNameTooLong { size_max: usize },
    /// CLIENT SETINFO of an attribute other than LIB-NAME or LIB-VER.
    #[error("ERR Unrecognized option '{attribute}'")]
    UnrecognizedClientAttribute { attribute: String },
    /// CLIENT SETINFO value with a byte outside `!`..=`~`, or too long.
    #[error("ERR {attribute} cannot contain spaces, newlines or special characters.")]
    InvalidClientAttribute { attribute: String },
}

/// Shows an untrusted argument inside an error line: at most 128 bytes (as
/// Redis's `%.128s`), lossy UTF-8, CR and LF as spaces.
pub(crate) fn shown(arg: &[u8]) -> String {
    let arg = &arg[..arg.len().min(128)];
    String::from_utf8_lossy(arg).replace(['\r', '\n'], " ")
}

/// The reply Redis 7 gives to an unknown command:
/// `ERR unknown command 'foo', with args beginning with: 'a' 'b' `.
/// `args` is the whole command, its name first. As in Redis, the name is
/// shown up to 128 bytes and arguments are listed while the list is shorter
/// than 128 bytes, each cut to what remains of the 128.
#[must_use]
pub fn unknown_command_message<'a>(args: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut args = args.into_iter();
    let name = args.next().unwrap_or_default();
    let mut list: Vec<u8> = Vec::new();
    for arg in args {
        if list.len() >= 128 {
            break;
        }
        let room = 128 - list.len();
        list.push(b'\'');
        // `%.*s` stops at a NUL byte, as C strings do.
        let arg = arg.split(|&b| b == 0).next().unwrap_or_default();
        list.extend_from_slice(&arg[..arg.len().min(room)]);
        list.extend_from_slice(b"' ");
    }
    let name = name.split(|&b| b == 0).next().unwrap_or_default();
    format!(
        "ERR unknown command '{}', with args beginning with: {}",
        shown(name),
        String::from_utf8_lossy(&list).replace(['\r', '\n'], " ")
    )
}
