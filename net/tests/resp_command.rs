//! Typed command parsing: each command's arguments and errors against Redis
//! 7's exact strings.

use ringkv_net::resp::command::{
    unknown_command_message, ClientAttribute, ExpireFlags, Expiry, FlushMode, GetExTtl, KeyPattern,
    SetCondition, SetTtl, TtlUnit,
};
use ringkv_net::resp::{parse_command, Command, CommandError, Decoded, RespLimits, RespVersion};

/// Parses one inline command line and hands the result to `f`.
fn with<R>(line: &str, f: impl FnOnce(Result<Command<'_>, CommandError>) -> R) -> R {
    let buf = format!("{line}\r\n");
    let Ok(Decoded::Frame { frame, .. }) = parse_command(buf.as_bytes(), &RespLimits::default())
    else {
        panic!("{line:?} did not parse")
    };
    f(Command::parse(&frame))
}

fn err(line: &str) -> String {
    with(line, |r| match r {
        Err(e) => e.to_string(),
        Ok(c) => panic!("{line:?} parsed to {c:?}"),
    })
}

fn ok<R>(line: &str, f: impl FnOnce(Command<'_>) -> R) -> R {
    with(line, |r| match r {
        Ok(c) => f(c),
        Err(e) => panic!("{line:?} failed: {e}"),
    })
}

#[test]
fn wrong_arity_names_the_command_in_lowercase() {
    for (line, name) in [
        ("GET", "get"),
        ("get a b", "get"),
        ("SET k", "set"),
        ("setnx k", "setnx"),
        ("SETEX k 10", "setex"),
        ("psetex k 10", "psetex"),
        ("getset k", "getset"),
        ("getdel", "getdel"),
        ("getex", "getex"),
        ("mget", "mget"),
        ("mset k", "mset"),
        ("MSET k v k2", "mset"),
        ("msetnx a b c", "msetnx"),
        ("del", "del"),
        ("unlink", "unlink"),
        ("exists", "exists"),
        ("incr", "incr"),
        ("decr a b", "decr"),
        ("incrby k", "incrby"),
        ("decrby k", "decrby"),
        ("append k", "append"),
        ("strlen", "strlen"),
        ("expire k", "expire"),
        ("pexpire k", "pexpire"),
        ("expireat k", "expireat"),
        ("pexpireat k", "pexpireat"),
        ("persist", "persist"),
        ("ttl", "ttl"),
        ("pttl", "pttl"),
        ("type", "type"),
        ("scan", "scan"),
        ("keys", "keys"),
        ("dbsize x", "dbsize"),
        ("ping a b", "ping"),
        ("echo", "echo"),
        ("auth", "auth"),
        ("select", "select"),
        ("client", "client"),
        ("client setname", "client|setname"),
        ("client getname x", "client|getname"),
        ("client id x", "client|id"),
        ("CLIENT SETINFO lib-name", "client|setinfo"),
        ("config", "config"),
        ("config get", "config|get"),
        ("command count x", "command|count"),
    ] {
        assert_eq!(
            err(line),
            format!("ERR wrong number of arguments for '{name}' command"),
            "{line}"
        );
    }
}

#[test]
fn names_and_options_are_case_insensitive() {
    ok("gEt k", |c| assert_eq!(c, Command::Get { key: b"k" }));
    ok("SeT k v nX Ex 5", |c| {
        assert_eq!(
            c,
            Command::Set {
                key: b"k",
                value: b"v",
                condition: SetCondition::IfAbsent,
                ttl: SetTtl::Expire(Expiry::In { ms: 5000 }),
                get: false
            }
        )
    });
}

#[test]
fn set_accepts_redis_option_combinations() {
    let set = |line: &str| {
        ok(line, |c| match c {
            Command::Set {
                condition,
                ttl,
                get,
                ..
            } => (condition, ttl, get),
            other => panic!("{other:?}"),
        })
    };
    assert_eq!(set("SET k v"), (SetCondition::Always, SetTtl::Clear, false));
    assert_eq!(
        set("SET k v XX GET KEEPTTL"),
        (SetCondition::IfPresent, SetTtl::Keep, true)
    );
    assert_eq!(
        set("SET k v NX GET"),
        (SetCondition::IfAbsent, SetTtl::Clear, true)
    );
    assert_eq!(
        set("SET k v PX 1500"),
        (
            SetCondition::Always,
            SetTtl::Expire(Expiry::In { ms: 1500 }),
            false
        )
    );
    assert_eq!(
        set("SET k v EXAT 10"),
        (
            SetCondition::Always,
            SetTtl::Expire(Expiry::At { unix_ms: 10_000 }),
            false
        )
    );
    assert_eq!(
        set("SET k v PXAT 7"),
        (
            SetCondition::Always,
            SetTtl::Expire(Expiry::At { unix_ms: 7 }),
            false
        )
    );
    // Repeating an option is allowed; the last value wins (as in Redis).
    assert_eq!(
        set("SET k v EX 1 EX 2 NX NX"),
        (
            SetCondition::IfAbsent,
            SetTtl::Expire(Expiry::In { ms: 2000 }),
            false
        )
    );
    assert_eq!(
        set("SETEX k 3 v"),
        (
            SetCondition::Always,
            SetTtl::Expire(Expiry::In { ms: 3000 }),
            false
        )
    );
    assert_eq!(
        set("PSETEX k 3 v"),
        (
            SetCondition::Always,
            SetTtl::Expire(Expiry::In { ms: 3 }),
            false
        )
    );
    assert_eq!(
        set("GETSET k v"),
        (SetCondition::Always, SetTtl::Clear, true)
    );
}

#[test]
fn set_refuses_conflicts_with_redis_errors() {
    for line in [
        "SET k v NX XX",
        "SET k v XX NX",
        "SET k v EX 1 PX 2",
        "SET k v PX 1 EXAT 2",
        "SET k v EX 1 KEEPTTL",
        "SET k v KEEPTTL EX 1",
        "SET k v EX",
        "SET k v PERSIST",
        "SET k v FOO",
        "GETEX k NX",
        "GETEX k GET",
        "GETEX k KEEPTTL",
        "GETEX k EX 1 PERSIST",
        "GETEX k PERSIST PX 1",
        "GETEX k EX",
    ] {
        assert_eq!(err(line), "ERR syntax error", "{line}");
    }
    assert_eq!(
        err("SET k v EX 0"),
        "ERR invalid expire time in 'set' command"
    );
    assert_eq!(
        err("SET k v PX -5"),
        "ERR invalid expire time in 'set' command"
    );
    assert_eq!(
        err("SET k v EX 9223372036854776"),
        "ERR invalid expire time in 'set' command"
    );
    assert_eq!(
        err("SET k v EX abc"),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err("SET k v EX 1.5"),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err("SETEX k 0 v"),
        "ERR invalid expire time in 'setex' command"
    );
    assert_eq!(
        err("PSETEX k -1 v"),
        "ERR invalid expire time in 'psetex' command"
    );
    assert_eq!(
        err("SETEX k x v"),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err("GETEX k EX 0"),
        "ERR invalid expire time in 'getex' command"
    );
}

#[test]
fn getex_options_parse() {
    let ttl = |line: &str| {
        ok(line, |c| match c {
            Command::GetEx { ttl, .. } => ttl,
            other => panic!("{other:?}"),
        })
    };
    assert_eq!(ttl("GETEX k"), GetExTtl::Unchanged);
    assert_eq!(ttl("GETEX k persist"), GetExTtl::Persist);
    assert_eq!(
        ttl("GETEX k EX 2"),
        GetExTtl::Expire(Expiry::In { ms: 2000 })
    );
    assert_eq!(
        ttl("GETEX k PXAT 99"),
        GetExTtl::Expire(Expiry::At { unix_ms: 99 })
    );
}

#[test]
fn relative_expiries_overflowing_the_clock_have_no_deadline() {
    assert_eq!(Expiry::In { ms: 5 }.deadline_unix_ms(10), Some(15));
    assert_eq!(Expiry::In { ms: i64::MAX }.deadline_unix_ms(10), None);
    assert_eq!(Expiry::At { unix_ms: 5 }.deadline_unix_ms(10), Some(5));
}

#[test]
fn multi_key_commands_borrow_their_keys() {
    ok("MGET a b c", |c| match c {
        Command::MGet { keys } => assert_eq!(keys.iter().collect::<Vec<_>>(), [b"a", b"b", b"c"]),
        other => panic!("{other:?}"),
    });
    ok("MSET a 1 b 2", |c| match c {
        Command::MSet { pairs } => {
            assert_eq!(
                pairs.pairs().collect::<Vec<_>>(),
                [(&b"a"[..], &b"1"[..]), (b"b", b"2")]
            )
        }
        other => panic!("{other:?}"),
    });
    ok("MSETNX a 1", |c| {
        assert!(matches!(c, Command::MSetNx { pairs } if pairs.len() == 2))
    });
    ok("DEL a a", |c| {
        assert!(matches!(c, Command::Del { keys } if keys.len() == 2))
    });
    ok("UNLINK a", |c| {
        assert!(matches!(c, Command::Unlink { keys } if keys.len() == 1))
    });
    ok("EXISTS a b", |c| {
        assert!(matches!(c, Command::Exists { keys } if keys.len() == 2))
    });
}

#[test]
fn counters_parse_and_refuse_non_integers() {
    let delta = |line: &str| {
        ok(line, |c| match c {
            Command::IncrBy { delta, .. } => delta,
            other => panic!("{other:?}"),
        })
    };
    assert_eq!(delta("INCR k"), 1);
    assert_eq!(delta("DECR k"), -1);
    assert_eq!(delta("INCRBY k -7"), -7);
    assert_eq!(delta("DECRBY k 7"), -7);
    assert_eq!(delta("DECRBY k -9223372036854775807"), i64::MAX);
    for line in [
        "INCRBY k x",
        "INCRBY k 1.0",
        "INCRBY k 9223372036854775808",
        "DECRBY k ''",
        "INCRBY k 01",
    ] {
        assert_eq!(
            err(line),
            "ERR value is not an integer or out of range",
            "{line}"
        );
    }
    assert_eq!(
        err("DECRBY k -9223372036854775808"),
        "ERR decrement would overflow"
    );
}

#[test]
fn expire_family_parses_units_bases_and_flags() {
    let exp = |line: &str| {
        ok(line, |c| match c {
            Command::Expire {
                when,
                flags,
                command,
                ..
            } => (when, flags, command),
            other => panic!("{other:?}"),
        })
    };
    let none = ExpireFlags::default();
    assert_eq!(
        exp("EXPIRE k 10"),
        (Expiry::In { ms: 10_000 }, none, "expire")
    );
    assert_eq!(
        exp("PEXPIRE k -1"),
        (Expiry::In { ms: -1 }, none, "pexpire")
    );
    assert_eq!(
        exp("EXPIREAT k 2"),
        (Expiry::At { unix_ms: 2000 }, none, "expireat")
    );
    assert_eq!(
        exp("PEXPIREAT k 2 nx"),
        (
            Expiry::At { unix_ms: 2 },
            ExpireFlags { nx: true, ..none },
            "pexpireat"
        )
    );
    assert_eq!(
        exp("EXPIRE k 1 XX GT"),
        (
            Expiry::In { ms: 1000 },
            ExpireFlags {
                xx: true,
                gt: true,
                ..none
            },
            "expire"
        )
    );
    assert_eq!(
        err("EXPIRE k 1 NX XX"),
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    );
    assert_eq!(
        err("EXPIRE k 1 NX LT"),
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    );
    assert_eq!(
        err("EXPIRE k 1 GT LT"),
        "ERR GT and LT options at the same time are not compatible"
    );
    assert_eq!(err("EXPIRE k 1 FOO"), "ERR Unsupported option FOO");
    assert_eq!(
        err("EXPIRE k x"),
        "ERR value is not an integer or out of range"
    );
    // Options are checked before the time, as in Redis.
    assert_eq!(err("EXPIRE k x FOO"), "ERR Unsupported option FOO");
    assert_eq!(
        err("EXPIRE k 9223372036854776"),
        "ERR invalid expire time in 'expire' command"
    );
    assert_eq!(
        err("EXPIREAT k -9223372036854776"),
        "ERR invalid expire time in 'expireat' command"
    );
}

#[test]
fn key_queries_parse() {
    ok("TTL k", |c| {
        assert_eq!(
            c,
            Command::Ttl {
                key: b"k",
                unit: TtlUnit::Seconds
            }
        )
    });
    ok("PTTL k", |c| {
        assert_eq!(
            c,
            Command::Ttl {
                key: b"k",
                unit: TtlUnit::Millis
            }
        )
    });
    ok("PERSIST k", |c| {
        assert_eq!(c, Command::Persist { key: b"k" })
    });
    ok("TYPE k", |c| assert_eq!(c, Command::Type { key: b"k" }));
    ok("STRLEN k", |c| assert_eq!(c, Command::Strlen { key: b"k" }));
    ok("APPEND k v", |c| {
        assert_eq!(
            c,
            Command::Append {
                key: b"k",
                value: b"v"
            }
        )
    });
    ok("GETDEL k", |c| assert_eq!(c, Command::GetDel { key: b"k" }));
    ok("SETNX k v", |c| {
        assert_eq!(
            c,
            Command::SetNx {
                key: b"k",
                value: b"v"
            }
        )
    });
    ok("GET k", |c| assert_eq!(c.key(), Some(&b"k"[..])));
    ok("MGET k", |c| assert_eq!(c.key(), None));
}

#[test]
fn scan_and_keys_accept_only_prefix_patterns() {
    ok("SCAN 0", |c| {
        assert_eq!(
            c,
            Command::Scan {
                cursor: 0,
                pattern: KeyPattern::All,
                count: None,
                type_name: None
            }
        )
    });
    ok(
        "scan 18446744073709551615 match user:* count 100 type string",
        |c| {
            assert_eq!(
                c,
                Command::Scan {
                    cursor: u64::MAX,
                    pattern: KeyPattern::Prefix(b"user:"),
                    count: Some(100),
                    type_name: Some(b"string")
                }
            )
        },
    );
    ok("SCAN 0 MATCH a** MATCH *", |c| {
        assert!(matches!(
            c,
            Command::Scan {
                pattern: KeyPattern::All,
                ..
            }
        ))
    });
    ok("KEYS *", |c| {
        assert_eq!(
            c,
            Command::Keys {
                pattern: KeyPattern::All
            }
        )
    });
    ok("KEYS ab*", |c| {
        assert_eq!(
            c,
            Command::Keys {
                pattern: KeyPattern::Prefix(b"ab")
            }
        )
    });
    assert!(KeyPattern::Prefix(b"ab").matches(b"abc") && !KeyPattern::Prefix(b"ab").matches(b"a"));
    for p in ["a?*", "a*b", "abc", "[ab]*", "a\\*", "''", "*a"] {
        assert!(
            err(&format!("KEYS {p}")).starts_with("ERR unsupported pattern '"),
            "{p}"
        );
    }
    assert_eq!(err("SCAN x"), "ERR invalid cursor");
    assert_eq!(err("SCAN -1"), "ERR invalid cursor");
    assert_eq!(err("SCAN 0 COUNT 0"), "ERR syntax error");
    assert_eq!(err("SCAN 0 COUNT -3"), "ERR syntax error");
    assert_eq!(
        err("SCAN 0 COUNT x"),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(err("SCAN 0 COUNT"), "ERR syntax error");
    assert_eq!(err("SCAN 0 FOO bar"), "ERR syntax error");
}

#[test]
fn server_commands_parse() {
    ok("DBSIZE", |c| assert_eq!(c, Command::DbSize));
    ok("FLUSHDB", |c| {
        assert_eq!(
            c,
            Command::Flush {
                all: false,
                mode: FlushMode::Default
            }
        )
    });
    ok("flushall async", |c| {
        assert_eq!(
            c,
            Command::Flush {
                all: true,
                mode: FlushMode::Async
            }
        )
    });
    ok("FLUSHDB SYNC", |c| {
        assert_eq!(
            c,
            Command::Flush {
                all: false,
                mode: FlushMode::Sync
            }
        )
    });
    assert_eq!(err("FLUSHDB FOO"), "ERR syntax error");
    assert_eq!(err("FLUSHALL SYNC ASYNC"), "ERR syntax error");
    ok("INFO", |c| {
        assert!(matches!(c, Command::Info { sections } if sections.is_empty()))
    });
    ok("INFO server keyspace", |c| {
        assert!(matches!(c, Command::Info { sections } if sections.len() == 2))
    });
    ok("COMMAND", |c| assert_eq!(c, Command::CommandList));
    ok("command COUNT", |c| assert_eq!(c, Command::CommandCount));
    ok("COMMAND DOCS get set", |c| {
        assert!(matches!(c, Command::CommandDocs { names } if names.len() == 2))
    });
    ok("COMMAND INFO", |c| {
        assert!(matches!(c, Command::CommandInfo { names } if names.is_empty()))
    });
    assert_eq!(
        err("COMMAND FOO"),
        "ERR unknown subcommand 'FOO'. Try COMMAND HELP."
    );
    ok("CONFIG GET maxmemory save", |c| {
        assert!(matches!(c, Command::ConfigGet { parameters } if parameters.len() == 2))
    });
    assert_eq!(
        err("CONFIG SET a b"),
        "ERR unknown subcommand 'SET'. Try CONFIG HELP."
    );
}

#[test]
fn connection_commands_parse() {
    ok("PING", |c| assert_eq!(c, Command::Ping { message: None }));
    ok("PING hi", |c| {
        assert_eq!(
            c,
            Command::Ping {
                message: Some(b"hi")
            }
        )
    });
    ok("ECHO hi", |c| {
        assert_eq!(c, Command::Echo { message: b"hi" })
    });
    ok("QUIT", |c| assert_eq!(c, Command::Quit));
    ok("AUTH pw", |c| {
        assert_eq!(
            c,
            Command::Auth {
                username: None,
                password: b"pw"
            }
        )
    });
    ok("AUTH u pw", |c| {
        assert_eq!(
            c,
            Command::Auth {
                username: Some(b"u"),
                password: b"pw"
            }
        )
    });
    assert_eq!(err("AUTH a b c"), "ERR syntax error");
    ok("SELECT 0", |c| assert_eq!(c, Command::Select { index: 0 }));
    ok("SELECT 3", |c| assert_eq!(c, Command::Select { index: 3 }));
    assert_eq!(
        err("SELECT x"),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err("SELECT 2147483648"),
        "ERR value is out of range, value must between -2147483648 and 2147483647"
    );
}

#[test]
fn hello_parses_version_auth_and_setname() {
    ok("HELLO", |c| {
        assert_eq!(
            c,
            Command::Hello {
                protover: None,
                auth: None,
                setname: None
            }
        )
    });
    ok("HELLO 3 AUTH default pw SETNAME app", |c| {
        assert_eq!(
            c,
            Command::Hello {
                protover: Some(RespVersion::Resp3),
                auth: Some((b"default", b"pw")),
                setname: Some(b"app")
            }
        )
    });
    ok("hello 2 setname ''", |c| {
        assert_eq!(
            c,
            Command::Hello {
                protover: Some(RespVersion::Resp2),
                auth: None,
                setname: Some(b"")
            }
        )
    });
    assert_eq!(
        err("HELLO x"),
        "ERR Protocol version is not an integer or out of range"
    );
    assert_eq!(err("HELLO 4"), "NOPROTO unsupported protocol version");
    assert_eq!(err("HELLO 1"), "NOPROTO unsupported protocol version");
    assert_eq!(
        err("HELLO 3 AUTH u"),
        "ERR Syntax error in HELLO option 'AUTH'"
    );
    assert_eq!(
        err("HELLO 3 SETNAME"),
        "ERR Syntax error in HELLO option 'SETNAME'"
    );
    assert_eq!(err("HELLO 3 FOO"), "ERR Syntax error in HELLO option 'FOO'");
    assert_eq!(
        err("HELLO 3 SETNAME 'a b'"),
        "ERR Client names cannot contain spaces, newlines or special characters."
    );
}

#[test]
fn client_subcommands_parse_and_validate() {
    ok("CLIENT SETNAME app-1", |c| {
        assert_eq!(c, Command::ClientSetName { name: b"app-1" })
    });
    ok("client getname", |c| assert_eq!(c, Command::ClientGetName));
    ok("CLIENT ID", |c| assert_eq!(c, Command::ClientId));
    ok("CLIENT INFO", |c| assert_eq!(c, Command::ClientInfo));
    ok("CLIENT SETINFO lib-name redis-py", |c| {
        assert_eq!(
            c,
            Command::ClientSetInfo {
                attribute: ClientAttribute::LibName,
                value: b"redis-py"
            }
        )
    });
    ok("CLIENT SETINFO LIB-VER 5.0.1", |c| {
        assert_eq!(
            c,
            Command::ClientSetInfo {
                attribute: ClientAttribute::LibVer,
                value: b"5.0.1"
            }
        )
    });
    assert_eq!(err("CLIENT SETINFO foo x"), "ERR Unrecognized option 'foo'");
    assert_eq!(
        err("CLIENT SETINFO lib-name 'a b'"),
        "ERR lib-name cannot contain spaces, newlines or special characters."
    );
    assert_eq!(
        err("CLIENT SETNAME \"a\\nb\""),
        "ERR Client names cannot contain spaces, newlines or special characters."
    );
    assert_eq!(
        err("CLIENT KILL x"),
        "ERR unknown subcommand 'KILL'. Try CLIENT HELP."
    );
}

#[test]
fn unknown_commands_are_reported_like_redis_7() {
    ok("FOO a b", |c| {
        let Command::Unknown { args } = c else {
            panic!("{c:?}")
        };
        assert_eq!(
            unknown_command_message(args.iter()),
            "ERR unknown command 'FOO', with args beginning with: 'a' 'b' "
        );
    });
    ok("averyveryverylongcommandname", |c| {
        let Command::Unknown { args } = c else {
            panic!("{c:?}")
        };
        assert_eq!(
            unknown_command_message(args.iter()),
            "ERR unknown command 'averyveryverylongcommandname', with args beginning with: "
        );
    });
    // Arguments are listed while the list is under 128 bytes.
    let long = "x".repeat(200);
    let msg = unknown_command_message([&b"foo"[..], long.as_bytes(), b"more"]);
    assert_eq!(
        msg,
        format!(
            "ERR unknown command 'foo', with args beginning with: '{}' ",
            "x".repeat(128)
        )
    );
    // Newlines cannot break the reply line.
    let msg = unknown_command_message([&b"f\r\no"[..], b"a\nb"]);
    assert_eq!(
        msg,
        "ERR unknown command 'f  o', with args beginning with: 'a b' "
    );
}

#[test]
fn empty_args_are_an_empty_command() {
    let args = ringkv_net::resp::Args::default();
    assert_eq!(Command::parse(&args), Ok(Command::Empty));
}
