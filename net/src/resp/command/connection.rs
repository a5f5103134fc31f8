//! Connection and server commands: PING, ECHO, HELLO, AUTH, SELECT, QUIT,
//! INFO, and the containers COMMAND, CLIENT and CONFIG with their
//! subcommands. Rules follow Redis 7's `helloCommand`, `authCommand`,
//! `clientCommand`, `clientSetinfoCommand` and `validateClientName`.

use super::error::shown;
use super::{arg, check_arity, is, ArgSlice, ClientAttribute, Command, CommandError};
use crate::limits::RESP_CLIENT_NAME_SIZE_MAX;
use crate::resp::num::parse_i64;
use crate::resp::reply::RespVersion;
use crate::resp::table::{self, CommandSpec};

pub(super) fn ping(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    if args.len() > 2 {
        return Err(CommandError::WrongArity { name: "ping" });
    }
    Ok(Command::Ping {
        message: args.get(1),
    })
}

pub(super) fn echo(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    Ok(Command::Echo {
        message: arg(args, 1),
    })
}

pub(super) fn quit(_args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    Ok(Command::Quit)
}

pub(super) fn info(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    Ok(Command::Info {
        sections: args.skip(1),
    })
}

pub(super) fn select(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    let index = parse_i64(arg(args, 1)).ok_or(CommandError::NotInteger)?;
    if i32::try_from(index).is_err() {
        return Err(CommandError::OutOfRange {
            min: i32::MIN.into(),
            max: i32::MAX.into(),
        });
    }
    Ok(Command::Select { index })
}

pub(super) fn auth(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    match args.len() {
        2 => Ok(Command::Auth {
            username: None,
            password: arg(args, 1),
        }),
        3 => Ok(Command::Auth {
            username: Some(arg(args, 1)),
            password: arg(args, 2),
        }),
        _ => Err(CommandError::Syntax),
    }
}

pub(super) fn hello(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    let protover = match args.get(1) {
        None => None,
        Some(v) => match parse_i64(v).ok_or(CommandError::HelloVersionNotInteger)? {
            2 => Some(RespVersion::Resp2),
            3 => Some(RespVersion::Resp3),
            _ => return Err(CommandError::NoProto),
        },
    };
    let mut auth = None;
    let mut setname = None;
    let mut j = 2;
    while let Some(opt) = args.get(j) {
        let more = args.len() - 1 - j;
        if is(opt, "auth") && more >= 2 {
            auth = Some((arg(args, j + 1), arg(args, j + 2)));
            j += 3;
        } else if is(opt, "setname") && more >= 1 {
            let name = arg(args, j + 1);
            validate_client_name(name)?;
            setname = Some(name);
            j += 2;
        } else {
            return Err(CommandError::HelloSyntax { option: shown(opt) });
        }
    }
    Ok(Command::Hello {
        protover,
        auth,
        setname,
    })
}

/// Redis's `validateClientName`: every byte in `!`..=`~` (so CLIENT LIST
/// stays splittable by spaces); empty is allowed and clears the name.
fn validate_client_name(name: &[u8]) -> Result<(), CommandError> {
    if name.len() > RESP_CLIENT_NAME_SIZE_MAX {
        return Err(CommandError::ClientNameTooLong {
            size_max: RESP_CLIENT_NAME_SIZE_MAX,
        });
    }
    if !is_printable_token(name) {
        return Err(CommandError::InvalidClientName);
    }
    Ok(())
}

fn is_printable_token(value: &[u8]) -> bool {
    value.iter().all(|b| (b'!'..=b'~').contains(b))
}

/// Resolves the subcommand of a container (`args[1]`) and checks its arity.
/// `upper` is the container's name as Redis shows it in "Try X HELP.".
fn subcommand(
    container: &CommandSpec,
    upper: &'static str,
    args: ArgSlice<'_>,
) -> Result<&'static CommandSpec, CommandError> {
    let sub = arg(args, 1);
    let spec =
        table::subcommand(container, sub).ok_or_else(|| CommandError::UnknownSubcommand {
            container: upper,
            sub: shown(sub),
        })?;
    check_arity(spec, args.len())?;
    Ok(spec)
}

pub(super) fn command(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    if args.len() == 1 {
        return Ok(Command::CommandList);
    }
    let spec = subcommand(&table::COMMAND, "COMMAND", args)?;
    Ok(match spec.name {
        "command|count" => Command::CommandCount,
        "command|docs" => Command::CommandDocs {
            names: args.skip(2),
        },
        _ => Command::CommandInfo {
            names: args.skip(2),
        },
    })
}

pub(super) fn client(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    let spec = subcommand(&table::CLIENT, "CLIENT", args)?;
    match spec.name {
        "client|setname" => {
            let name = arg(args, 2);
            validate_client_name(name)?;
            Ok(Command::ClientSetName { name })
        }
        "client|getname" => Ok(Command::ClientGetName),
        "client|id" => Ok(Command::ClientId),
        "client|info" => Ok(Command::ClientInfo),
        _ => client_setinfo(args),
    }
}

fn client_setinfo(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    let name = arg(args, 2);
    let value = arg(args, 3);
    let attribute = if is(name, "lib-name") {
        ClientAttribute::LibName
    } else if is(name, "lib-ver") {
        ClientAttribute::LibVer
    } else {
        return Err(CommandError::UnrecognizedClientAttribute {
            attribute: shown(name),
        });
    };
    if value.len() > RESP_CLIENT_NAME_SIZE_MAX || !is_printable_token(value) {
        return Err(CommandError::InvalidClientAttribute {
            attribute: shown(name),
        });
    }
    Ok(Command::ClientSetInfo { attribute, value })
}

pub(super) fn config(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    subcommand(&table::CONFIG, "CONFIG", args)?;
    Ok(Command::ConfigGet {
        parameters: args.skip(2),
    })
}
