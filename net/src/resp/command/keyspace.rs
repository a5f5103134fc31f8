//! Keyspace commands: DEL, UNLINK, EXISTS, the EXPIRE family, PERSIST,
//! TTL, PTTL, TYPE, SCAN, KEYS, DBSIZE, FLUSHDB, FLUSHALL. EXPIRE options
//! follow Redis 7's `parseExtendedExpireArgumentsOrReply`, SCAN's
//! `scanGenericCommand`, FLUSH's `getFlushCommandFlags`.

use super::error::shown;
use super::{
    arg, is, ArgSlice, Command, CommandError, ExpireFlags, Expiry, FlushMode, KeyPattern, TtlUnit,
};
use crate::resp::num::{parse_i64, parse_u64};

pub(super) fn del(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    Ok(Command::Del { keys: args.skip(1) })
}

pub(super) fn unlink(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    Ok(Command::Unlink { keys: args.skip(1) })
}

pub(super) fn exists(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    Ok(Command::Exists { keys: args.skip(1) })
}

pub(super) fn persist(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    Ok(Command::Persist { key: arg(args, 1) })
}

pub(super) fn ttl(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    Ok(Command::Ttl {
        key: arg(args, 1),
        unit: TtlUnit::Seconds,
    })
}

pub(super) fn pttl(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    Ok(Command::Ttl {
        key: arg(args, 1),
        unit: TtlUnit::Millis,
    })
}

pub(super) fn type_(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    Ok(Command::Type { key: arg(args, 1) })
}

pub(super) fn dbsize(_args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    Ok(Command::DbSize)
}

pub(super) fn expire(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    expire_generic(args, true, false, "expire")
}

pub(super) fn pexpire(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    expire_generic(args, false, false, "pexpire")
}

pub(super) fn expireat(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    expire_generic(args, true, true, "expireat")
}

pub(super) fn pexpireat(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    expire_generic(args, false, true, "pexpireat")
}

/// `EXPIRE key time [NX|XX|GT|LT ...]`: options first, then the time, as in
/// Redis's `expireGenericCommand`.
fn expire_generic<'a>(
    args: ArgSlice<'a>,
    seconds: bool,
    absolute: bool,
    command: &'static str,
) -> Result<Command<'a>, CommandError> {
    let flags = expire_flags(args.skip(3))?;
    let n = parse_i64(arg(args, 2)).ok_or(CommandError::NotInteger)?;
    let ms = if seconds {
        n.checked_mul(1000)
            .ok_or(CommandError::InvalidExpireTime { command })?
    } else {
        n
    };
    let when = if absolute {
        Expiry::At { unix_ms: ms }
    } else {
        Expiry::In { ms }
    };
    Ok(Command::Expire {
        key: arg(args, 1),
        when,
        flags,
        command,
    })
}

fn expire_flags(options: ArgSlice<'_>) -> Result<ExpireFlags, CommandError> {
    let mut f = ExpireFlags::default();
    for opt in options.iter() {
        if is(opt, "nx") {
            f.nx = true;
        } else if is(opt, "xx") {
            f.xx = true;
        } else if is(opt, "gt") {
            f.gt = true;
        } else if is(opt, "lt") {
            f.lt = true;
        } else {
            return Err(CommandError::UnsupportedExpireOption { option: shown(opt) });
        }
    }
    if f.nx && (f.xx || f.gt || f.lt) {
        return Err(CommandError::ExpireNxConflict);
    }
    if f.gt && f.lt {
        return Err(CommandError::ExpireGtLtConflict);
    }
    Ok(f)
}

pub(super) fn scan(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    let cursor = parse_u64(arg(args, 1)).ok_or(CommandError::InvalidCursor)?;
    let mut pattern = KeyPattern::All;
    let mut count = None;
    let mut type_name = None;
    let mut i = 2;
    while let Some(opt) = args.get(i) {
        let value = args.get(i + 1);
        match value {
            Some(v) if is(opt, "count") => {
                let n = parse_i64(v).ok_or(CommandError::NotInteger)?;
                let n = u64::try_from(n)
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or(CommandError::Syntax)?;
                count = Some(n);
            }
            Some(v) if is(opt, "match") => pattern = key_pattern(v)?,
            Some(v) if is(opt, "type") => type_name = Some(v),
            _ => return Err(CommandError::Syntax),
        }
        i += 2;
    }
    Ok(Command::Scan {
        cursor,
        pattern,
        count,
        type_name,
    })
}

pub(super) fn keys(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    Ok(Command::Keys {
        pattern: key_pattern(arg(args, 1))?,
    })
}

/// Accepts `*` and `literal*` (trailing stars collapse, as in a glob); any
/// other glob is refused with a clear error rather than answered wrongly.
pub(super) fn key_pattern(pattern: &[u8]) -> Result<KeyPattern<'_>, CommandError> {
    let unsupported = || CommandError::UnsupportedPattern {
        pattern: shown(pattern),
    };
    let prefix = match pattern.iter().rposition(|&b| b != b'*') {
        None if pattern.is_empty() => return Err(unsupported()),
        None => return Ok(KeyPattern::All),
        Some(last) if last + 1 == pattern.len() => return Err(unsupported()),
        Some(last) => &pattern[..=last],
    };
    if prefix
        .iter()
        .any(|b| matches!(b, b'*' | b'?' | b'[' | b']' | b'\\'))
    {
        return Err(unsupported());
    }
    Ok(KeyPattern::Prefix(prefix))
}

pub(super) fn flushdb(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    Ok(Command::Flush {
        all: false,
        mode: flush_mode(args)?,
    })
}

pub(super) fn flushall(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    Ok(Command::Flush {
        all: true,
        mode: flush_mode(args)?,
    })
}

fn flush_mode(args: ArgSlice<'_>) -> Result<FlushMode, CommandError> {
    match args.len() {
        1 => Ok(FlushMode::Default),
        2 if is(arg(args, 1), "async") => Ok(FlushMode::Async),
        2 if is(arg(args, 1), "sync") => Ok(FlushMode::Sync),
        _ => Err(CommandError::Syntax),
    }
}
