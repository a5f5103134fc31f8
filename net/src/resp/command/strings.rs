//! String commands: GET, SET and its options, SETNX, SETEX, PSETEX, GETSET,
//! GETDEL, GETEX, MGET, MSET, MSETNX, INCR/DECR/INCRBY/DECRBY, APPEND,
//! STRLEN. Option rules follow Redis 7's `parseExtendedStringArgumentsOrReply`
//! and `getExpireMillisecondsOrReply`.

use super::{arg, is, ArgSlice, Command, CommandError, Expiry, GetExTtl, SetCondition, SetTtl};
use crate::resp::num::parse_i64;

pub(super) fn get(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    Ok(Command::Get { key: arg(args, 1) })
}

pub(super) fn getdel(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    Ok(Command::GetDel { key: arg(args, 1) })
}

pub(super) fn strlen(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    Ok(Command::Strlen { key: arg(args, 1) })
}

pub(super) fn append(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    Ok(Command::Append {
        key: arg(args, 1),
        value: arg(args, 2),
    })
}

pub(super) fn setnx(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    Ok(Command::SetNx {
        key: arg(args, 1),
        value: arg(args, 2),
    })
}

pub(super) fn getset(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    Ok(Command::Set {
        key: arg(args, 1),
        value: arg(args, 2),
        condition: SetCondition::Always,
        ttl: SetTtl::Clear,
        get: true,
    })
}

pub(super) fn set(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    let o = parse_options(args, Family::Set)?;
    let ttl = match o.expire {
        Some((unit, text)) => SetTtl::Expire(expiry(unit, text, "set")?),
        None if o.keepttl => SetTtl::Keep,
        None => SetTtl::Clear,
    };
    let condition = match (o.nx, o.xx) {
        (true, _) => SetCondition::IfAbsent,
        (_, true) => SetCondition::IfPresent,
        _ => SetCondition::Always,
    };
    Ok(Command::Set {
        key: arg(args, 1),
        value: arg(args, 2),
        condition,
        ttl,
        get: o.get,
    })
}

pub(super) fn setex(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    set_with_expiry(args, Unit::Ex, "setex")
}

pub(super) fn psetex(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    set_with_expiry(args, Unit::Px, "psetex")
}

/// SETEX/PSETEX key time value.
fn set_with_expiry<'a>(
    args: ArgSlice<'a>,
    unit: Unit,
    command: &'static str,
) -> Result<Command<'a>, CommandError> {
    Ok(Command::Set {
        key: arg(args, 1),
        value: arg(args, 3),
        condition: SetCondition::Always,
        ttl: SetTtl::Expire(expiry(unit, arg(args, 2), command)?),
        get: false,
    })
}

pub(super) fn getex(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    let o = parse_options(args, Family::GetEx)?;
    let ttl = match o.expire {
        Some((unit, text)) => GetExTtl::Expire(expiry(unit, text, "getex")?),
        None if o.persist => GetExTtl::Persist,
        None => GetExTtl::Unchanged,
    };
    Ok(Command::GetEx {
        key: arg(args, 1),
        ttl,
    })
}

pub(super) fn mget(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    Ok(Command::MGet { keys: args.skip(1) })
}

pub(super) fn mset(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    let pairs = even_pairs(args, "mset")?;
    Ok(Command::MSet { pairs })
}

pub(super) fn msetnx(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    let pairs = even_pairs(args, "msetnx")?;
    Ok(Command::MSetNx { pairs })
}

/// MSET's parity check: an odd number of key/value arguments is an arity
/// error, as in Redis.
fn even_pairs<'a>(args: ArgSlice<'a>, name: &'static str) -> Result<ArgSlice<'a>, CommandError> {
    if args.len() % 2 == 0 {
        return Err(CommandError::WrongArity { name });
    }
    Ok(args.skip(1))
}

pub(super) fn incr(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    Ok(Command::IncrBy {
        key: arg(args, 1),
        delta: 1,
    })
}

pub(super) fn decr(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    Ok(Command::IncrBy {
        key: arg(args, 1),
        delta: -1,
    })
}

pub(super) fn incrby(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    let delta = parse_i64(arg(args, 2)).ok_or(CommandError::NotInteger)?;
    Ok(Command::IncrBy {
        key: arg(args, 1),
        delta,
    })
}

pub(super) fn decrby(args: ArgSlice<'_>) -> Result<Command<'_>, CommandError> {
    let n = parse_i64(arg(args, 2)).ok_or(CommandError::NotInteger)?;
    let delta = n.checked_neg().ok_or(CommandError::DecrementOverflow)?;
    Ok(Command::IncrBy {
        key: arg(args, 1),
        delta,
    })
}

/// Which command's options are being parsed: some options belong to one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Set,
    GetEx,
}

/// The unit and base of an expiry option.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Unit {
    Ex,
    Px,
    ExAt,
    PxAt,
}

#[derive(Default)]
struct StringOptions<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    persist: bool,
    expire: Option<(Unit, &'a [u8])>,
}

/// Parses options from argument 3 (SET) or 2 (GETEX) on, accepting each
/// only when it does not conflict with those seen, as Redis does (so a
/// repeated option is allowed and the last value wins).
fn parse_options(args: ArgSlice<'_>, family: Family) -> Result<StringOptions<'_>, CommandError> {
    let mut o = StringOptions::default();
    let mut j = if family == Family::Set { 3 } else { 2 };
    while let Some(opt) = args.get(j) {
        let next = args.get(j + 1);
        let set = family == Family::Set;
        let expire_other_than = |u: Unit| matches!(o.expire, Some((seen, _)) if seen != u);
        if is(opt, "nx") && !o.xx && set {
            o.nx = true;
        } else if is(opt, "xx") && !o.nx && set {
            o.xx = true;
        } else if is(opt, "get") && set {
            o.get = true;
        } else if is(opt, "keepttl") && !o.persist && o.expire.is_none() && set {
            o.keepttl = true;
        } else if is(opt, "persist") && !set && o.expire.is_none() && !o.keepttl {
            o.persist = true;
        } else if let Some(unit) = expiry_unit(opt) {
            let Some(text) = next else {
                return Err(CommandError::Syntax);
            };
            if o.keepttl || o.persist || expire_other_than(unit) {
                return Err(CommandError::Syntax);
            }
            o.expire = Some((unit, text));
            j += 1;
        } else {
            return Err(CommandError::Syntax);
        }
        j += 1;
    }
    Ok(o)
}

fn expiry_unit(opt: &[u8]) -> Option<Unit> {
    [
        ("ex", Unit::Ex),
        ("px", Unit::Px),
        ("exat", Unit::ExAt),
        ("pxat", Unit::PxAt),
    ]
    .into_iter()
    .find(|(name, _)| is(opt, name))
    .map(|(_, unit)| unit)
}

/// Redis's `getExpireMillisecondsOrReply` without the clock: an integer,
/// positive, whose milliseconds fit in 64 bits.
fn expiry(unit: Unit, text: &[u8], command: &'static str) -> Result<Expiry, CommandError> {
    let n = parse_i64(text).ok_or(CommandError::NotInteger)?;
    let seconds = matches!(unit, Unit::Ex | Unit::ExAt);
    if n <= 0 || (seconds && n > i64::MAX / 1000) {
        return Err(CommandError::InvalidExpireTime { command });
    }
    let ms = if seconds { n * 1000 } else { n };
    Ok(match unit {
        Unit::Ex | Unit::Px => Expiry::In { ms },
        Unit::ExAt | Unit::PxAt => Expiry::At { unix_ms: ms },
    })
}
